"""Dataset registry (numpy only): entries, option resolution, cached loading and the listing."""

from __future__ import annotations

import functools
import importlib.util
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from normbench.data import generators as gen
from normbench.data import sources as src
from normbench.data.cache import (
    CACHE_FORMAT,
    Memo,
    cache_root,
    digest,
    file_signature,
    read_npz,
    write_npz_atomic,
)
from normbench.data.formats import ARRAY_KEYS
from normbench.data.options import Option, fill_options
from normbench.data.split import INPUT_NORMS, DataSplit, check_split, normalize_inputs
from normbench.data.views import MODEL_KINDS, check_layout, view_for_model
from normbench.errors import OptionError, unknown

# Nothing here may import torch, mnist1d or sklearn at module import: `normbench list`,
# `validate` and `--help` must stay instant. A test checks it in a fresh interpreter.

__all__ = [
    "COMMON_OPTIONS",
    "DATASETS",
    "MODEL_KINDS",
    "DataSplit",
    "DatasetEntry",
    "build_counts",
    "cache_path",
    "check_pairing",
    "clear_memo",
    "dataset_rows",
    "load_dataset",
    "resolve_dataset",
    "view_for_model",
]

Arrays = dict[str, np.ndarray]
Builder = Callable[[dict, list[Path]], Arrays]
Finisher = Callable[[Arrays, dict], DataSplit]

DEFAULT_TRAIN, DEFAULT_TEST = 4000, 1000  # synthetic sets: the size of MNIST-1D's split
LIMIT_SEED = 20150211  # fixed: limit_train/limit_test pick the same subset in every run


@dataclass(frozen=True)
class DatasetEntry:
    """A registered dataset: what `normbench list datasets` shows and how it is built.

    ``build(opts, files)`` produces the arrays that are cached on disk (keyed by the options in
    ``cache_keys``, the source files' size+mtime and ``packages`` versions); ``finish(arrays,
    opts)`` turns them into a :class:`DataSplit` (cheap steps such as scaling and binarising, so
    that those variants share one cache file).
    """

    name: str
    summary: str
    task: str  # "classification" | "regression" | "auto" (decided by the file)
    layout: str  # "vector" | "sequence" | "image" | "any" (decided by the file)
    shapes: str
    size: str
    options: tuple[Option, ...]  # dataset-specific; COMMON_OPTIONS apply to every dataset
    build: Builder
    finish: Finisher
    extra: str = ""  # pip extra that provides a requirement, e.g. "sklearn"
    locate: Callable[[dict], list[Path]] | None = None  # source files (InputError if absent)
    cache_keys: tuple[str, ...] | None = None  # options the build depends on; None = all own
    disk_cache: bool = True  # False where regenerating is faster than reading a file back
    packages: tuple[str, ...] = ()  # distributions whose version changes the built data
    check: Callable[[dict, set[str]], None] | None = None  # cross-option checks; may fill sizes
    is_available: Callable[[], bool] = lambda: True
    downloads: bool = False  # files can be fetched into the cache on first use
    version: int = 1  # bump when the builder changes its output, to invalidate caches

    def available(self) -> bool:
        """Whether the dataset can be loaded on this machine without a download."""
        return self.is_available()

    def all_options(self) -> tuple[Option, ...]:
        """The common options followed by the dataset's own."""
        return (*COMMON_OPTIONS, *self.options)

    def defaults(self) -> dict[str, Any]:
        """Every option's default (before cross-option checks fill derived sizes)."""
        return {o.name: o.default for o in self.all_options()}


COMMON_OPTIONS: tuple[Option, ...] = (
    Option(
        "input_norm", "choice", "none",
        "normalise inputs with training-split statistics: per feature for vector data, per "
        "channel for sequences and images (one channel for (N, L) sequences)",
        choices=INPUT_NORMS,
    ),
    Option("limit_train", "int", None, "use a fixed random subset of this many training "
           "samples (quick runs)", min=1, nullable=True),
    Option("limit_test", "int", None, "use a fixed random subset of this many test samples",
           min=1, nullable=True),
)


# --- option helpers and cross-option checks ---------------------------------------------------


def _seed(default: int) -> Option:
    return Option("seed", "int", default, "seed of the generator (not the training seed)",
                  min=0, max=2**32 - 1)


_SIZE_OPTIONS: tuple[Option, ...] = (
    Option("num_samples", "int", None, "train + test samples (80/20 split when given alone)",
           min=2, nullable=True),
    Option("num_train", "int", None, f"training samples (default {DEFAULT_TRAIN})", min=1,
           nullable=True),
    Option("num_test", "int", None, f"test samples (default {DEFAULT_TEST})", min=1,
           nullable=True),
)


