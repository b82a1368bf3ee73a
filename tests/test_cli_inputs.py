"""Every input of every ``ncgrok`` command is answered (issue 10, "Every CLI input answered").

The parser is walked from ``ncgrok.cli.build_parser()``, so a new command or option cannot escape:

* every option that takes a value declares its domain, a type from ``ncgrok.cli.options`` or
  ``choices`` (a bare ``type=float`` fails :func:`test_every_value_option_declares_its_domain`);
* from that domain the test derives the values the option must refuse: a word, an empty string,
  NaN, +-inf, a huge number, a fraction for a whole number, the values just outside each bound
  (zero and negatives where they are outside), an unknown name, an empty or repeated list. Each
  refusal must be exit status 2, nothing on stdout and exactly one line on stderr that names the
  option and says what a valid value is; a value inside the domain and the option's default must be
  accepted;
* every option has ``--help`` text and every command's ``--help`` exits 0.

These refusals happen while the command line is parsed, so nothing can be read or written; the
derived cases therefore run the parser alone (one parser for all, a fraction of a millisecond each).
What only the library can check (two options together, an option against the data, the data
files themselves) is the explicit table further down, run through ``ncgrok.main`` in a scratch
directory on small synthetic IDX files, asserting that ``--out`` is not created. Rows whose check
lives in a module other branches are changing are ``xfail(strict=True)`` with the reason: they turn
into failures (XPASS) the moment the check lands, so the mark is removed then.
"""
from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import ncgrok
from ncgrok.cli import build_parser, options

PARSER = build_parser()
DOMAIN_TYPES = (options.Number, options.Text, options.NumberList)
# Text values one of which each Text domain must accept (paths with spaces must work).
ACCEPTED_TEXT = ("dir with spaces/file name.png", "cpu")


# ------------------------------------------------------------------------------------------------
# Walking the parser


def commands(parser: argparse.ArgumentParser = PARSER, words: tuple[str, ...] = ()):
    """``(words, parser)`` for the top level, every command group and every command."""
    yield words, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from commands(sub, words + (name,))


def is_group(parser: argparse.ArgumentParser) -> bool:
    return any(isinstance(action, argparse._SubParsersAction) for action in parser._actions)


def value_options(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    """The arguments of ``parser`` that take a value (not flags, --help or subcommands)."""
    return [action for action in parser._actions
            if not isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)) and action.nargs != 0]


def label(action: argparse.Action) -> str:
    """How argparse names the argument in an error: ``--lr`` or a positional's metavar."""
    return "/".join(action.option_strings) or action.metavar or action.dest


COMMANDS = [(words, parser) for words, parser in commands() if not is_group(parser)]
OPTIONS = [(words, parser, action) for words, parser in COMMANDS for action in value_options(parser)]


def option_id(case) -> str:
    words, _, action = case
    return " ".join(words + (label(action),))


# ------------------------------------------------------------------------------------------------
# Values derived from a domain


def accepted_value(action: argparse.Action) -> str:
    """One command-line value inside the domain of ``action``."""
    domain = action.type
    if action.choices is not None:
        return str(list(action.choices)[0])
    if isinstance(domain, options.NumberList):
        return repr(domain.total) if domain.total is not None else inside(domain.item)
    if isinstance(domain, options.Number):
        return inside(domain)
    for text in ACCEPTED_TEXT:
        try:
            domain(text)
        except argparse.ArgumentTypeError:
            continue
        return text
    raise AssertionError(f"no value of {ACCEPTED_TEXT} is accepted by {domain!r}")


def accepted_values(action: argparse.Action) -> list[str]:
    """As many different values inside the domain as ``action`` needs at least (two for ``simulate
    gap --samples-per-class``, which fits a slope)."""
    first = accepted_value(action)
    needed = max(getattr(action, "at_least", 1), action.nargs if isinstance(action.nargs, int) else 1)
    if needed == 1:
        return [first]
    domain = action.type
    values, candidate = [first], float(first)
    while len(values) < needed:  # step up inside the domain: +1, or halfway to a finite upper end
        candidate = candidate + 1 if domain.high is None or candidate + 1 < domain.high else (candidate + domain.high) / 2
        assert domain.contains(int(candidate) if domain.kind is int else candidate)
        values.append(str(int(candidate)) if domain.kind is int else repr(candidate))
    return values


