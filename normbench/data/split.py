"""The DataSplit container, its sanity checks, and input normalisation with training statistics."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from normbench.errors import InputError

INPUT_NORMS: tuple[str, ...] = ("none", "zscore", "minmax")
# "tokens": x (N, T) token ids (as float32), y (N, T) the label of every position.
LAYOUTS: tuple[str, ...] = ("vector", "sequence", "image", "tokens")
IGNORE_INDEX = -100  # a token label that is not scored (F.cross_entropy's default ignore_index)


@dataclass
class DataSplit:
    """Train and test arrays of one dataset, ready for the training loop.

    The arrays may be shared with the in-process memo: treat them as read-only.
    ``view`` is ``""`` for the dataset's own layout, or the model kind that
    :func:`view_for_model` shaped it for; an ``rnn`` view holds ``(N, T, F)``.
    """

    x_train: np.ndarray  # float32
    y_train: np.ndarray  # int64 (classification) or float32 (regression, shape (N, D))
    x_test: np.ndarray
    y_test: np.ndarray
    task: str  # "classification" | "regression"
    num_outputs: int  # classes, or regression targets
    layout: str  # "vector" (N, F) | "sequence" (N, L) or (N, C, L) | "image" (N, C, H, W)
    #               | "tokens" (N, T) with labels (N, T)
    view: str = ""
    domain_train: np.ndarray | None = None  # int64 domain per sample (two-domain datasets)
    domain_test: np.ndarray | None = None
    # What the data are, beyond the arrays (a text's fingerprint, a task's loss floor, …):
    # JSON-ready, recorded with every result of the dataset.
    info: dict[str, Any] = field(default_factory=dict)
    fingerprint: str = ""  # ``fingerprint`` of the arrays as loaded ("" when not computed)

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one input sample, e.g. ``(1, 28, 28)``."""
        return tuple(self.x_train.shape[1:])


def fingerprint(split: DataSplit) -> str:
    """Digest of the arrays training will see (their bytes, shapes and dtypes)."""
    import hashlib

    h = hashlib.sha1()
    for name in ("x_train", "y_train", "x_test", "y_test"):
        array = getattr(split, name)
        h.update(f"{name}{array.shape}{array.dtype}".encode())
        h.update(memoryview(array).cast("B") if array.flags.c_contiguous else array.tobytes())
    return h.hexdigest()[:16]


# --- checks ----------------------------------------------------------------------------------


def _check_lengths(split: DataSplit, source: str) -> None:
    for part in ("train", "test"):
        x, y = getattr(split, f"x_{part}"), getattr(split, f"y_{part}")
        if len(x) != len(y):
            raise InputError(
                f"{source}: x_{part} has {len(x)} samples but y_{part} has {len(y)} labels."
            )
        if len(x) == 0:
            raise InputError(f"{source}: the {part} split is empty.")
    if split.x_train.shape[1:] != split.x_test.shape[1:]:
        raise InputError(
            f"{source}: train inputs have shape {split.x_train.shape[1:]} per sample but test "
            f"inputs have {split.x_test.shape[1:]}."
        )


def _check_finite(name: str, array: np.ndarray, source: str) -> None:
    bad = ~np.isfinite(array)
    count = int(bad.sum())
    if count:
        first = int(np.argmax(bad.reshape(len(array), -1).any(axis=1)))
        raise InputError(
            f"{source}: {name} contains {count} non-finite value(s) (NaN or inf), the first in "
            f"sample {first}."
        )


def _check_labels(name: str, y: np.ndarray, classes: int, source: str, tokens: bool) -> None:
    ndim, what = (
        (2, "one integer label per token") if tokens else (1, "one integer class label per sample")
    )
    if y.ndim != ndim or not np.issubdtype(y.dtype, np.integer):
        raise InputError(
            f"{source}: {name} must hold {what}, got dtype {y.dtype} and shape {y.shape}."
        )
    bad = (y < 0) | (y >= classes)
    if tokens:
        bad &= y != IGNORE_INDEX
    if bad.any():
        first = np.unravel_index(int(np.argmax(bad)), y.shape)
        where = ", ".join(map(str, first))
        raise InputError(
            f"{source}: {name} has label {int(y[first])} at index {where}, outside the "
            f"{classes} classes 0..{classes - 1}."
        )


def check_split(split: DataSplit, source: str) -> None:
    """Raise ``InputError`` (one sentence, naming ``source``) unless ``split`` is well formed."""
    _check_lengths(split, source)
    _check_finite("x_train", split.x_train, source)
    _check_finite("x_test", split.x_test, source)
    for part in ("train", "test"):
        y = getattr(split, f"y_{part}")
        if split.task == "classification":
            _check_labels(f"y_{part}", y, split.num_outputs, source, split.layout == "tokens")
        else:
            _check_finite(f"y_{part}", y, source)


# --- input normalisation -----------------------------------------------------------------------


def stat_axes(layout: str, ndim: int) -> tuple[int, ...]:
    """Axes the statistics are pooled over: per feature for vectors, per channel otherwise.

    vector (N, F) → over N; sequence (N, L) → one scalar (a single channel);
    sequence (N, C, L) → over N, L; image (N, C, H, W) → over N, H, W.
    """
    if layout == "vector":
        return (0,)
    if ndim == 2:  # (N, L): one channel
        return (0, 1)
    return (0, *range(2, ndim))


def _chunks(x: np.ndarray, rows: int = 4096):
    for start in range(0, len(x), rows):
        yield x[start : start + rows]


def _mean_std(x: np.ndarray, axes: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Two-pass mean and std in float64, chunked so CIFAR never needs a float64 copy."""
    count = np.prod([x.shape[a] for a in axes], dtype=np.float64)
    total = sum(c.sum(axis=axes, dtype=np.float64, keepdims=True) for c in _chunks(x))
    mean = total / count
    sq = sum(((c - mean) ** 2).sum(axis=axes, keepdims=True) for c in _chunks(x))
    return mean, np.sqrt(sq / count)


def input_stats(x_train: np.ndarray, layout: str, mode: str) -> tuple[np.ndarray, np.ndarray]:
    """``(shift, scale)`` from the training inputs alone, broadcastable against ``x``."""
    axes = stat_axes(layout, x_train.ndim)
    if mode == "zscore":
        shift, scale = _mean_std(x_train, axes)
    elif mode == "minmax":
        shift = x_train.min(axis=axes, keepdims=True).astype(np.float64)
        scale = x_train.max(axis=axes, keepdims=True) - shift
    else:
        raise ValueError(f"unknown input_norm {mode!r}")
    # A constant feature (e.g. an MNIST border pixel) stays constant instead of becoming NaN.
    scale = np.where(scale > 1e-12, scale, 1.0)
    return shift.astype(np.float32), scale.astype(np.float32)


def normalize_inputs(split: DataSplit, mode: str) -> DataSplit:
    """Apply ``input_norm`` with statistics of the training split only (no test leakage)."""
    if mode == "none":
        return split
    shift, scale = input_stats(split.x_train, split.layout, mode)
    return replace(
        split,
        x_train=(split.x_train - shift) / scale,
        x_test=(split.x_test - shift) / scale,
    )