def _path_option(summary: str) -> Option:
    return Option("path", "path", None, summary, nullable=True)


def _settle_sizes(opts: dict, min_train: int) -> None:
    """Fill num_samples / num_train / num_test from whichever were given (idempotently)."""
    n, train, test = opts["num_samples"], opts["num_train"], opts["num_test"]
    if n is None:
        train = DEFAULT_TRAIN if train is None else train
        test = DEFAULT_TEST if test is None else test
    elif train is None and test is None:
        train = round(0.8 * n)
        test = n - train
    elif train is None:
        train = n - test
    elif test is None:
        test = n - train
    elif train + test != n:
        raise OptionError(
            f"num_samples {n} is not num_train {train} + num_test {test}; give num_samples "
            "alone for an 80/20 split, or num_train and num_test",
            ("num_samples",),
        )
    if train < min_train or test < 1:
        key = "num_samples" if n is not None else ("num_train" if train < min_train else "num_test")
        raise OptionError(
            f"too small: {train} training and {test} test samples; need at least {min_train} "
            "training sample(s) (one per class) and 1 test sample",
            (key,),
        )
    opts.update(num_samples=train + test, num_train=train, num_test=test)


def _check_classes_sizes(opts: dict, given: set[str]) -> None:
    _settle_sizes(opts, opts["classes"])


def _check_regression_sizes(opts: dict, given: set[str]) -> None:
    _settle_sizes(opts, 1)


def _check_mnist1d(opts: dict, given: set[str]) -> None:
    train, test = gen.mnist1d_sizes(opts["num_samples"], opts["train_split"])
    if train < 10 or test < 1:
        raise OptionError(
            f"too small: {opts['num_samples']} samples give {train} training and {test} test "
            f"samples at train_split {opts['train_split']}; MNIST-1D needs at least 10 training "
            "samples (one per class) and 1 test sample",
            ("num_samples",),
        )


def _check_digits(opts: dict, given: set[str]) -> None:
    test = gen.digits_test_size(gen.DIGITS_SIZE, opts["test_fraction"])
    if gen.DIGITS_SIZE - test < 10:
        raise OptionError(
            f"too large: it leaves {gen.DIGITS_SIZE - test} training samples; digits needs at "
            "least 10 (one per class)",
            ("test_fraction",),
        )


def _check_npz(opts: dict, given: set[str]) -> None:
    if opts["path"] is None:
        raise OptionError(
            "is required: the .npz or .pt file holding x_train, y_train, x_test, y_test",
            ("path",),
        )
    if opts["num_classes"] is not None and opts["task"] == "regression":
        raise OptionError("applies to classification only, but task is regression",
                          ("num_classes",))


def _module_available(module: str) -> Callable[[], bool]:
    return lambda: importlib.util.find_spec(module) is not None


# --- the registry ------------------------------------------------------------------------------

_IMAGE_FILE_OPTIONS: tuple[Option, ...] = (
    _path_option("directory with the files (default: <cache>/raw/<name>, downloaded there)"),
    Option("download", "bool", True, "fetch missing files into the cache (off when "
           "NORMBENCH_OFFLINE=1)"),
)