def inside(domain: options.Number) -> str:
    low, high = domain.low, domain.high
    if low is not None and high is not None:
        value = (low + high) / 2 if domain.low_open else low
    elif low is not None:
        value = low + 1 if domain.low_open else low
    elif high is not None:
        value = high - 1
    else:
        value = 0
    return str(int(value)) if domain.kind is int else repr(float(value))


def refused_numbers(domain: options.Number) -> list[str]:
    """Values outside ``domain``: wrong type, empty, not finite, huge, and just past each bound."""
    values = ["abc", "", "nan", "inf", "-inf", "1e400"]
    if domain.kind is int:
        values += ["1.5", "1" + "0" * 30]
    if domain.low is not None:
        low = domain.low
        values.append(repr(low) if domain.low_open else str(low - 1) if domain.kind is int else repr(low - 0.5))
        if low >= 0:
            values.append("-1")
        if low > 0 or (low == 0 and domain.low_open):
            values.append("0")
    if domain.high is not None:
        high = domain.high
        values.append(repr(high) if domain.high_open else str(high + 1) if domain.kind is int else repr(high + 0.5))
    return values


def refused_values(action: argparse.Action) -> list[str]:
    domain = action.type
    if action.choices is not None:
        return ["no-such-name"]
    if isinstance(domain, options.Number):
        return refused_numbers(domain)
    if isinstance(domain, options.NumberList):
        return [",", " , "] + [value for value in refused_numbers(domain.item) if "," not in value]
    return ["", "   "]  # Text: an empty path would silently mean the current directory


def looks_like_an_option(token: str) -> bool:
    """argparse takes ``-inf`` (not ``-1``) for an option string, not a value."""
    return token.startswith("-") and not PARSER._negative_number_matcher.match(token)


def required_argv(parser: argparse.ArgumentParser, skip: argparse.Action | None = None) -> list[str]:
    """Valid values for every required argument of ``parser`` except ``skip``."""
    argv = []
    for action in value_options(parser):
        if action is skip or not (action.required or not action.option_strings):
            continue
        argv += ([] if not action.option_strings else [action.option_strings[0]]) + accepted_values(action)
    return argv


def with_value(action: argparse.Action, values: list[str]) -> list[str]:
    """The tokens that give ``action`` the values ``values``."""
    if not action.option_strings:
        return values
    option = action.option_strings[0]
    if action.nargs is None and len(values) == 1:
        return [f"{option}={values[0]}"]  # "--lr=-inf": never mistaken for an option
    return [option, *values]


def refusal_cases(action: argparse.Action) -> list[list[str]]:
    """The argument lists (tokens for ``action`` only) that must be refused."""
    cases = []
    filler = accepted_values(action)[1:] if isinstance(action.nargs, int) else []
    for value in refused_values(action):
        if action.nargs is not None and looks_like_an_option(value):
            continue
        if not action.option_strings and value.startswith("-"):
            continue
        cases.append(with_value(action, [value, *filler]))
    if action.option_strings and (action.nargs == "+" or isinstance(action.nargs, int)):
        cases.append([action.option_strings[0]])  # an empty list
    at_least = getattr(action, "at_least", None)
    if at_least is not None:
        values = accepted_values(action)
        cases.append([action.option_strings[0], *values, values[0]])  # a repeated value
        if at_least > 1:
            cases.append([action.option_strings[0], *values[:-1]])  # too few different values
    return cases


def parse(argv: list[str], capsys) -> tuple[int, str, str]:
    """Parse ``argv`` with the one shared parser; the exit status argparse would give, stdout, stderr."""
    try:
        PARSER.parse_args(argv)
        status = 0
    except SystemExit as stop:
        status = stop.code
    out, err = capsys.readouterr()
    return status, out, err


FIXES = ("must", "choose from", "expected", "needs", "unrecognized")


