"""Reshape a dataset's inputs for a model kind, and reject impossible data/model pairings."""

from __future__ import annotations

from dataclasses import replace

from normbench.data.split import DataSplit
from normbench.errors import OptionError
from normbench.models.catalog import MODELS, model_entry


def check_layout(dataset: str | None, layout: str, model: str) -> None:
    """``OptionError`` when a ``model`` cannot take ``layout`` data ("any" always passes)."""
    entry = model_entry(model)
    if layout == "any" or layout in entry.accepts:
        return
    who = f"dataset '{dataset}'" if dataset else "the dataset"
    takes = ", ".join(entry.accepts)
    fits = ", ".join(m.name for m in MODELS.values() if layout in m.accepts and m.view)
    raise OptionError(
        f"{who} has {layout} inputs, which a {model} model cannot take (it takes {takes}); "
        f"use model kind {fits}, or a dataset with {takes} inputs."
    )


def view_for_model(split: DataSplit, model: str, dataset: str | None = None) -> DataSplit:
    """Shape ``split``'s inputs as the model kind's entry says (its ``view``).

    mlp flattens to (N, F); cnn gets (N, C, L) or (N, C, H, W); rnn gets (N, T, F) — image rows
    as time steps; a transformer gets (N, T, F) values, token ids or images. Labels are shared,
    not copied. ``OptionError`` for an impossible pairing. A kind without a view (``custom``)
    gets the dataset's own layout: the factory is told ``input_shape``.
    """
    entry = model_entry(model)
    if entry.view is None:
        return split
    check_layout(dataset, split.layout, model)
    if split.view == model:
        return split
    if split.view:
        raise ValueError(f"split is already a {split.view} view; view the original split")
    x_train, layout = entry.view(split.x_train, split.layout)
    x_test, _ = entry.view(split.x_test, split.layout)
    return replace(split, x_train=x_train, x_test=x_test, layout=layout, view=model)