_ENTRIES: tuple[DatasetEntry, ...] = (
    DatasetEntry(
        name="mnist1d",
        summary="MNIST-1D (Greydanus 2020), regenerated offline with mnist1d.make_dataset; "
        "shuffle_seq: true gives the shuffled-sequence benchmark",
        task="classification",
        layout="sequence",
        shapes="x (N, 40), y (N,) 10 classes",
        size="5,000 (4,000 train / 1,000 test)",
        options=(
            Option("num_samples", "int", 5000, "samples before the split (whole per class)",
                   min=10),
            Option("shuffle_seq", "bool", False, "permute the 40 time steps (one fixed "
                   "permutation): the shuffled benchmark"),
            _seed(42),
            Option("train_split", "float", 0.8, "training fraction", min=0.0, max=1.0,
                   open_interval=True),
            Option("template_len", "int", 12, "generator: template length", min=2),
            Option("padding", "int_pair", [36, 60], "generator: random padding range", min=0),
            Option("scale_coeff", "float", 0.4, "generator: random scaling", min=0.0),
            Option("max_translation", "int", 48, "generator: maximum shift", min=1),
            Option("corr_noise_scale", "float", 0.25, "generator: correlated noise", min=0.0),
            Option("iid_noise_scale", "float", 0.02, "generator: i.i.d. noise", min=0.0),
            Option("shear_scale", "float", 0.75, "generator: shear", min=0.0),
            Option("final_seq_length", "int", 40, "generator: output length", min=2),
        ),
        build=gen.build_mnist1d,
        finish=gen.finisher("classification", "sequence", None, 10),
        check=_check_mnist1d,
        packages=("mnist1d",),
        is_available=_module_available("mnist1d"),
    ),
    DatasetEntry(
        name="mnist",
        summary="MNIST digits from the IDX files; binarize: true for Ioffe & Szegedy's setup",
        task="classification",
        layout="image",
        shapes="x (N, 1, 28, 28) in [0, 1], y (N,) 10 classes",
        size="70,000 (60,000 train / 10,000 test)",
        options=(
            *_IMAGE_FILE_OPTIONS,
            Option("binarize", "bool", False, "pixels > 0.5 (after scaling to [0, 1]) → 1, else 0"),
        ),
        build=src.build_idx,
        finish=src.finish_images,
        locate=functools.partial(src.locate, "mnist"),
        cache_keys=(),  # the files alone determine the parsed arrays
        is_available=functools.partial(src.files_present, "mnist"),
        downloads=True,
    ),
    DatasetEntry(
        name="fashion-mnist",
        summary="Fashion-MNIST (Zalando) from the IDX files, same format as MNIST",
        task="classification",
        layout="image",
        shapes="x (N, 1, 28, 28) in [0, 1], y (N,) 10 classes",
        size="70,000 (60,000 train / 10,000 test)",
        options=(
            *_IMAGE_FILE_OPTIONS,
            Option("binarize", "bool", False, "pixels > 0.5 (after scaling to [0, 1]) → 1, else 0"),
        ),
        build=src.build_idx,
        finish=src.finish_images,
        locate=functools.partial(src.locate, "fashion-mnist"),
        cache_keys=(),
        is_available=functools.partial(src.files_present, "fashion-mnist"),
        downloads=True,
    ),
    DatasetEntry(
        name="cifar10",
        summary="CIFAR-10 from the binary version (data_batch_1..5.bin, test_batch.bin)",
        task="classification",
        layout="image",
        shapes="x (N, 3, 32, 32) in [0, 1], y (N,) 10 classes",
        size="60,000 (50,000 train / 10,000 test)",
        options=_IMAGE_FILE_OPTIONS,
        build=src.build_cifar,
        finish=src.finish_images,
        locate=functools.partial(src.locate, "cifar10"),
        cache_keys=(),
        is_available=functools.partial(src.files_present, "cifar10"),
        downloads=True,
    ),
    DatasetEntry(
        name="digits",
        summary="scikit-learn's 8×8 handwritten digits, scaled to [0, 1], seeded split",
        task="classification",
        layout="image",
        shapes="x (N, 1, 8, 8), y (N,) 10 classes",
        size="1,797 (test_fraction 0.2 → 1,438 / 359)",
        options=(
            _seed(0),
            Option("test_fraction", "float", 0.2, "fraction held out for test", min=0.0,
                   max=1.0, open_interval=True),
        ),
        build=gen.build_digits,
        finish=gen.finisher("classification", "image", None, 10),
        extra="sklearn",
        check=_check_digits,
        packages=("scikit-learn",),
        is_available=_module_available("sklearn"),
    ),
    DatasetEntry(
        name="npz",
        summary="your own arrays: an .npz (or .pt, read with weights_only=True) with x_train, "
        "y_train, x_test, y_test; integer labels → classification",
        task="auto",
        layout="any",
        shapes="x rank 2 (N, F) vector, 3 (N, C, L) sequence, 4 (N, C, H, W) image",
        size="from the file",
        options=(
            _path_option("the .npz / .pt file (required)"),
            Option("task", "choice", "auto", "auto: integer labels → classification, "
                   "floats → regression", choices=("auto", "classification", "regression")),
            Option("num_classes", "int", None, "classes (default: largest label + 1)", min=1,
                   nullable=True),
        ),
        build=src.build_file,
        finish=src.finish_file,
        locate=src.locate_file,
        cache_keys=(),
        disk_cache=False,  # the file is already a fast array file; the memo covers repeats
        check=_check_npz,
    ),
    DatasetEntry(
        name="synthetic-blobs",
        summary="Gaussian clusters with growing overlap: fixed class centres on the unit "
        "sphere, noise std = dispersion",
        task="classification",
        layout="vector",
        shapes="x (N, features), y (N,) `classes` classes",
        size="4,000 / 1,000 by default",
        options=(
            Option("classes", "int", 4, "number of clusters", min=2),
            Option("features", "int", 16, "input dimension", min=1),
            Option("dispersion", "float", 0.5, "noise std around each unit-radius centre",
                   min=0.0),
            *_SIZE_OPTIONS,
            _seed(0),
        ),
        build=gen.build_blobs,
        finish=gen.finisher("classification", "vector", "classes"),
        disk_cache=False,  # generating takes milliseconds
        check=_check_classes_sizes,
    ),
    DatasetEntry(
        name="synthetic-spirals",
        summary="interleaved 2-D spirals, one arm per class",
        task="classification",
        layout="vector",
        shapes="x (N, 2), y (N,) `classes` classes",
        size="4,000 / 1,000 by default",
        options=(
            Option("classes", "int", 3, "number of arms (one class each)", min=2),
            Option("noise", "float", 0.05, "Gaussian position noise std (radius is 1)",
                   min=0.0),
            Option("turns", "float", 1.0, "revolutions of each arm", min=0.0),
            *_SIZE_OPTIONS,
            _seed(0),
        ),
        build=gen.build_spirals,
        finish=gen.finisher("classification", "vector", "classes"),
        disk_cache=False,
        check=_check_classes_sizes,
    ),
    DatasetEntry(
        name="synthetic-regression",
        summary="x ~ N(0, I), y = f(x) + noise; f linear, or sines plus products "
        "(nonlinear, so sigmoid/tanh nets have something to learn)",
        task="regression",
        layout="vector",
        shapes="x (N, features), y (N, targets)",
        size="4,000 / 1,000 by default",
        options=(
            Option("features", "int", 8, "input dimension", min=1),
            Option("targets", "int", 1, "output dimension", min=1),
            Option("noise", "float", 0.1, "std of the target noise", min=0.0),
            Option("target", "choice", "nonlinear", "the function f",
                   choices=("nonlinear", "linear")),
            *_SIZE_OPTIONS,
            _seed(0),
        ),
        build=gen.build_regression,
        finish=gen.finisher("regression", "vector", "targets"),
        disk_cache=False,
        check=_check_regression_sizes,
    ),
    DatasetEntry(
        name="adding-problem",
        summary="the adding problem: sum the two marked values of a long sequence",
        task="regression",
        layout="sequence",
        shapes="x (N, 2, length) channels values, markers; y (N, 1)",
        size="4,000 / 1,000 by default",
        options=(
            Option("length", "int", 50, "sequence length", min=2),
            *_SIZE_OPTIONS,
            _seed(0),
        ),
        build=gen.build_adding,
        finish=gen.finisher("regression", "sequence", None, 1),
        disk_cache=False,
        check=_check_regression_sizes,
    ),
)