def refusal_problem(status: int, out: str, err: str, name: str, fixes: tuple[str, ...] = FIXES) -> str | None:
    """What is wrong with how a refused input was answered (``None``: exit status 2, nothing on
    stdout, one line on stderr naming ``name`` and saying what would be valid, one of ``fixes``)."""
    lines = err.splitlines()
    if status != 2:
        return f"exit status {status}, not 2"
    if out:
        return f"printed on stdout: {out!r}"
    if len(lines) != 1:
        return f"{len(lines)} lines on stderr, not 1: {err!r}"
    if "Traceback" in err or name not in lines[0]:
        return f"the line does not name {name}: {lines[0]!r}"
    if not any(fix in lines[0] for fix in fixes):
        return f"the line does not say what is valid: {lines[0]!r}"
    return None


@pytest.fixture
def scratch(tmp_path, monkeypatch):
    """An empty working directory (commands with a default --out would write there)."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def listing(folder: Path) -> list[str]:
    return sorted(str(path.relative_to(folder)) for path in folder.rglob("*"))


# ------------------------------------------------------------------------------------------------
# The walk itself


def test_walk_sees_every_command_and_option():
    names = {" ".join(words) for words, _ in COMMANDS}
    assert {"bound cantelli", "simulate ufm", "simulate gap", "data fetch", "train", "sweep", "onset", "grok"} <= names
    labels = {option_id(case) for case in OPTIONS}
    assert {"train --lr", "sweep --seeds", "simulate gmm --priors", "onset RUN_OR_SWEEP_DIR", "data info dataset"} <= labels
    assert len(OPTIONS) > 150


def test_every_value_option_declares_its_domain():
    undeclared = [option_id(case) for case in OPTIONS
                  if case[2].choices is None and not isinstance(case[2].type, DOMAIN_TYPES)]
    assert not undeclared, f"give these a type from ncgrok.cli.options (or choices): {undeclared}"


@pytest.mark.parametrize("case", OPTIONS, ids=option_id)
def test_every_refused_value_is_one_line_naming_the_option(case, capsys, scratch):
    words, parser, action = case
    base = [*words, *required_argv(parser, skip=action)]
    problems = []
    for tokens in refusal_cases(action):
        status, out, err = parse(base + tokens, capsys)
        problem = refusal_problem(status, out, err, label(action))
        if problem is not None:
            problems.append(f"{tokens}: {problem}")
    assert not problems, "\n".join(problems)
    assert listing(scratch) == []


@pytest.mark.parametrize("case", OPTIONS, ids=option_id)
def test_a_value_inside_the_domain_and_the_default_are_accepted(case, capsys):
    words, parser, action = case
    tokens = with_value(action, accepted_values(action))
    status, out, err = parse([*words, *required_argv(parser, skip=action), *tokens], capsys)
    assert status == 0, err
    defaults = action.default if isinstance(action.default, (list, tuple)) else [action.default]
    for default in [d for d in defaults if d is not None]:
        if action.choices is not None:
            assert default in action.choices
        elif isinstance(action.type, options.Number):
            assert action.type.contains(default), f"default {default!r} outside {action.type!r}"
        else:
            action.type(str(default))  # raises if refused


def test_domain_types_refuse_what_the_derivation_says():
    """The derivation above against hand-written answers, so that a too-lenient type is caught."""
    lr = options.positive_number
    for text in ("abc", "", "nan", "inf", "-inf", "1e400", "0", "-1", "-0.0"):
        with pytest.raises(argparse.ArgumentTypeError):
            lr(text)
    assert lr("1e-3") == 0.001 and lr("5e300") == 5e300
    steps = options.positive_count
    for text in ("0", "-3", "1.5", "1e-3", "nan", "inf", "2147483648", "1" + "0" * 30, "1e999999999", "x"):
        with pytest.raises(argparse.ArgumentTypeError):
            steps(text)
    assert steps("100_000") == 100_000 and steps("1e5") == 100_000 and steps("2147483647") == 2**31 - 1
    assert options.seed("4294967295") == 2**32 - 1
    delta = options.probability
    for text in ("0", "1", "-0.5", "1.5", "nan"):
        with pytest.raises(argparse.ArgumentTypeError):
            delta(text)
    assert delta("0.05") == 0.05
    assert options.fraction("0") == 0.0 and options.fraction("1") == 1.0
    assert options.finite_number("-7.5") == -7.5
    assert options.path("a b/c") == Path("a b/c")
    for text in ("", " "):
        with pytest.raises(argparse.ArgumentTypeError):
            options.path(text)
    assert options.device("cuda:1") == "cuda:1"
    for text in ("gpu", "cuda:", "cuda:-1", "cpu "):
        with pytest.raises(argparse.ArgumentTypeError):
            options.device(text)
    assert options.figure_path("fig.PDF") == Path("fig.PDF") and options.figure_path("fig") == Path("fig")
    with pytest.raises(argparse.ArgumentTypeError):
        options.figure_path("fig.jpg")
    assert options.count_list("4,8, 16") == "4,8, 16"
    for text in ("", "4,,8", "4,0", "4,x"):
        with pytest.raises(argparse.ArgumentTypeError):
            options.count_list(text)
    assert options.priors_list("0.5,0.25,0.25") == "0.5,0.25,0.25"
    for text in ("0.5,0.6", "0.5,-0.5,1", "1.2"):
        with pytest.raises(argparse.ArgumentTypeError):
            options.priors_list(text)


# ------------------------------------------------------------------------------------------------
# Help


def test_every_option_and_subcommand_has_help_text():
    missing = []
    for words, parser in commands():
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                missing += [" ".join(words + (choice.dest,)) for choice in action._choices_actions if not choice.help]
            elif not action.help or action.help == argparse.SUPPRESS:
                missing.append(" ".join(words + (label(action),)))
    assert not missing, f"options without --help text: {missing}"


@pytest.mark.parametrize("words", [words for words, _ in commands()], ids=lambda words: " ".join(words) or "ncgrok")
def test_help_of_every_command_exits_0(words, capsys):
    status, out, err = parse([*words, "--help"], capsys)
    assert status == 0 and err == ""
    assert out.startswith("usage: ncgrok" + "".join(" " + word for word in words))


# ------------------------------------------------------------------------------------------------
# Commands and groups


def run(argv: list[str]) -> int:
    """``ncgrok.main``'s exit status (argparse's own exits included)."""
    try:
        return ncgrok.main(argv)
    except SystemExit as stop:
        return stop.code


@pytest.mark.parametrize("words", [words for words, parser in commands() if is_group(parser)],
                         ids=lambda words: " ".join(words) or "ncgrok")
def test_a_command_group_without_a_command_prints_help_and_exits_2(words, capsys):
    assert run(list(words)) == 2
    out, err = capsys.readouterr()
    assert out.startswith("usage: ncgrok") and err == ""


@pytest.mark.parametrize("argv, name", [
    (["frobnicate"], "COMMAND"),
    (["bound", "frobnicate"], "BOUND"),
    (["simulate", "frobnicate"], "SIMULATION"),
    (["data", "frobnicate"], "ACTION"),
    (["train", "--out", "run", "--frobnicate"], "ncgrok train --help"),
    (["bound", "fano", "--classes", "3", "--error", "0.1", "--frobnicate"], "ncgrok bound fano --help"),
])
def test_unknown_commands_and_options_are_one_line(argv, name, capsys, scratch):
    problem = refusal_problem(run(argv), *capsys.readouterr(), name)
    assert problem is None, problem
    assert listing(scratch) == []


# ------------------------------------------------------------------------------------------------
# Inputs only the library can check: the explicit table, run through ncgrok.main


def idx_file(array: np.ndarray) -> bytes:
    """An IDX file: zero, zero, type 0x08 (uint8), rank, big-endian dimensions, the bytes."""
    return bytes([0, 0, 0x08, array.ndim]) + struct.pack(">" + "I" * array.ndim, *array.shape) + array.tobytes()


@pytest.fixture
def synthetic_mnist(scratch):
    """60 training and 20 test images in ``data dir/mnist`` and the md5 table of their content."""
    rng = np.random.default_rng(0)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (60, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": (np.arange(60) % 10).astype(np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (20, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": (np.arange(20) % 10).astype(np.uint8),
    }
    folder = scratch / "data dir" / "mnist"
    folder.mkdir(parents=True)
    md5 = {}
    for name, array in arrays.items():
        (folder / name).write_bytes(idx_file(array))
        md5[name] = hashlib.md5(idx_file(array)).hexdigest()
    return md5


@pytest.fixture
def trusted_mnist(synthetic_mnist, monkeypatch):
    """The synthetic files with their md5 sums in the checksum table, as if they were MNIST."""
    from ncgrok.empirical import data

    monkeypatch.setitem(data.RECORDS, "mnist", data.RECORDS["mnist"].with_checksums(synthetic_mnist))


TINY_TRAIN = ["--data-dir", "data dir", "--depth", "2", "--width", "8", "--steps", "2", "--log-every", "1",
              "--device", "cpu", "--quiet"]


MODULAR = ["--dataset", "modular-addition", "--width", "8", "--heads", "2", "--ff-width", "8", "--steps", "2",
           "--device", "cpu", "--quiet"]
MODULAR_DIVISION = ["--dataset", "modular-division", *MODULAR[2:]]


def xfail(reason: str):
    return pytest.mark.xfail(strict=True, reason=reason)


# (argv, the argument the one line must name, what else it must say); "--out run" is never created
REFUSED = [
    pytest.param(["train", *TINY_TRAIN, "--train-size", "100", "--batch-size", "10", "--out", "run"],
                 "--train-size", "60", id="train-size above the 60 images the data holds"),
    pytest.param(["train", *TINY_TRAIN, "--train-size", "50", "--heldout-size", "20", "--batch-size", "10",
                  "--out", "run"], "--heldout-size", "10", id="heldout-size overlapping the training images"),
    pytest.param(["sweep", *TINY_TRAIN, "--train-size", "20", "--batch-size", "30", "--out", "run"],
                 "--batch-size", "--train-size", id="batch-size above train-size"),
    pytest.param(["train", *TINY_TRAIN, "--train-size", "20", "--batch-size", "10", "--snapshot-steps", "5",
                  "--out", "run"], "--snapshot-steps", "--steps", id="snapshot step after the last step"),
    pytest.param(["train", *MODULAR, "--modulus", "11", "--train-fraction", "0.5", "--batch-size", "100", "--out", "run"],
                 "--batch-size", "60 training pairs", id="batch-size above the training pairs"),
    pytest.param(["sweep", *MODULAR_DIVISION, "--modulus", "12", "--out", "run"], "--modulus", "prime",
                 id="division by a non-prime modulus"),
    pytest.param(["train", *MODULAR, "--model", "mlp", "--out", "run"], "--model", "modtransformer",
                 id="modular data set with another model"),
    pytest.param(["train", *TINY_TRAIN, "--model", "modtransformer", "--out", "run"], "--model", "modular-addition",
                 id="modtransformer on images"),
    pytest.param(["train", *TINY_TRAIN, "--modulus", "11", "--out", "run"], "--modulus", "leave it out",
                 id="modulus with an image data set"),
    pytest.param(["train", *MODULAR, "--train-size", "10", "--out", "run"], "--train-size", "derived",
                 id="train-size given for a modular data set"),
    pytest.param(["train", *MODULAR, "--heldout-size", "10", "--out", "run"], "--heldout-size", "every unseen pair",
                 id="heldout-size given for a modular data set"),
    pytest.param(["train", *MODULAR, "--modulus", "1000", "--out", "run"], "--modulus", "at most 257",
                 id="modulus too large for the one-hot inputs"),
    pytest.param(["train", *TINY_TRAIN, "--train-size", "20", "--batch-size", "10", "--heldout-size", "10",
                  "--test-size", "21", "--out", "run"],
                 "--test-size", "at most 20", id="test-size above the 20 test images the data holds"),
    pytest.param(["sweep", *MODULAR, "--test-size", "5", "--out", "run"], "--test-size", "every unseen pair",
                 id="test-size given for a modular data set"),
    pytest.param(["train", *TINY_TRAIN, "--layers", "2", "--out", "run"], "--layers", "modtransformer",
                 id="layers for a model other than modtransformer"),
    pytest.param(["sweep", *TINY_TRAIN, "--layer-norm", "post", "--out", "run"], "--layer-norm", "modtransformer",
                 id="layer-norm for a model other than modtransformer"),
    pytest.param(["train", *MODULAR, "--modulus", "11", "--train-fraction", "0.001", "--out", "run"],
                 "--train-fraction", "at least one", id="train-fraction leaving no training pair"),
    pytest.param(["sweep", *TINY_TRAIN, "--train-size", "20", "--batch-size", "10", "--forecast", "--executor", "local",
                  "--out", "run"], "--forecast", "--executor", id="forecast with shards in other processes"),
    pytest.param(["train", *TINY_TRAIN, "--train-size", "20", "--batch-size", "10", "--calibrate-on", "data dir",
                  "--out", "run"], "--calibrate-on", "--forecast", id="calibrate-on without forecast"),
    pytest.param(["train", *TINY_TRAIN, "--train-size", "20", "--batch-size", "10", "--forecast", "--calibrate-on",
                  "data dir", "--out", "run"], "--calibrate-on", "no run directories", id="calibrate-on holding no runs"),
    pytest.param(["simulate", "ufm", "--lr", "2", "--weight-decay", "0.6", "--out", "run"], "--weight-decay", "< 1",
                 id="ufm lr x weight decay >= 1"),
    pytest.param(["simulate", "ufm", "--classes", "3", "--samples-per-class", "4,4", "--out", "run"],
                 "--samples-per-class", "3", id="ufm one count per class, wrong number of them"),
    pytest.param(["simulate", "gmm", "--classes", "3", "--priors", "0.5,0.5", "--out", "run"], "--priors", "3",
                 id="gmm priors for the wrong number of classes"),
    pytest.param(["bound", "concentration", "--n", "10", "20", "--classes", "3", "--delta", "0.1"], "--classes", "--n",
                 id="concentration counts for the wrong number of classes"),
    pytest.param(["bound", "cantelli", "--margin", "1", "--variance", "1", "--classes", "2", "--priors", "0.3", "0.3"],
                 "--priors", "sum to 1", id="cantelli priors not summing to 1"),
]


@pytest.mark.parametrize("argv, name, detail", REFUSED)
def test_inputs_checked_against_each_other_or_the_data(argv, name, detail, trusted_mnist, scratch, capsys):
    before = listing(scratch)
    status = run(argv)
    out, err = capsys.readouterr()
    problem = refusal_problem(status, out, err, name, fixes=(detail,))
    assert problem is None, problem
    assert listing(scratch) == before  # nothing written: no --out, nothing else


WRONG_MD5 = [
    pytest.param(["train", *TINY_TRAIN, "--train-size", "20", "--batch-size", "10", "--out", "run"], id="train"),
    pytest.param(["data", "info", "mnist", "--data-dir", "data dir"], id="data info"),
]


@pytest.mark.parametrize("argv", WRONG_MD5)
def test_a_data_dir_with_wrong_md5_files(argv, synthetic_mnist, scratch, capsys):
    """The synthetic files are not MNIST: their md5 sums differ from the table's."""
    before = listing(scratch)
    status = run(argv)
    out, err = capsys.readouterr()
    # names the file under --data-dir, what is wrong with it (md5) and the fix
    problem = refusal_problem(status, out, err, str(Path("data dir") / "mnist"), fixes=("ncgrok data fetch mnist",))
    assert problem is None, problem
    assert "md5" in err
    assert listing(scratch) == before


