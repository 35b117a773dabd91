"""Pre-flight: load every dataset a suite uses and check it fits, before any training starts."""

# Without this stage a bad data file surfaces inside every variant (each one `failed`, exit 3)
# after start-up. Here each distinct dataset configuration of the grid is loaded once (the
# in-process memo and the disk cache make this cheap when the data were seen before), checked
# (shapes, finiteness, label range, x/y lengths: ``data.split.check_split``), viewed for each
# model kind, and compared with the batch sizes that will draw from it. The first problem is one
# ``InputError`` sentence naming the suite, the variant and the data file; nothing has run yet.

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from normbench.errors import InputError, OptionError
from normbench.spec import Suite, Variant


@dataclass
class DataCheck:
    """What pre-flight learnt: one fingerprint per distinct dataset configuration."""

    fingerprints: dict[str, str] = field(default_factory=dict)  # dataset config → digest
    sizes: dict[str, tuple[int, int]] = field(default_factory=dict)  # config → (train, test)
    info: dict[str, dict[str, Any]] = field(default_factory=dict)  # config → DataSplit.info

    def fingerprint_of(self, variant: Variant) -> str:
        """The fingerprint of the data ``variant`` trains on ("" when they were not checked)."""
        return self.fingerprints.get(dataset_key(variant.config["dataset"]), "")

    def manifest(self) -> dict[str, Any]:
        """The ``data`` entry of ``manifest.json``: what ``--resume`` compares, and what the
        data say about themselves (a text's fingerprint, a task's loss floor) where they do."""
        entry: dict[str, Any] = {"fingerprints": dict(sorted(self.fingerprints.items()))}
        if self.info:
            entry["info"] = dict(sorted(self.info.items()))
        return entry


def dataset_key(config: dict[str, Any]) -> str:
    """A stable text key for one resolved dataset configuration."""
    return json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)


def _where(suite: Suite, variant: Variant, path: tuple = ("dataset",)) -> str:
    """``suite.yaml: variant norm=batch`` — or the ``--set`` flag that gave the value at
    ``path``, so the user is sent to what they wrote."""
    who = f"variant {variant.name}" if variant.name != "base" else "dataset"
    return f"{suite.origin(path)}: {who}"


def check_data(suite: Suite, variants: Iterable[Variant] | None = None) -> DataCheck:
    """Load and check the data of ``variants`` (default: all); ``InputError`` at a first problem."""
    from normbench.data.registry import load_dataset, view_for_model
    from normbench.data.split import fingerprint

    check = DataCheck()
    splits: dict[str, Any] = {}
    for variant in suite.variants if variants is None else variants:
        config = variant.config
        key = dataset_key(config["dataset"])
        if key not in splits:
            try:
                splits[key] = load_dataset(config["dataset"])
            except (InputError, OptionError) as exc:
                raise InputError(f"{_where(suite, variant)}: {exc}") from None
            except (OSError, ValueError, MemoryError) as exc:  # a file the loader did not expect
                raise InputError(
                    f"{_where(suite, variant)}: cannot load dataset "
                    f"'{config['dataset']['name']}': {exc}"
                ) from None
            split = splits[key]
            check.fingerprints[key] = split.fingerprint or fingerprint(split)
            check.sizes[key] = (len(split.x_train), len(split.x_test))
            if split.info:
                check.info[key] = split.info
        split = splits[key]
        kind = config["model"]["kind"]
        try:
            view_for_model(split, kind, config["dataset"]["name"])
        except (OptionError, ValueError) as exc:
            raise InputError(
                f"{_where(suite, variant)}: model kind {kind} cannot take this data: {exc}"
            ) from None
        n_train = len(split.x_train)
        batch = config["training"]["batch_size"]
        if batch > n_train:
            raise InputError(
                f"{_where(suite, variant, ('training', 'batch_size'))}: batch_size {batch} "
                "is larger than the "
                f"training split of dataset '{config['dataset']['name']}' "
                f"({n_train} samples)"
            )
        if split.task == "regression" and any(k.endswith("_acc") for k in config["targets"]):
            raise InputError(
                f"{_where(suite, variant)}: dataset '{config['dataset']['name']}' "
                "is a regression task, so an accuracy target can never be reached"
            )
    return check


def fingerprint_difference(recorded: dict[str, Any] | None, now: DataCheck) -> str | None:
    """Why the data of a resumed run differ from today's, or ``None`` when they agree."""
    if not recorded or "fingerprints" not in recorded:
        return None  # a run from before fingerprints were recorded: nothing to compare
    old = recorded["fingerprints"]
    for key, digest in now.fingerprints.items():
        if key in old and old[key] != digest:
            name = json.loads(key).get("name", "?")
            return f"the data of dataset '{name}' changed since the run started"
    return None
