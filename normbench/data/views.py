"""Reshape a dataset's inputs for a model kind, and reject impossible data/model pairings."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from normbench.data.split import DataSplit
from normbench.errors import OptionError, unknown
from normbench.models.kinds import BUILT_IN_MODELS as MODEL_KINDS

# Which static layouts each model kind can consume ("any" = decided when the file is read).
ACCEPTS: dict[str, tuple[str, ...]] = {
    "mlp": ("vector", "sequence", "image"),
    "cnn": ("sequence", "image"),
    "rnn": ("sequence", "image"),
}


def check_layout(dataset: str | None, layout: str, model: str) -> None:
    """``OptionError`` when a ``model`` cannot take ``layout`` data ("any" always passes)."""
    if model not in MODEL_KINDS:
        raise OptionError(unknown("model kind", model, MODEL_KINDS))
    if layout == "any" or layout in ACCEPTS[model]:
        return
    who = f"dataset '{dataset}'" if dataset else "the dataset"
    raise OptionError(
        f"{who} has {layout} inputs (N, F) with no sequence or spatial axis, so a {model} "
        "cannot take it; use model kind mlp, or a sequence or image dataset."
    )


def _for_mlp(x: np.ndarray) -> np.ndarray:
    return x.reshape(len(x), -1)  # (N, F)


def _for_cnn(x: np.ndarray, layout: str) -> np.ndarray:
    if layout == "sequence" and x.ndim == 2:
        return x[:, None, :]  # (N, L) → (N, 1, L) for Conv1d
    return x  # (N, C, L) and (N, C, H, W) are already channels-first


def _for_rnn(x: np.ndarray, layout: str) -> np.ndarray:
    if layout == "sequence" and x.ndim == 2:
        return x[:, :, None]  # (N, L) → (N, L, 1)
    if layout == "sequence":
        return np.ascontiguousarray(x.transpose(0, 2, 1))  # (N, C, L) → (N, L, C)
    n, c, h, w = x.shape
    # Rows become time steps: (N, C, H, W) → (N, H, C, W) → (N, H, C*W).
    return np.ascontiguousarray(x.transpose(0, 2, 1, 3)).reshape(n, h, c * w)


def view_for_model(split: DataSplit, model: str, dataset: str | None = None) -> DataSplit:
    """Shape ``split``'s inputs for ``model``: mlp flattens to (N, F); cnn gets (N, C, L) or
    (N, C, H, W); rnn gets (N, T, F) — image rows as time steps, sequences time-major.

    Labels are shared, not copied. ``OptionError`` for an impossible pairing. A ``custom``
    model gets the dataset's own layout: the factory is told ``input_shape``.
    """
    if model == "custom":
        return split
    check_layout(dataset, split.layout, model)
    if split.view == model:
        return split
    if split.view:
        raise ValueError(f"split is already a {split.view} view; view the original split")
    if model == "mlp":
        x_train, x_test, layout = _for_mlp(split.x_train), _for_mlp(split.x_test), "vector"
    elif model == "cnn":
        x_train, x_test = (
            _for_cnn(split.x_train, split.layout),
            _for_cnn(split.x_test, split.layout),
        )
        layout = split.layout
    else:
        x_train, x_test = (
            _for_rnn(split.x_train, split.layout),
            _for_rnn(split.x_test, split.layout),
        )
        layout = "sequence"
    return replace(split, x_train=x_train, x_test=x_test, layout=layout, view=model)
