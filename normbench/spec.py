"""Suite schema (pydantic), YAML loading with line numbers, grid expansion and variant ids."""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator

from normbench import budget
from normbench.claim_rules import check_claims
from normbench.errors import OptionError, SuiteError, did_you_mean, echo, shorten, unknown
from normbench.models.catalog import (
    KEEP,
    MODELS,
    custom_signature_error,
    model_entry,
    model_keys,
    resolve_model,
    same_model_as,
)
from normbench.naming import format_value
from normbench.suite_keys import ALIASES, TARGET_KEYS
from normbench.yamlsrc import Lines, parse_yaml, read_yaml

OPTIMIZERS = ("sgd", "momentum", "adam", "adamw")
DEVICE_RE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]*$")  # no leading "-": it reads as a flag
NAME_MAX = 64  # the suite name is a directory name: far below any file system's limit
SEED_MAX = 2**32 - 1  # numpy's and torch's seeds must fit here
TARGET_RANGE = {"test_acc": (0.0, 1.0), "train_probe_acc": (0.0, 1.0)}  # losses: >= 0


def _not_bool(value: Any) -> Any:
    """YAML's ``true`` is not the number 1: a bool where a number belongs is a mistake."""
    if isinstance(value, bool):
        raise ValueError(f"expected a number, got {str(value).lower()}")
    return value


# Numbers of the schema: never a bool, and floats always finite (``.inf``/``.nan`` mean nothing).
Int = Annotated[int, BeforeValidator(_not_bool)]
Float = Annotated[float, BeforeValidator(_not_bool)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True, allow_inf_nan=False)


class DatasetCfg(BaseModel):
    """``dataset:`` — a registry name plus its own options (checked by the data registry)."""

    model_config = ConfigDict(extra="allow", allow_inf_nan=False)
    name: str
    input_norm: Literal["none", "zscore", "minmax"] = "none"


class OptimizerCfg(_Strict):
    """An optimizer mapping: ``{name: momentum, momentum: 0.9, weight_decay: 0}``."""

    name: Literal["sgd", "momentum", "adam", "adamw"] = "sgd"
    momentum: Float = Field(0.9, ge=0, lt=1)
    nesterov: bool = False
    weight_decay: Float = Field(0.0, ge=0)
    betas: tuple[Float, Float] = (0.9, 0.999)
    eps: Float = Field(1e-8, gt=0)
    decay: Literal["all", "matrices"] = "all"

    @field_validator("betas")
    @classmethod
    def _betas(cls, v: tuple[float, float]) -> tuple[float, float]:
        if not all(0 <= b < 1 for b in v):
            raise ValueError(f"betas must both lie in [0, 1), got {list(v)}")
        return v


class TrainingCfg(_Strict):
    """``training:`` — optimizer, learning rate, batch, steps, seeds and device."""

    optimizer: str | OptimizerCfg = "sgd"
    lr: Float = Field(0.01, gt=0)
    lr_mult: Float = Field(1.0, gt=0)
    lr_schedule: Literal["constant", "cosine"] = "constant"
    warmup_steps: Int = Field(0, ge=0)
    warmup_fraction: Float | None = Field(None, ge=0, lt=1)
    lr_floor: Float = Field(0.0, ge=0, le=1)
    lr_batch_ref: Int | None = Field(None, ge=1)
    batch_size: Int = Field(60, ge=1)
    steps: Int | None = Field(None, ge=1)
    epochs: Float | None = Field(None, gt=0)
    eval_every: Int = Field(100, ge=1)
    eval_every_epochs: Float | None = Field(None, gt=0)
    batches: Literal["mixed", "per_domain"] = "mixed"
    eval_batch_size: Int = Field(1000, ge=1)
    probe_size: Int = Field(1000, ge=1)
    seeds: Int | list[Int] = 3
    device: str = "auto"
    threads: Int | None = Field(None, ge=1)
    reproducible: bool | None = None
    grad_clip: Float | None = Field(None, gt=0)
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"
    compile: bool = False
    channels_last: bool = False
    profile_steps: Int = Field(20, ge=0)
    # Train a variant's seeds as one stacked model (normbench.train.batched): true wherever the
    # variant supports it, auto only where it was also measured faster (CPU), false never.
    # Off by default: stacked members agree with separate runs only to ~1e-4 (other kernels).
    batch_seeds: Literal["auto"] | bool = False

    @field_validator("optimizer", mode="before")
    @classmethod
    def _optimizer(cls, v: Any) -> Any:
        if isinstance(v, str):
            if v not in OPTIMIZERS:
                raise ValueError(unknown("optimizer", v, list(OPTIMIZERS)))
            return OptimizerCfg(name=v)
        if isinstance(v, dict) and "kind" in v and "name" not in v:
            v = {("name" if k == "kind" else k): x for k, x in v.items()}
        return v

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, v: int | list[int]) -> int | list[int]:
        if isinstance(v, int) and not 1 <= v <= 10_000:
            raise ValueError(f"seeds must be a count from 1 to 10000 or a list of seeds, got {v}")
        if isinstance(v, list) and (
            not v or len(set(v)) != len(v) or min(v) < 0 or max(v) > SEED_MAX
        ):
            raise ValueError(
                f"seeds must be a non-empty list of distinct integers in [0, {SEED_MAX}]"
            )
        return v

    @field_validator("device")
    @classmethod
    def _device(cls, v: str) -> str:
        if not DEVICE_RE.match(v):
            raise ValueError(f"device '{v}' is not one of auto, cpu, cuda, cuda:N, mps")
        return v


