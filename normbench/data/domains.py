"""Two-domain datasets: a dataset joined with a transformed copy of itself, domain recorded.

``domains: 2`` appends to both splits a copy of every sample with its (already normalised)
inputs mapped to ``x · domain_scale + domain_offset``: domain 0 is the dataset as it is,
domain 1 the same digits seen through a different "sensor". Labels are shared. Irpan's
"perils of batch norm" experiment needs exactly this: batch statistics that differ by domain.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from normbench.data.split import DataSplit
from normbench.options import Option

DOMAIN_OPTIONS: tuple[Option, ...] = (
    Option(
        "domains",
        "int",
        1,
        "2 joins a transformed copy of every sample (domain 1: x·domain_scale + "
        "domain_offset, after input_norm) to both splits, recording each sample's domain",
        min=1,
        max=2,
    ),
    Option("domain_scale", "float", 3.0, "domain 1: factor on the normalised inputs"),
    Option("domain_offset", "float", 2.0, "domain 1: offset added after the factor"),
)


def join_domains(split: DataSplit, opts: dict) -> DataSplit:
    """``split`` itself for one domain; for two, both splits doubled, domain 0 first."""
    if opts.get("domains", 1) != 2:
        return split
    scale, offset = np.float32(opts["domain_scale"]), np.float32(opts["domain_offset"])

    def join(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        x2 = (x * scale + offset).astype(np.float32, copy=False)
        domain = np.repeat(np.arange(2, dtype=np.int64), len(x))
        return np.concatenate([x, x2]), np.concatenate([y, y]), domain

    x_train, y_train, d_train = join(split.x_train, split.y_train)
    x_test, y_test, d_test = join(split.x_test, split.y_test)
    return replace(
        split,
        x_train=x_train,
        y_train=y_train,
        x_test=x_test,
        y_test=y_test,
        domain_train=d_train,
        domain_test=d_test,
    )
