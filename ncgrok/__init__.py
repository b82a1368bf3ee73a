"""The ``ncgrok`` console script.

Each package contributes its subcommands through a module exposing ``register(subparsers)``;
this file only assembles them and turns user errors into one-line messages with exit status 2.
A subcommand handler receives the parsed ``argparse.Namespace`` and returns an exit status
(``None`` means 0).

:mod:`ncgrok.files` holds what every package shares for writing results: atomic file writes and
JSON-safe values.
"""
from __future__ import annotations

import argparse
import importlib
import sys

# (module, reason it may be absent) in the order the subcommands are listed in --help.
CLI_MODULES = (
    "theory.cli",
    "simulate.cli",
    "empirical.cli_data",
    "empirical.cli_train",
    "empirical.cli_analysis",
)


class UsageError(ValueError):
    """A user mistake that the CLI reports in one line (exit status 2)."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ncgrok",
        description=(
            "Neural collapse, grokking and the information bottleneck "
            "(Sakamoto & Sato, arXiv:2509.20829) as runnable, tested code."
        ),
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in CLI_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as error:
            # Only a module of this project that does not exist yet is skipped; a missing
            # third-party dependency inside it must surface.
            if error.name == name or (error.name and name.startswith(error.name + ".")):
                continue
            raise
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
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