class ClaimCfg(_Strict):
    """A published claim to check: ``better`` variants beat ``than`` variants on ``metric``,
    or the ``where`` variants' metric lies within ``tolerance`` of a ``published`` value."""

    text: str
    source: str = ""
    metric: str
    better: dict[str, Any] = {}
    than: dict[str, Any] = {}
    where: dict[str, Any] = {}
    published: Float | None = None
    tolerance: Float = Field(0.02, ge=0)
    margin: Float | str | None = None  # equivalence margin: 0.01 (metric units) or "5%"
    tune: list[str] = []  # grid keys each side takes at its own best value (e.g. [lr])


class SuiteCfg(_Strict):
    """The whole suite file."""

    name: str
    description: str = ""
    dataset: DatasetCfg
    # Checked against its kind's entry (normbench.models.catalog) when variants are resolved.
    model: dict[str, Any] = {}
    training: TrainingCfg = TrainingCfg()
    grid: dict[str, list[Any]] = {}
    exclude: list[dict[str, Any]] = []
    targets: dict[str, Float] = {}
    diagnostics: list[str] | dict[str, dict[str, Any] | None] = []
    gates: list[str] = []
    claims: list[ClaimCfg] = []

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        # The name becomes a directory name: refuse what a file system cannot hold.
        if len(v) > NAME_MAX:
            raise ValueError(
                f"name is {len(v)} characters long; at most {NAME_MAX} (it names the run directory)"
            )
        if not NAME_RE.match(v):
            shown = v if len(v) <= 40 else v[:40] + "…"
            raise ValueError(f"name '{shown}' must use only a-z, 0-9, '_' and '-' (not first)")
        return v

    @field_validator("targets")
    @classmethod
    def _targets(cls, v: dict[str, float]) -> dict[str, float]:
        for key, value in v.items():
            low, high = TARGET_RANGE.get(key, (0.0, float("inf")))
            if not low <= value <= high:
                where = f"in [{low:g}, {high:g}]" if high < float("inf") else ">= 0"
                raise ValueError(f"target {key} must be {where}, got {value}")
        return v


SECTION_KEYS: dict[tuple, list[str]] = {
    (): list(SuiteCfg.model_fields),
    ("model",): ["kind", "norm", *model_keys()],
    ("training",): list(TrainingCfg.model_fields),
    ("training", "optimizer"): list(OptimizerCfg.model_fields),
    ("claims",): list(ClaimCfg.model_fields),
}


@dataclass
class Variant:
    """One grid point, fully resolved; ``id`` hashes ``config`` (seeds excluded)."""

    id: str
    name: str
    params: dict[str, Any]
    config: dict[str, Any]
    seeds: list[int]

    def to_json(self) -> dict[str, Any]:
        """The variant as stored in ``resolved.json``."""
        return {
            "id": self.id,
            "name": self.name,
            "params": self.params,
            "config": self.config,
            "seeds": self.seeds,
        }


