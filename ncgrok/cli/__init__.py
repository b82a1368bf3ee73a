"""The ``ncgrok`` console script: one parser assembled from one module per command group.

Each module here exposes ``register(subparsers)`` and stays thin: it parses, calls library code in
``ncgrok.theory`` / ``ncgrok.simulate`` / ``ncgrok.empirical`` and prints. A handler receives the
parsed ``argparse.Namespace`` and returns an exit status (``None`` means 0). A user mistake raises
``ValueError`` (or ``FileNotFoundError``), which :func:`main` turns into one line on stderr and exit
status 2; so does every usage mistake argparse finds (:class:`CommandLineParser`), including a bad
option value refused by the shared argument types of :mod:`ncgrok.cli.options`. Any other
``OSError`` (disk full, permission denied) is one line too, with exit status 1. The command modules import torch and matplotlib only inside their handlers, so
``ncgrok --help`` starts in well under a second.
"""
from __future__ import annotations

import argparse
import sys

from ncgrok.cli import analysis, bound, data, export, forecast, reproduce, simulate, status, train, verify

# in the order the command groups are listed in --help
CLI_MODULES = (bound, simulate, data, train, analysis, verify, forecast, reproduce, status, export)


def one_line(text: object) -> str:
    """``text`` with every run of whitespace (newlines included) turned into one space."""
    return " ".join(str(text).split())


class CommandLineParser(argparse.ArgumentParser):
    """argparse's parser, except that a usage mistake is ONE line on stderr, saying where help is,
    with exit status 2 (argparse's own error prints the usage block first). Subcommand parsers
    inherit the class (``add_subparsers`` makes its parsers of the parent's type)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {one_line(message)} (see: {self.prog} --help)\n")

    def parse_known_args(self, args=None, namespace=None):  # type: ignore[override]
        namespace, extras = super().parse_known_args(args, namespace)
        if not hasattr(namespace, "_command_parser"):  # the innermost (sub)command parses first
            namespace._command_parser = self
        return namespace, extras

    def parse_args(self, args=None, namespace=None):  # type: ignore[override]
        """argparse's, except that an unknown option is reported by the command it was given to."""
        namespace, extras = self.parse_known_args(args, namespace)
        parser = vars(namespace).pop("_command_parser", self)
        if extras:
            parser.error(f"unrecognized arguments: {' '.join(extras)}")
        return namespace


def build_parser(modules=CLI_MODULES) -> argparse.ArgumentParser:
    parser = CommandLineParser(
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
    """Run the ``ncgrok`` command line ``argv`` (default ``sys.argv[1:]``) and return its exit status:
    0 done, 2 a refused input (one line on stderr, nothing written), 1 an operating-system error,
    130 interrupted; a command may return its own status (``data check``). A usage mistake found
    while parsing (a bad option value included) returns 2 as well; ``--help`` raises
    ``SystemExit(0)``, as argparse does."""
    parser = build_parser(modules)
    try:
        args = parser.parse_args(argv)
    except SystemExit as stop:
        if not stop.code:  # --help: argparse's normal exit
            raise
        return int(stop.code)  # a usage mistake, already said in one line
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        status = args.func(args)
    except (ValueError, FileNotFoundError) as error:
        print(f"ncgrok {args.command}: error: {one_line(error)}", file=sys.stderr)
        return 2
    except OSError as error:
        print(f"ncgrok {args.command}: error: {one_line(error)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"ncgrok {args.command}: interrupted (saved results are kept; use --resume where offered)",
              file=sys.stderr)
        return 130
    return 0 if status is None else int(status)
