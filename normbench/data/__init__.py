"""Datasets: registry, loaders, disk cache and input normalisation (numpy only, no torch)."""

from normbench.data.registry import (
    COMMON_OPTIONS,
    DATASETS,
    DatasetEntry,
    DataSplit,
    build_counts,
    check_pairing,
    clear_memo,
    dataset_rows,
    load_dataset,
    resolve_dataset,
    view_for_model,
)

__all__ = [
    "COMMON_OPTIONS",
    "DATASETS",
    "DataSplit",
    "DatasetEntry",
    "build_counts",
    "check_pairing",
    "clear_memo",
    "dataset_rows",
    "load_dataset",
    "resolve_dataset",
    "view_for_model",
]
