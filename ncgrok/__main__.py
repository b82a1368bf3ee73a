"""``python -m ncgrok ...``: the same as the ``ncgrok`` console script (as it was when ncgrok was one module)."""
import sys

from ncgrok import main

sys.exit(main())