@dataclass
class Suite:
    """A loaded and validated suite: the raw mapping, its line map and the expanded variants."""

    name: str
    description: str
    file: str
    text: str
    raw: dict[str, Any]
    variants: list[Variant]
    seeds: list[int]
    grid_keys: list[str]
    targets: dict[str, float]
    gates: list[str]
    claims: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    overrides: dict[tuple, str] = field(default_factory=dict)  # key path → its --set flag
    lines: Lines = field(default_factory=dict)  # key path → its line in the file

    def error(self, message: str, path: tuple) -> SuiteError:
        """A ``SuiteError`` at ``path`` located as load-time errors are (line or ``--set``)."""
        return _Locator(self.file, self.lines, self.overrides).error(message, path)

    def origin(self, path: tuple) -> str:
        """Where the value at ``path`` came from, for messages: ``--set KEY=VALUE`` or the
        suite file."""
        flag = override_for(self.overrides, path)
        return f"--set {shorten(flag)}" if flag is not None else self.file

    def resolved(self) -> dict[str, Any]:
        """The content of ``resolved.json``."""
        return {
            "suite": {
                "name": self.name,
                "description": self.description,
                "grid": self.grid_keys,
                "targets": self.targets,
                "gates": self.gates,
                "claims": self.claims,
            },
            "seeds": self.seeds,
            "variants": [v.to_json() for v in self.variants],
        }


# --- locating errors --------------------------------------------------------------------------


def override_for(overrides: dict[tuple, str], path: tuple) -> str | None:
    """The ``--set`` flag that wrote ``path`` (or a key above it, or — for a key inside a
    section — a key below it), or None when the value came from the suite file."""
    for n in range(len(path), -1, -1):
        if path[:n] in overrides:
            return overrides[path[:n]]
    if len(path) >= 2:  # `--set model.optons.a=1` fails at model.optons: that flag
        below = [t for p, t in overrides.items() if p[: len(path)] == path]
        if below:
            return below[0]
    return None


class _Locator:
    """Turns a key path into ``file:line`` (or the ``--set`` flag that supplied it)."""

    def __init__(self, file: str, lines: Lines, overrides: dict[tuple, str]) -> None:
        self.file, self.lines, self.overrides = file, lines, overrides

    def override(self, path: tuple) -> str | None:
        return override_for(self.overrides, path)

    def error(self, message: str, path: tuple) -> SuiteError:
        flag = self.override(path)
        if flag is not None:
            return SuiteError(message, file=f"--set {shorten(flag)}", path=path)
        line = None
        for n in range(len(path), -1, -1):
            if path[:n] in self.lines:
                line = self.lines[path[:n]]
                break
        return SuiteError(message, file=self.file, line=line, path=path)


def _pydantic_message(err: dict[str, Any], loc: tuple) -> str:
    """One clear sentence for one pydantic error."""
    kind, value = err["type"], err.get("input")
    if kind == "extra_forbidden":
        section = tuple(p for p in loc[:-1] if not isinstance(p, int))
        allowed = SECTION_KEYS.get(section, [])
        return unknown("key", loc[-1], allowed) if allowed else f"unknown key '{loc[-1]}'"
    if kind == "missing":
        return "required key is missing"
    if kind in ("int_parsing", "int_type", "int_from_float"):
        return f"expected an integer, got {echo(value)}"
    if kind in ("float_parsing", "float_type"):
        return f"expected a number, got {echo(value)}"
    if kind == "finite_number":
        return f"must be a finite number, got {echo(value)}"
    if kind in ("bool_parsing", "bool_type"):
        return f"expected true or false, got {echo(value)}"
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        return f"{err['msg'].replace('Input should be', 'must be')}, got {echo(value)}"
    if kind == "literal_error":
        expected = err.get("ctx", {}).get("expected", "")
        return f"{echo(value)} is not allowed (choose from {expected.replace(' or ', ', ')})"
    if kind in (
        "list_type",
        "dict_type",
        "string_type",
        "tuple_type",
        "model_type",
        "model_attributes_type",
    ):
        want = {
            "list_type": "a list",
            "dict_type": "a mapping",
            "string_type": "a string",
            "tuple_type": "a list",
            "model_type": "a mapping",
            "model_attributes_type": "a mapping",
        }[kind]
        return f"expected {want}, got {echo(value)}"
    msg = str(err["msg"])
    return msg.removeprefix("Value error, ")


def _clean_loc(loc: tuple) -> tuple:
    """Drop pydantic's union-member markers (``int``, ``list[int]``…) from an error location."""
    return tuple(
        p
        for p in loc
        if isinstance(p, int)
        or not re.match(r"^[a-z_]+\[.*\]$|^(int|str|float|bool)$|^function-", str(p))
    )


def _validate(
    data: dict[str, Any], loc: _Locator, remap: dict[tuple, tuple] | None = None
) -> SuiteCfg:
    """Validate with pydantic, converting the first error into a located ``SuiteError``."""
    try:
        return SuiteCfg.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        # An OptimizerCfg given as a name fails both union branches; report the clearest one.
        # Otherwise the deepest error is the most specific (a bad option inside the mapping).
        err = next((e for e in errors if "Value error" in e["msg"]), None) or max(
            errors, key=lambda e: len(e["loc"])
        )
        path = _clean_loc(tuple(err["loc"]))
        if path[:2] == ("training", "optimizer") and len(path) > 2 and path[2] == "OptimizerCfg":
            path = path[:2] + path[3:]
        message = _pydantic_message(err, path)
        for prefix, target in (remap or {}).items():
            if path[: len(prefix)] == prefix:
                raise loc.error(message, target) from None
        raise loc.error(message, path) from None


