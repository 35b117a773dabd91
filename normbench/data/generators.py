"""Generated datasets: MNIST-1D, sklearn digits, synthetic blobs/spirals/regression/adding."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import numpy as np

from normbench.data.split import DataSplit
from normbench.errors import InputError

Arrays = dict[str, np.ndarray]
Draw = Callable[[np.random.Generator, int], tuple[np.ndarray, np.ndarray]]  # (rng, n) → x, y

# The mnist1d generator's own defaults (mnist1d.data.get_dataset_args), copied so that
# validation and `list datasets` need not import mnist1d (it pulls in matplotlib and scipy).
# A test checks they still match the installed package.
MNIST1D_DEFAULTS: dict[str, object] = {
    "num_samples": 5000,
    "train_split": 0.8,
    "template_len": 12,
    "padding": [36, 60],
    "scale_coeff": 0.4,
    "max_translation": 48,
    "corr_noise_scale": 0.25,
    "iid_noise_scale": 0.02,
    "shear_scale": 0.75,
    "shuffle_seq": False,
    "final_seq_length": 40,
    "seed": 42,
}


@contextmanager
def _global_rng_preserved() -> Iterator[None]:
    """mnist1d seeds numpy's and Python's global RNGs; restore them so that generating a
    dataset never changes any later global random draw in the caller."""
    np_state, py_state = np.random.get_state(), random.getstate()
    try:
        yield
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)


def build_mnist1d(opts: dict, files: object = None) -> Arrays:
    """Regenerate MNIST-1D offline with ``make_dataset`` (never ``get_dataset``: it downloads)."""
    try:
        from mnist1d.data import get_dataset_args, make_dataset
    except ImportError:
        raise InputError(
            "dataset 'mnist1d' needs the mnist1d package, which is not installed: "
            "pip install mnist1d."
        ) from None
    args = get_dataset_args()
    for key in MNIST1D_DEFAULTS:
        setattr(args, key, list(opts[key]) if key == "padding" else opts[key])
    with _global_rng_preserved():
        data = make_dataset(args)
    return {
        "x_train": data["x"].astype(np.float32),
        "y_train": data["y"].astype(np.int64),
        "x_test": data["x_test"].astype(np.float32),
        "y_test": data["y_test"].astype(np.int64),
    }


def mnist1d_sizes(num_samples: int, train_split: float) -> tuple[int, int]:
    """(train, test) sizes that ``make_dataset`` produces: whole samples per class, then a
    ``train_split`` cut."""
    total = (num_samples // 10) * 10
    train = int(total * train_split)
    return train, total - train


def build_digits(opts: dict, files: object = None) -> Arrays:
    """sklearn's bundled 8×8 digits, scaled to [0, 1], split by a seeded permutation."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise InputError(
            "dataset 'digits' needs scikit-learn, which is not installed: "
            "pip install 'normbench[sklearn]'."
        ) from None
    data = load_digits()
    x = (data.data.astype(np.float32) / 16.0).reshape(-1, 1, 8, 8)  # pixel values are 0..16
    y = data.target.astype(np.int64)
    order = np.random.default_rng(opts["seed"]).permutation(len(y))
    n_test = digits_test_size(len(y), opts["test_fraction"])
    test, train = order[:n_test], order[n_test:]
    return {"x_train": x[train], "y_train": y[train], "x_test": x[test], "y_test": y[test]}


DIGITS_SIZE = 1797


def digits_test_size(total: int, fraction: float) -> int:
    """Number of test samples for a ``test_fraction`` (at least one)."""
    return max(1, round(total * fraction))


# --- synthetic --------------------------------------------------------------------------------


def _streams(seed: int) -> tuple[np.random.Generator, np.random.Generator, np.random.Generator]:
    """Independent generators for the task itself (centres, coefficients), the train split and
    the test split: changing num_test or dispersion never changes the task or the train set."""
    task, train, test = np.random.SeedSequence(seed).spawn(3)
    return np.random.default_rng(task), np.random.default_rng(train), np.random.default_rng(test)


def _balanced_labels(rng: np.random.Generator, n: int, classes: int) -> np.ndarray:
    return rng.permutation(np.arange(n) % classes).astype(np.int64)


def _split(opts: dict, draw: Draw) -> Arrays:
    _, train_rng, test_rng = _streams(opts["seed"])
    x_train, y_train = draw(train_rng, opts["num_train"])
    x_test, y_test = draw(test_rng, opts["num_test"])
    return {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}


BLOB_RADIUS = 1.0  # class centres lie on this sphere; dispersion alone sets the overlap


def blob_centres(seed: int, classes: int, features: int) -> np.ndarray:
    """Class centres, uniformly random on a sphere of radius ``BLOB_RADIUS``: (classes, F)."""
    task_rng = _streams(seed)[0]
    centres = task_rng.standard_normal((classes, features))
    return BLOB_RADIUS * centres / np.linalg.norm(centres, axis=1, keepdims=True)