DATASETS: dict[str, DatasetEntry] = {e.name: e for e in _ENTRIES}


# --- resolution --------------------------------------------------------------------------------


def resolve_dataset(cfg: Mapping[str, Any] | str) -> dict:
    """Validate a dataset config and fill every option with its default (idempotent).

    A bare string is taken as ``{"name": ...}``. ``OptionError`` (with the key path below the
    dataset mapping) for an unknown name or option, a wrong type or a bad value.
    """
    if isinstance(cfg, str):
        cfg = {"name": cfg}
    if not isinstance(cfg, Mapping):
        raise OptionError(f"must be a mapping with a name:, got {type(cfg).__name__}")
    if "name" not in cfg:
        raise OptionError(f"is required (choose from {', '.join(DATASETS)})", ("name",))
    name = cfg["name"]
    if not isinstance(name, str) or name not in DATASETS:
        raise OptionError(unknown("dataset", name, list(DATASETS)), ("name",))
    entry = DATASETS[name]
    given = {k: v for k, v in cfg.items() if k != "name"}
    opts = fill_options(name, entry.all_options(), given)
    if entry.check is not None:
        entry.check(opts, set(given))
    return {"name": name, **opts}


def check_pairing(dataset_name: str, model_kind: str) -> None:
    """Torch-free: ``OptionError`` when ``model_kind`` cannot take the dataset's static
    layout (vector data with a cnn or rnn); ``npz`` ("any") is only checked when loaded."""
    if dataset_name not in DATASETS:
        raise OptionError(unknown("dataset", dataset_name, list(DATASETS)))
    check_layout(dataset_name, DATASETS[dataset_name].layout, model_kind)


# --- loading -----------------------------------------------------------------------------------

_MEMO: Memo[DataSplit] = Memo(size=4)
_BUILDS: Counter[str] = Counter()


