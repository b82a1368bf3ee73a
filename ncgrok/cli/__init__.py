"""The ``ncgrok`` console script: one parser assembled from one module per command group.

Each module here exposes ``register(subparsers)`` and stays thin: it parses, calls library code in
``ncgrok.theory`` / ``ncgrok.simulate`` / ``ncgrok.empirical`` and prints. A handler receives the
parsed ``argparse.Namespace`` and returns an exit status (``None`` means 0). A user mistake raises
``ValueError`` (or ``FileNotFoundError``), which :func:`main` turns into one line on stderr and exit
status 2. The command modules import torch and matplotlib only inside their handlers, so
``ncgrok --help`` starts in well under a second.
"""
from __future__ import annotations

import argparse
import sys

from ncgrok.cli import analysis, bound, data, forecast, simulate, train, verify

# in the order the command groups are listed in --help
CLI_MODULES = (bound, simulate, data, train, analysis, verify, forecast)


def build_parser(modules=CLI_MODULES) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ncgrok",
        description=(
            "Neural collapse, grokking and the information bottleneck "
            "(Sakamoto & Sato, arXiv:2509.20829) as runnable, tested code."
        ),
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in modules:
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None, *, modules=CLI_MODULES) -> int:
    parser = build_parser(modules)
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        status = args.func(args)
    except (ValueError, FileNotFoundError) as error:
        print(f"ncgrok {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"ncgrok {args.command}: interrupted (saved results are kept; use --resume where offered)",
              file=sys.stderr)
        return 130
    return 0 if status is None else int(status)