# --- dotted paths and overrides ---------------------------------------------------------------


def canonical_key(key: str) -> tuple[str, ...]:
    """Map a grid/--set key (alias or dotted path) to its path in the suite mapping."""
    return tuple(ALIASES.get(key, key).split("."))


def set_path(data: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    """Set ``data[a][b]... = value``, creating intermediate mappings.

    A mapping given for ``model.kind`` or ``dataset.name`` (the ``model`` / ``dataset``
    aliases) replaces that whole section, so one grid can sweep differently shaped models:
    ``model: [{kind: mlp, hidden: [100]}, {kind: cnn, channels: [25, 25]}]``. Keys of the
    section that the mapping does not give keep their values only when they are common to
    every model (activation, norm, placement, init).
    """
    if isinstance(value, dict) and path in (("model", "kind"), ("dataset", "name")):
        section = data.setdefault(path[0], {})
        if not isinstance(section, dict):
            section = data[path[0]] = {}
        keep = (
            {"activation", "norm", "placement", "init", "init_std"}
            if path[0] == "model"
            else {"input_norm"}
        )
        kept = {k: v for k, v in section.items() if k in keep}
        section.clear()
        section.update(kept)
        section.update(value)
        return
    node = data
    for part in path[:-1]:
        nxt = node.get(part)
        if not isinstance(nxt, dict):
            nxt = {} if nxt is None else nxt
            if not isinstance(nxt, dict):
                raise OptionError(f"cannot set '{'.'.join(path)}': '{part}' is not a mapping")
            node[part] = nxt
        node = nxt
    node[path[-1]] = value


def parse_override(text: str) -> tuple[str, Any]:
    """Parse ``KEY=VALUE`` (VALUE read as YAML, so ``[1, 5]`` and ``true`` work)."""
    if "=" not in text:
        raise OptionError(f"--set expects KEY=VALUE, got '{text}'")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key:
        raise OptionError(f"--set expects KEY=VALUE, got '{shorten(text)}'")
    if not raw.strip():  # YAML would read it as null: "got None" names no mistake
        raise OptionError(
            f"'{shorten(text)}' gives {key} no value; write {key}=VALUE (or {key}=null to clear it)"
        )
    try:
        value, _ = parse_yaml(raw, f"--set {text}")
    except SuiteError:
        value = raw
    return key, value


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[tuple, str]:
    """Apply ``--set`` overrides in place; return path → flag text for error locations.

    Setting a key that the grid sweeps pins the grid to that one value, so that
    ``--set norm=batch`` runs only batch norm and its variants keep their names and ids.
    """
    where: dict[tuple, str] = {}
    for text in overrides:
        key, value = parse_override(text)
        path = canonical_key(key)
        grid = data.get("grid") if isinstance(data.get("grid"), dict) else {}
        swept = next((k for k in grid if canonical_key(k) == path), None)
        if swept is not None:
            grid[swept] = [value]
            where[("grid", swept)] = text
        else:
            set_path(data, path, value)
            where[path] = text
    return where


# --- variants ---------------------------------------------------------------------------------


# Settings that select the arithmetic but not the experiment (like the seed): a run with other
# threads or kernels is the same variant, so compare pairs it and says it is not bit-comparable.
# Hashed as unset, so ids stay those of runs made before planning filled them in.
NOT_IN_ID = {"threads": None}
# ``batch_seeds`` says how the seeds execute (stacked or one by one), not what they compute,
# so a run made with another setting (or before the key existed) still resumes and merges.
DROPPED_FROM_ID = ("reproducible", "batch_seeds")


def id_config(config: dict[str, Any]) -> dict[str, Any]:
    """The part of a resolved configuration that the variant id hashes (and that ``compare``
    lists when a suite changed): threads, kernel mode and seed execution left out."""
    training = config.get("training")
    if isinstance(training, dict):
        training = {k: v for k, v in training.items() if k not in DROPPED_FROM_ID}
        config = {**config, "training": {**training, **NOT_IN_ID}}
    return config


def variant_id(config: dict[str, Any]) -> str:
    """Short hash of a fully resolved configuration (seeds, threads and kernel mode excluded)."""
    blob = json.dumps(id_config(config), sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha1(blob.encode()).hexdigest()[:10]


def _name_clash(name: str, first: dict[str, Any], second: dict[str, Any], loc: Any) -> SuiteError:
    """Two different configurations would share one variant name (``1`` and ``"1"`` both
    read ``1``): every table, plot and comparison tells variants apart by name, so refuse."""
    key = next(
        (k for k in second if json.dumps(first.get(k)) != json.dumps(second[k])), next(iter(second))
    )
    return loc.error(
        f"grid values {json.dumps(first.get(key))} and {json.dumps(second[key])} of '{key}' "
        f"are different settings but both read '{format_value(second[key])}', so two "
        f"variants would share the name '{name}'; write them so they read differently "
        "(e.g. both as numbers)",
        ("grid", key),
    )


def _same(a: Any, b: Any) -> bool:
    """Compare an exclude value with a grid value (numbers by value, the rest by rendering)."""
    if isinstance(a, int | float) and isinstance(b, int | float) and not isinstance(a, bool):
        return float(a) == float(b)
    return format_value(a) == format_value(b)


def _resolve_variant(
    cfg: SuiteCfg, check_imports: bool, skipped: list[str] | None = None
) -> dict[str, Any]:
    """Check one grid point across registries and return its fully resolved config.

    Raises OptionError with a path relative to the suite root.
    """
    from normbench.data import registry as data_registry
    from normbench.norms import catalog as norm_catalog

    dataset_raw = cfg.dataset.model_dump()
    try:
        dataset = data_registry.resolve_dataset(dataset_raw)
        if check_imports and dataset["name"] == "custom":
            _check_callable(
                dataset["target"], dataset["options"] or {}, "custom dataset loader", loader=True
            )
    except OptionError as exc:
        raise OptionError(exc.message, ("dataset", *exc.path)) from None
    layout = data_registry.DATASETS[dataset["name"]].layout
    try:
        model, given = resolve_model(cfg.model, layout)
    except OptionError as exc:
        raise OptionError(exc.message, ("model", *exc.path)) from None
    entry = model_entry(model["kind"])
    if entry.custom:
        model = _resolve_custom(cfg, model, given, check_imports)
        return _resolve_rest(cfg, dataset, model, model["norm"], skipped)
    try:
        data_registry.check_pairing(dataset["name"], model["kind"])
    except OptionError as exc:
        raise OptionError(exc.message, ("model", "kind")) from None
    try:
        if model["norm"] == KEEP:
            raise OptionError(
                "norm 'keep' leaves a custom model's own norm layers as they are, "
                f"which this {model['kind']} model has not (choose a registry norm)"
            )
        norm = norm_catalog.resolve_norm(model["norm"])
        ctx = norm_catalog.NormContext(
            model=model["kind"],
            layout=entry.norm_layout,
            widths=entry.widths(model),
            spatial=entry.spatial(layout),
            batch_size=cfg.training.batch_size,
            placement=model["placement"],
        )
        norm_catalog.check_norm(norm, ctx)
        if check_imports and norm["kind"] == "custom":
            norm_catalog.check_custom_importable(norm)
    except OptionError as exc:
        raise OptionError(exc.message, ("model", "norm", *exc.path)) from None
    model["norm"] = norm
    return _resolve_rest(cfg, dataset, model, norm, skipped)


def _resolve_rest(
    cfg: SuiteCfg,
    dataset: dict[str, Any],
    model: dict[str, Any],
    norm: dict[str, Any],
    skipped: list[str] | None,
) -> dict[str, Any]:
    """Training budget and diagnostics of a variant whose dataset and model are resolved."""
    from normbench.train import diag_catalog

    training = cfg.training.model_dump()
    training.pop("seeds")
    try:
        budget.resolve_budget(training, set(cfg.training.model_fields_set), dataset)
        budget.check_batches(training, dataset)
    except OptionError as exc:
        raise OptionError(exc.message, ("training", *exc.path)) from None
    try:
        diagnostics = diag_catalog.resolve_diagnostics(
            cfg.diagnostics, model=model, norm=norm, skipped=skipped
        )
    except OptionError as exc:
        raise OptionError(exc.message, ("diagnostics", *exc.path)) from None
    config = {
        "dataset": dataset,
        "model": model,
        "training": training,
        "targets": dict(cfg.targets),
        "diagnostics": diagnostics,
    }
    return budget.drop_defaults(config)


CUSTOM_MODEL_KEYS = ("kind", "target", "options", "swap", "norm")


def _check_callable(target: str, options: dict[str, Any], what: str, loader: bool = False) -> None:
    """Import ``target`` (suite directory and cwd are on sys.path) and bind its signature.

    A model factory must accept ``num_outputs=``, ``input_shape=`` and its options; a
    dataset loader its options.
    """
    from normbench.norms.catalog import resolve_target

    obj = resolve_target(target, what=what, accept="function")

    def problem_with(given: dict[str, Any]) -> str | None:
        return _loader_signature_error(obj, given) if loader else custom_signature_error(obj, given)

    problem = problem_with(options)
    if problem is not None:
        args = "**options" if loader else "num_outputs=…, input_shape=…, **options"
        # At the option the user wrote when one alone does not fit, else at the target.
        bad = next((k for k in options if problem_with({k: options[k]}) is not None), None)
        path = ("options", bad) if bad is not None and problem_with({}) is None else ("target",)
        raise OptionError(
            f"{what} '{target}' cannot be called as {target.split(':')[1]}({args}): {problem}",
            path,
        )


def _loader_signature_error(obj: Any, options: dict[str, Any]) -> str | None:
    """Why ``obj(**options)`` cannot bind, or None when it can (or cannot be told)."""
    import inspect

    try:
        inspect.signature(obj).bind(**options)
    except (TypeError, ValueError) as err:
        return str(err) if isinstance(err, TypeError) else None
    return None


def _resolve_custom(
    cfg: SuiteCfg, model: dict[str, Any], given: set[str], check_imports: bool
) -> dict[str, Any]:
    """The resolved ``model:`` of a custom model: what can be checked without torch.

    Layer widths and dimensionalities are known only once the model is built, so the norm's
    fit is checked per replaced layer by the pre-flight stage (``normbench.models.custom``).
    """
    from normbench.norms import catalog as norm_catalog

    model = {k: model.get(k) for k in CUSTOM_MODEL_KEYS}
    model["options"] = dict(model["options"] or {})
    if isinstance(model["swap"], str) and model["swap"] == "all":
        model["swap"] = None
    if check_imports:
        try:
            _check_callable(model["target"], model["options"], "custom model factory")
        except OptionError as exc:
            raise OptionError(exc.message, ("model", *exc.path)) from None
    raw_norm = model["norm"] if "norm" in given else KEEP
    if raw_norm == KEEP:
        norm: dict[str, Any] = {"kind": KEEP}
    else:
        try:
            norm = norm_catalog.resolve_norm(raw_norm)
            entry = norm_catalog.NORMS[norm["kind"]]
            if entry.wraps_layer:
                raise OptionError(
                    f"norm '{norm['kind']}' re-parametrises the layer before the "
                    "norm, which a custom model does not identify; swap in an "
                    "activation norm (batch, layer, group, …) or keep"
                )
            if entry.uses_batch_stats and cfg.training.batch_size < 2:
                raise OptionError(
                    f"batch statistics undefined with batch_size "
                    f"{cfg.training.batch_size}: norm '{norm['kind']}' normalises "
                    "with statistics across the batch"
                )
            if check_imports and norm["kind"] == "custom":
                norm_catalog.check_custom_importable(norm)
        except OptionError as exc:
            raise OptionError(exc.message, ("model", "norm", *exc.path)) from None
    model["norm"] = norm
    return model


def _check_targets(targets: dict[str, float], loc: _Locator) -> None:
    """Targets name a curve the loop records."""
    for key in targets:
        if key not in TARGET_KEYS:
            raise loc.error(unknown("target", key, list(TARGET_KEYS)), ("targets", key))


def _check_gates(gates: list[str], targets: dict[str, float], loc: _Locator) -> None:
    """Gates follow ``normbench compare``'s grammar, so a typo fails at validate time, not in CI."""
    from normbench.gates import TARGET_PREFIXES, parse_gate  # torch-free

    for i, text in enumerate(gates):
        try:
            gate = parse_gate(text)
        except OptionError as exc:
            raise loc.error(exc.message, ("gates", i)) from None
        key = gate.metric.split(".", 1)[1] if gate.metric.startswith(TARGET_PREFIXES) else None
        if key is not None and key not in targets:
            raise loc.error(
                f"gate '{gate.text}' names the target '{key}', which targets: does not "
                f"set (targets: {', '.join(targets) or 'none'})",
                ("gates", i),
            )


def _expand_grid(
    cfg: SuiteCfg, data: dict[str, Any], loc: _Locator
) -> tuple[list[dict[str, Any]], list[str]]:
    """The cartesian product of the grid minus ``exclude``; returns points and warnings."""
    warnings: list[str] = []
    for key, values in cfg.grid.items():
        if not values:
            raise loc.error("grid list is empty: give at least one value", ("grid", key))
        if key in ("seeds", "training.seeds"):
            raise loc.error("seeds are not a grid key: set training.seeds instead", ("grid", key))
        if canonical_key(key)[-1:] in (("threads",), ("reproducible",)) and canonical_key(key)[
            :1
        ] == ("training",):
            # Not part of the variant id, so swept values would collapse into one variant.
            raise loc.error(
                f"{key} is not a grid key: it selects the arithmetic, not the "
                "experiment; run the suite once per value (--threads-per-worker, "
                "--reproducible) and compare the runs",
                ("grid", key),
            )
    keys = list(cfg.grid)
    points = [
        dict(zip(keys, combo, strict=True)) for combo in itertools.product(*cfg.grid.values())
    ]
    kept = points
    for i, rule in enumerate(cfg.exclude):
        for key in rule:
            if key not in cfg.grid:
                raise loc.error(
                    unknown("grid key", key, keys)
                    if keys
                    else "the suite has no grid to exclude from",
                    ("exclude", i, key),
                )
        matches = [p for p in kept if all(_same(p[k], v) for k, v in rule.items())]
        if not matches:
            where = loc.error("", ("exclude", i))
            warnings.append(f"{where.file}:{where.line}: exclude[{i}] matches no grid point")
        kept = [p for p in kept if p not in matches]
    if points and not kept:
        raise loc.error("exclude removes every grid point: nothing would run", ("exclude",))
    return kept or [{}], warnings


def load_suite(
    path: str | Path, overrides: list[str] | None = None, check_imports: bool = True
) -> Suite:
    """Read, validate and expand a suite file; every problem is a located ``SuiteError``."""
    path = Path(path)
    data, lines, text = read_yaml(path)
    add_import_paths(path)
    return build_suite(data, lines, text, str(path), overrides or [], check_imports)


def add_import_paths(suite_file: Path) -> None:
    """Put the suite file's directory and the working directory on ``sys.path``.

    So ``target: "mymodels:resnet"`` finds ``mymodels.py`` next to the suite (or in the
    current directory) for custom models, datasets and norms. Worker processes started by
    multiprocessing inherit ``sys.path``; a Dask worker must be able to import the module.
    """
    import sys

    for folder in (str(Path.cwd()), str(suite_file.resolve().parent)):
        if folder not in sys.path:
            sys.path.insert(0, folder)


def build_suite(
    data: Any, lines: Lines, text: str, file: str, overrides: list[str], check_imports: bool = True
) -> Suite:
    """Validate an already-parsed suite mapping (see ``load_suite``)."""
    if not isinstance(data, dict):
        raise SuiteError(
            "a suite must be a YAML mapping with name:, dataset:, model:, training:",
            file=file,
            line=1,
        )
    data = copy.deepcopy(data)
    try:
        where = apply_overrides(data, overrides)
    except OptionError as exc:
        raise SuiteError(exc.message, file="--set") from None
    loc = _Locator(file, lines, where)
    base = _validate(data, loc)
    _check_targets(base.targets, loc)
    _check_gates(base.gates, base.targets, loc)

    # Each grid key must name a real setting: check every value alone against the schema.
    swept_paths: dict[tuple[str, ...], str] = {}
    for key, values in base.grid.items():
        path = canonical_key(key)
        if path in swept_paths:  # e.g. `norm` and `model.norm`: one setting swept twice
            raise loc.error(
                f"'{key}' and '{swept_paths[path]}' both sweep {'.'.join(path)}; keep one of them",
                ("grid", key),
            )
        swept_paths[path] = key
        if path[0] not in ("dataset", "model", "training"):
            raise loc.error(
                f"cannot sweep '{key}': grid keys are dotted paths under dataset., model. or "
                f"training., or one of the aliases {', '.join(ALIASES)}"
                f"{did_you_mean(key, list(ALIASES))}",
                ("grid", key),
            )
        for i, value in enumerate(values):
            trial = copy.deepcopy(data)
            trial.pop("grid", None)
            trial.pop("exclude", None)
            set_path(trial, path, value)
            _validate(trial, loc, remap={path: ("grid", key, i)})

    claims = [c.model_dump() for c in base.claims]
    try:
        check_claims(claims, list(base.grid))
    except OptionError as exc:
        raise loc.error(exc.message, ("claims", *exc.path)) from None
    points, warnings = _expand_grid(base, data, loc)
    seeds = base.training.seeds
    seed_list = list(range(seeds)) if isinstance(seeds, int) else list(seeds)
    variants: list[Variant] = []
    seen: dict[str, str] = {}
    models: dict[str, list[str]] = {}  # the id of the model a variant trains → its variants
    named: dict[str, tuple[str, dict[str, Any]]] = {}  # variant name → (id, grid point)
    skips: dict[str, list[str]] = {}  # diagnostic → variants that cannot record it
    for point in points:
        trial = copy.deepcopy(data)
        trial.pop("grid", None)
        trial.pop("exclude", None)
        for key, value in point.items():
            set_path(trial, canonical_key(key), value)
        cfg = _validate(trial, loc)
        skipped: list[str] = []
        try:
            config = _resolve_variant(cfg, check_imports, skipped)
        except OptionError as exc:
            raise _locate_variant_error(exc, point, base.grid, loc) from None
        vid = variant_id(config)
        name = ",".join(f"{k}={format_value(v)}" for k, v in point.items()) or "base"
        for diag in skipped:
            skips.setdefault(diag, []).append(name)
        if vid in seen:
            warnings.append(
                f"{file}: grid points '{seen[vid]}' and '{name}' resolve to the same "
                "configuration; running it once"
            )
            continue
        if name in named and named[name][0] != vid:
            raise _name_clash(name, named[name][1], point, loc)
        twin = variant_id({**config, "model": same_model_as(config["model"])})
        models.setdefault(twin, []).append(name)
        seen[vid] = name
        named[name] = (vid, point)
        variants.append(Variant(vid, name, dict(point), config, seed_list))
    warnings += [_same_model_warning(file, names) for names in models.values() if len(names) > 1]
    for diag, names in skips.items():
        if len(names) == len(points):  # no variant can record it: the suite is wrong
            trial = copy.deepcopy(data)
            trial.pop("grid", None)
            trial.pop("exclude", None)
            for key, value in points[0].items():
                set_path(trial, canonical_key(key), value)
            try:
                _resolve_variant(_validate(trial, loc), False)
            except OptionError as exc:
                raise loc.error(exc.message, exc.path) from None
        warnings.append(
            f"{file}: diagnostic '{diag}' needs batch statistics; skipped for {', '.join(names)}"
        )
    return Suite(
        name=base.name,
        description=base.description,
        file=file,
        text=text,
        raw=data,
        variants=variants,
        seeds=seed_list,
        grid_keys=list(base.grid),
        targets=dict(base.targets),
        gates=list(base.gates),
        claims=claims,
        warnings=warnings,
        overrides=where,
        lines=lines,
    )


def _same_model_warning(file: str, names: list[str]) -> str:
    listed = ", ".join(f"'{n}'" for n in names[:-1]) + f" and '{names[-1]}'"
    runs = "both run — exclude one" if len(names) == 2 else "all run — exclude all but one"
    return (
        f"{file}: grid points {listed} train the same model (norm none: the placement has "
        f"nothing to place); {runs} to save the time"
    )


def _locate_variant_error(
    exc: OptionError, point: dict[str, Any], grid: dict[str, list[Any]], loc: _Locator
) -> SuiteError:
    """Point an error at the grid entry responsible for it when one is, else at the key.

    A sibling model key swept by the grid (``grid.norm`` for an error at ``model.placement``)
    is blamed only when the suite file does not write the key the error is about; a key the
    user wrote with ``--set`` is blamed on that flag, never on a swept neighbour.
    """
    if loc.override(exc.path) is not None:
        return loc.error(exc.message, exc.path)
    written = exc.path in loc.lines
    paths = {key: canonical_key(key) for key in point}
    for key, gpath in paths.items():
        if exc.path == gpath and gpath[0] == "model" and gpath[-1] not in SECTION_KEYS[gpath[:1]]:
            return loc.error(exc.message, ("grid", key))  # the swept key itself is unknown
    exact = [k for k, g in paths.items() if exc.path[: len(g)] == g]
    siblings = [
        k
        for k, g in paths.items()
        if not written and exc.path[: len(g) - 1] == g[:-1] == ("model",)
    ]
    for key in exact or siblings:
        index = next(i for i, v in enumerate(grid[key]) if v == point[key])
        return loc.error(exc.message, ("grid", key, index))
    return loc.error(exc.message, exc.path)


def schema() -> dict[str, Any]:
    """Editor-grade JSON Schema of a suite file (``normbench schema``; see ``suite_schema``)."""
    from normbench.suite_schema import build_schema

    return build_schema()


def model_kinds() -> list[str]:
    """Model kinds, for listings."""
    return list(MODELS)