def clear_memo() -> None:
    """Forget the in-process memo (the next load reads the disk cache)."""
    _MEMO.clear()


def build_counts() -> dict[str, int]:
    """How many times each dataset was actually built (parsed/generated) in this process."""
    return dict(_BUILDS)


@functools.cache
def _package_version(dist: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "absent"


def _build_key(entry: DatasetEntry, opts: dict, files: list[Path]) -> str:
    keys = entry.cache_keys if entry.cache_keys is not None else [o.name for o in entry.options]
    return digest({
        "dataset": entry.name,
        "version": entry.version,
        "format": CACHE_FORMAT,
        "options": {k: opts[k] for k in keys},
        "files": file_signature(files),
        "packages": {p: _package_version(p) for p in entry.packages},
    })


def cache_path(name: str, build_key: str) -> Path:
    """Where the built arrays of dataset ``name`` with ``build_key`` are cached."""
    return cache_root() / "datasets" / f"{name}-{build_key}.npz"


def _built_arrays(entry: DatasetEntry, opts: dict, files: list[Path], key: str) -> Arrays:
    path = cache_path(entry.name, key)
    if entry.disk_cache:
        arrays = read_npz(path)
        if arrays is not None and all(k in arrays for k in ARRAY_KEYS):
            return arrays
    _BUILDS[entry.name] += 1
    arrays = entry.build(opts, files)
    if entry.disk_cache:
        write_npz_atomic(path, arrays)
    return arrays


def _subset(n: int, limit: int | None, salt: int) -> np.ndarray | None:
    if limit is None or limit >= n:
        return None
    picks = np.random.default_rng([LIMIT_SEED, salt]).choice(n, size=limit, replace=False)
    return np.sort(picks)  # keep the file's order


def _apply_limits(arrays: Arrays, opts: dict) -> Arrays:
    out = dict(arrays)
    for salt, part in enumerate(("train", "test")):
        x, y = out[f"x_{part}"], out[f"y_{part}"]
        if len(x) != len(y):
            continue  # check_split reports the mismatch with the source named
        index = _subset(len(x), opts[f"limit_{part}"], salt)
        if index is not None:
            out[f"x_{part}"], out[f"y_{part}"] = x[index], y[index]
    return out


def _source(entry: DatasetEntry, files: list[Path]) -> str:
    if entry.name == "npz":
        return str(files[0])
    if files:
        return f"{entry.name} files in {files[0].parent}"
    return f"dataset '{entry.name}'"


def _prepare(entry: DatasetEntry, opts: dict, files: list[Path], key: str) -> DataSplit:
    arrays = _apply_limits(_built_arrays(entry, opts, files, key), opts)
    split = entry.finish(arrays, opts)
    check_split(split, _source(entry, files))
    return normalize_inputs(split, opts["input_norm"])


def load_dataset(cfg: Mapping[str, Any] | str) -> DataSplit:
    """Resolve ``cfg`` and return its train/test arrays, with ``input_norm`` applied.

    Built arrays are cached on disk (``cache_path``) and whole splits memoised in-process;
    the returned arrays may be shared, so treat them as read-only. ``OptionError`` for a bad
    config, ``InputError`` (one sentence) for missing or bad data files.
    """
    opts = resolve_dataset(cfg)
    entry = DATASETS[opts["name"]]
    files = entry.locate(opts) if entry.locate is not None else []
    key = _build_key(entry, opts, files)
    memo_key = digest([key, opts])
    split = _MEMO.get(memo_key)
    if split is None:
        split = _prepare(entry, opts, files, key)
        _MEMO.put(memo_key, split)
    return replace(split)  # a fresh container, so callers may rebind fields freely


# --- listing -----------------------------------------------------------------------------------


def _availability_note(entry: DatasetEntry, available: bool) -> str:
    if available:
        return ""
    if entry.extra:
        return f"pip install 'normbench[{entry.extra}]'"
    if entry.downloads:
        return f"not in {src.default_dir(entry.name)}; downloaded there on first use"
    return "a required package is missing"


def dataset_rows() -> list[dict[str, Any]]:
    """One row per dataset for `normbench list datasets` (COMMON_OPTIONS apply to all)."""
    rows = []
    for entry in DATASETS.values():
        ok = entry.available()
        rows.append({
            "name": entry.name,
            "summary": entry.summary,
            "task": entry.task,
            "layout": entry.layout,
            "shapes": entry.shapes,
            "size": entry.size,
            "options": ", ".join(o.describe() for o in entry.options),
            "extra": entry.extra,
            "available": ok,
            "note": _availability_note(entry, ok),
        })
    return rows
