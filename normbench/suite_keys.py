"""Suite key names shared by the loader (``spec``) and the JSON Schema (``suite_schema``)."""

from __future__ import annotations

# Grid / --set aliases: short names for the keys people sweep most.
ALIASES: dict[str, str] = {
    "norm": "model.norm",
    "placement": "model.placement",
    "activation": "model.activation",
    "lr_mult": "training.lr_mult",
    "batch_size": "training.batch_size",
    "optimizer": "training.optimizer",
    # Not in the README's original list, but the same idea and asked for often:
    "lr": "training.lr",
    "model": "model.kind",
    "dataset": "dataset.name",
    "steps": "training.steps",
    "epochs": "training.epochs",
    "batches": "training.batches",
    "dropout": "model.dropout",
}


def reaches(value: float, threshold: float, higher: bool) -> bool:
    """The one "target reached" rule: at or above it for accuracies, at or below for losses."""
    return value >= threshold if higher else value <= threshold


TARGET_KEYS = {
    "test_acc": True,  # True: reached when the value is >= the target
    "train_probe_acc": True,
    "test_loss": False,
    "train_loss": False,
    "train_probe_loss": False,
}
