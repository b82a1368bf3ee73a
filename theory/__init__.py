"""Results of Sakamoto & Sato (arXiv:2509.20829) as pure numpy/scipy/sympy functions.

One module per result; grep a theorem number (``Thm. 3.2``) to find its code. Nothing here imports
torch or touches the file system.
"""