# ------------------------------------------------------------------------------------------------
# Odd but valid: paths with spaces work


def test_paths_with_spaces_work_for_bound(scratch, capsys):
    stats = scratch / "class stats" / "two classes.npz"
    stats.parent.mkdir()
    np.savez(stats, means=np.array([[1.0], [-1.0]]), W=np.array([[1.0], [-1.0]]), variances=np.array([0.25, 1.0]))
    assert run(["bound", "cantelli", "--stats", str(stats.relative_to(scratch)), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    # Thm. 3.2 by hand: margins 1 (m^2 = 1), so the class terms are 1/(1 + 1/0.25) = 0.2 and 1/(1 + 1) = 0.5
    assert report["results"]["bound"] == pytest.approx(0.5 * 0.2 + 0.5 * 0.5, rel=1e-12)


def test_paths_with_spaces_work_for_simulate(scratch, capsys):
    argv = ["simulate", "ufm", "--classes", "2", "--samples-per-class", "2", "--dim", "3", "--steps", "20",
            "--log-points", "5", "--no-figure", "--json", "--out", "ufm out dir"]
    assert run(argv) == 0
    summary = json.loads(capsys.readouterr().out)
    assert Path(summary["files"]["trajectory"]) == Path("ufm out dir") / "trajectory.csv"
    assert (scratch / "ufm out dir" / "trajectory.csv").is_file()
    assert (scratch / "ufm out dir" / "summary.json").is_file()


def test_paths_with_spaces_work_for_train_and_data(trusted_mnist, scratch, capsys):
    assert run(["data", "info", "mnist", "--data-dir", "data dir", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["count"] == 60
    argv = ["train", *TINY_TRAIN, "--train-size", "20", "--batch-size", "10", "--heldout-size", "20",
            "--out", "run dir with spaces", "--json"]
    assert run(argv) == 0, capsys.readouterr().err
    payload = json.loads(capsys.readouterr().out)
    assert Path(payload["out"]) == Path("run dir with spaces")
    assert (scratch / "run dir with spaces" / payload["runs"][0]["name"] / "metrics.csv").is_file()


def test_model_and_test_size_flags_reach_the_stored_settings(trusted_mnist, scratch, capsys):
    from ncgrok.empirical.models import LAYER_NORMS

    train = next(words_parser for words, words_parser in COMMANDS if words == ("train",))
    [layer_norm] = [action for action in train._actions if "--layer-norm" in action.option_strings]
    assert tuple(layer_norm.choices) == LAYER_NORMS  # the CLI offers what the model knows
    argv = ["train", *MODULAR, "--modulus", "11", "--train-fraction", "0.5", "--layers", "2", "--layer-norm", "post",
            "--out", "power"]
    assert run(argv) == 0, capsys.readouterr().err
    [config] = (scratch / "power").glob("*/config.json")
    stored = json.loads(config.read_text())
    assert (stored["layers"], stored["layer_norm"], stored["test_size"]) == (2, "post", None)
    argv = ["sweep", *TINY_TRAIN, "--train-size", "20", "--batch-size", "10", "--heldout-size", "10",
            "--test-size", "7", "--seeds", "0", "--weight-decay", "0.1", "--out", "subset"]
    assert run(argv) == 0, capsys.readouterr().err
    sweep = json.loads((scratch / "subset" / "sweep.json").read_text())["config"]
    assert (sweep["test_size"], sweep["layers"], sweep["layer_norm"]) == (7, 1, "none")
    [metrics] = (scratch / "subset").glob("*/metrics.csv")
    with open(metrics, newline="") as stream:
        assert {float(row["test_size"]) for row in csv.DictReader(stream)} == {7.0}


# ------------------------------------------------------------------------------------------------
# The real process: exit status and stderr as a shell sees them


def ncgrok_process(argv: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ncgrok", *argv], cwd=cwd, capture_output=True, text=True,
                          timeout=120, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})


def test_the_process_exits_2_with_one_line(tmp_path):
    refused = ncgrok_process(["train", "--out", "run", "--lr", "nan"], tmp_path)
    assert refused.returncode == 2 and refused.stdout == ""
    assert refused.stderr.count("\n") == 1 and "argument --lr: must be a finite number > 0" in refused.stderr
    assert not (tmp_path / "run").exists()