def build_blobs(opts: dict, files: object = None) -> Arrays:
    """Gaussian clusters around fixed centres; noise std = dispersion, so growing dispersion
    grows the overlap while every sample keeps its noise direction."""
    classes, features = opts["classes"], opts["features"]
    centres = blob_centres(opts["seed"], classes, features)

    def draw(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        y = _balanced_labels(rng, n, classes)
        noise = rng.standard_normal((n, features))
        return (centres[y] + opts["dispersion"] * noise).astype(np.float32), y

    return _split(opts, draw)


def build_spirals(opts: dict, files: object = None) -> Arrays:
    """Interleaved 2-D spirals, one arm per class: radius r ∈ [0, 1], angle
    2π·turns·r + 2π·class/classes, plus Gaussian position noise of std ``noise``."""
    classes = opts["classes"]

    def draw(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        y = _balanced_labels(rng, n, classes)
        r = rng.uniform(0.0, 1.0, n)
        angle = 2 * np.pi * (opts["turns"] * r + y / classes)
        x = np.stack([r * np.cos(angle), r * np.sin(angle)], axis=1)
        x += opts["noise"] * rng.standard_normal((n, 2))
        return x.astype(np.float32), y

    return _split(opts, draw)


REGRESSION_DIRECTIONS = 4  # sine components of the nonlinear target


def regression_target(x: np.ndarray, seed: int, targets: int, kind: str) -> np.ndarray:
    """Noise-free targets (N, T) of roughly unit variance for inputs x ~ N(0, 1)."""
    task_rng = _streams(seed)[0]
    features = x.shape[1]
    # Draw every coefficient in a fixed order so both kinds share the same linear part.
    w = task_rng.standard_normal((features, targets)) / np.sqrt(features)
    u = task_rng.standard_normal((features, REGRESSION_DIRECTIONS)) / np.sqrt(features)
    a = task_rng.standard_normal((REGRESSION_DIRECTIONS, targets)) / np.sqrt(REGRESSION_DIRECTIONS)
    v1, v2 = (task_rng.standard_normal((features, targets)) / np.sqrt(features) for _ in range(2))
    if kind == "linear":
        return x @ w
    # sin(2u) of u ~ N(0, 1) has variance ≈ 1/2 and a product of two N(0, 1) about 1:
    # the 1/√1.5 keeps the target near unit variance, something sigmoid/tanh nets can fit.
    return (np.sin(2 * x @ u) @ a + (x @ v1) * (x @ v2)) / np.sqrt(1.5)


def build_regression(opts: dict, files: object = None) -> Arrays:
    """x ~ N(0, I); y = f(x) + noise, f linear or a sum of sines and products."""

    def draw(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        x = rng.standard_normal((n, opts["features"]))
        y = regression_target(x, opts["seed"], opts["targets"], opts["target"])
        y = y + opts["noise"] * rng.standard_normal(y.shape)
        return x.astype(np.float32), y.astype(np.float32)

    return _split(opts, draw)


def build_adding(opts: dict, files: object = None) -> Arrays:
    """The adding problem (Hochreiter & Schmidhuber): channel 0 holds U(0, 1) values, channel 1
    marks one position in each half; the target is the sum of the two marked values."""
    length = opts["length"]

    def draw(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        values = rng.uniform(0.0, 1.0, (n, length))
        half = length // 2
        first, second = rng.integers(0, half, n), rng.integers(half, length, n)
        rows = np.arange(n)
        markers = np.zeros((n, length))
        markers[rows, first] = markers[rows, second] = 1.0
        x = np.stack([values, markers], axis=1)  # (N, 2, L)
        y = (values[rows, first] + values[rows, second])[:, None]  # (N, 1)
        return x.astype(np.float32), y.astype(np.float32)

    return _split(opts, draw)


def finisher(
    task: str, layout: str, outputs_key: str | None, fixed_outputs: int = 0
) -> Callable[[Arrays, dict], DataSplit]:
    """A ``finish`` function for generated arrays that already have the final dtypes;
    ``num_outputs`` is the option ``outputs_key`` (e.g. classes) or ``fixed_outputs``."""

    def finish(arrays: Arrays, opts: dict) -> DataSplit:
        outputs = opts[outputs_key] if outputs_key else fixed_outputs
        return DataSplit(
            x_train=arrays["x_train"].astype(np.float32, copy=False),
            y_train=arrays["y_train"],
            x_test=arrays["x_test"].astype(np.float32, copy=False),
            y_test=arrays["y_test"],
            task=task,
            num_outputs=int(outputs),
            layout=layout,
        )

    return finish
