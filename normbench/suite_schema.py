"""The editor-grade JSON Schema of a suite file, generated from the registries (torch-free).

Every registry name is an enum, every key has a description, and options that depend on a
kind (a norm's, a dataset's, a model's) are tied to it with ``if``/``then``. The schema checks
what can be checked statically; ``normbench validate`` adds what needs context (group counts
dividing widths, batch statistics with ``batch_size: 1``, importing a custom norm).
"""

from __future__ import annotations

from typing import Any

from normbench.options import json_schema

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
SCHEMA_ID = "urn:normbench:suite-schema:1"
GATE_PATTERN = r"^[A-Za-z_][A-Za-z0-9_.]*:[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?%?$"
NAME_PATTERN = r"^[a-z0-9_-]+$"

Schema = dict[str, Any]


OPTIMIZER_KEYS: dict[str, tuple[str, Schema]] = {
    "name": ("optimizer name", {}),
    "momentum": (
        "momentum coefficient (momentum, sgd)",
        {"type": "number", "minimum": 0, "exclusiveMaximum": 1},
    ),
    "nesterov": ("Nesterov momentum", {"type": "boolean"}),
    "weight_decay": ("L2 weight decay (decoupled for adamw)", {"type": "number", "minimum": 0}),
    "betas": (
        "Adam's (β1, β2)",
        {"type": "array", "items": {"type": "number"}, "minItems": 2, "maxItems": 2},
    ),
    "eps": ("Adam's ε", {"type": "number", "exclusiveMinimum": 0}),
    "decay": (
        "which parameters weight decay applies to: all, or matrices (Linear/Conv weights; "
        "not norms, biases, embeddings or positions, as transformer practice does)",
        {"enum": ["all", "matrices"]},
    ),
}

TRAINING_KEYS: dict[str, tuple[str, Schema]] = {
    "optimizer": (
        "sgd | momentum | adam | adamw, or a mapping {name: adam, betas: [0.9, 0.99]}",
        {},
    ),
    "lr": ("base learning rate", {"type": "number", "exclusiveMinimum": 0}),
    "lr_mult": (
        "effective lr = lr × lr_mult (× batch_size / lr_batch_ref when set)",
        {"type": "number", "exclusiveMinimum": 0},
    ),
    "lr_schedule": ("learning-rate schedule over the steps", {"enum": ["constant", "cosine"]}),
    "warmup_steps": (
        "linear learning-rate warm-up from lr/warmup_steps to lr over this many steps (0: none)",
        {"type": "integer", "minimum": 0},
    ),
    "warmup_fraction": (
        "warm-up as a fraction of the steps instead of warmup_steps",
        {"type": ["number", "null"], "minimum": 0, "exclusiveMaximum": 1},
    ),
    "lr_floor": (
        "cosine: the learning rate at the end, as a fraction of the peak (0: decay to zero)",
        {"type": "number", "minimum": 0, "maximum": 1},
    ),
    "lr_batch_ref": (
        "scale lr linearly with batch_size / lr_batch_ref",
        {"type": ["integer", "null"], "minimum": 1},
    ),
    "batch_size": ("training batch size", {"type": "integer", "minimum": 1}),
    "steps": (
        "optimizer steps per run (or give epochs)",
        {"type": ["integer", "null"], "minimum": 1},
    ),
    "epochs": (
        "training length in passes over the training split (instead of steps)",
        {"type": ["number", "null"], "exclusiveMinimum": 0},
    ),
    "eval_every_epochs": (
        "evaluation interval in epochs (instead of eval_every)",
        {"type": ["number", "null"], "exclusiveMinimum": 0},
    ),
    "batches": (
        "mixed batches, or per_domain: each batch from one domain of a multi-domain dataset",
        {"enum": ["mixed", "per_domain"]},
    ),
    "eval_every": (
        "steps between evaluations (eval mode, untimed)",
        {"type": "integer", "minimum": 1},
    ),
    "eval_batch_size": ("batch size of evaluation", {"type": "integer", "minimum": 1}),
    "probe_size": (
        "size of the fixed train probe evaluated with the test split",
        {"type": "integer", "minimum": 1},
    ),
    "seeds": (
        "N → seeds 0..N-1, or an explicit list [0, 7, 9]",
        {
            "anyOf": [
                {"type": "integer", "minimum": 1},
                {
                    "type": "array",
                    "items": {"type": "integer", "minimum": 0},
                    "minItems": 1,
                    "uniqueItems": True,
                },
            ]
        },
    ),
    "device": (
        "auto | cpu | cuda | cuda:N | mps",
        {"type": "string", "pattern": r"^(auto|cpu|mps|cuda(:\d+)?)$"},
    ),
    "threads": (
        "torch intra-op threads for this variant",
        {"type": ["integer", "null"], "minimum": 1},
    ),
    "reproducible": (
        "pin CPU kernels to a common level so other machines give the same numbers "
        "(not part of the variant id)",
        {"type": ["boolean", "null"]},
    ),
    "grad_clip": (
        "clip the gradient ℓ2 norm to this value",
        {"type": ["number", "null"], "exclusiveMinimum": 0},
    ),
    "precision": (
        "fp32, or autocast to bf16 / fp16 (grad scaler for fp16)",
        {"enum": ["fp32", "bf16", "fp16"]},
    ),
    "compile": ("torch.compile the model (compile time reported separately)", {"type": "boolean"}),
    "channels_last": ("channels-last memory format (CNNs on images)", {"type": "boolean"}),
    "profile_steps": (
        "steps timed phase by phase after training (0: off)",
        {"type": "integer", "minimum": 0},
    ),
    "batch_seeds": (
        "train a variant's seeds as one stacked model: true where supported, auto where also "
        "measured faster (CPU), false never (default; not part of the variant id)",
        {"enum": ["auto", True, False]},
    ),
}

CLAIM_KEYS: dict[str, tuple[str, Schema]] = {
    "text": ("the claim in words", {"type": "string"}),
    "source": ("where it is published (paper, figure)", {"type": "string"}),
    "metric": ("metric compared (normbench list metrics)", {"type": "string"}),
    "better": ("swept values of the variants claimed better", {"type": "object"}),
    "than": ("swept values of the variants they beat", {"type": "object"}),
    "where": ("restriction of both sides to these swept values", {"type": "object"}),
    "published": (
        "a published value the `where` variants should match",
        {"type": ["number", "null"]},
    ),
    "tolerance": ("allowed distance from the published value", {"type": "number", "minimum": 0}),
    "tune": (
        "grid keys each side takes at its own best value (best mean of the metric), e.g. [lr]",
        {"type": "array", "items": {"type": "string"}},
    ),
    "margin": (
        'equivalence margin δ: a number in the metric\'s units (0.01) or a percentage ("5%")',
        {
            "anyOf": [
                {"type": "number", "minimum": 0},
                {"type": "string", "pattern": r"^\d+(\.\d+)?\s*%$"},
                {"type": "null"},
            ]
        },
    ),
}


def _props(keys: dict[str, tuple[str, Schema]], **override: Schema) -> dict[str, Schema]:
    return {
        k: {**override.get(k, schema), "description": text} for k, (text, schema) in keys.items()
    }


def norm_schema() -> Schema:
    """A norm: a registry name, or ``{kind: NAME, ...}`` with that norm's own options."""
    from normbench.norms.catalog import NORMS

    names = list(NORMS)
    rules = []
    for name, entry in NORMS.items():
        props = {"kind": {"const": name}} | {o.name: json_schema(o) for o in entry.options}
        then: Schema = {"properties": props}
        required = [o.name for o in entry.options if o.required]
        if required:
            then["required"] = required
        if not entry.extra_options:
            then["additionalProperties"] = False
        rules.append(
            {"if": {"properties": {"kind": {"const": name}}, "required": ["kind"]}, "then": then}
        )
    summary = "; ".join(f"{n}: {e.summary}" for n, e in NORMS.items())
    return {
        "description": f"a norm name or {{kind: NAME, ...options}} — {summary}",
        "anyOf": [
            {"enum": names},
            {
                "type": "object",
                "required": ["kind"],
                "properties": {"kind": {"enum": names, "description": "the norm's registry name"}},
                "allOf": rules,
            },
        ],
    }


def dataset_schema() -> Schema:
    """``dataset:`` with the chosen dataset's options (if/then on ``name``)."""
    from normbench.data.registry import DATASETS

    names = list(DATASETS)
    rules = []
    for name, entry in DATASETS.items():
        props = {"name": {"const": name}} | {o.name: json_schema(o) for o in entry.all_options()}
        rules.append(
            {
                "if": {"properties": {"name": {"const": name}}, "required": ["name"]},
                "then": {"properties": props, "additionalProperties": False},
            }
        )
    summary = "; ".join(f"{n}: {e.summary}" for n, e in DATASETS.items())
    return {
        "description": "the data: a registry name plus its options (normbench list datasets)",
        "type": "object",
        "required": ["name"],
        "properties": {"name": {"enum": names, "description": f"dataset — {summary}"}},
        "allOf": rules,
    }


def model_schema() -> Schema:
    """``model:`` with the keys of its kind only (if/then on ``kind``), from the kinds' entries."""
    from normbench.models.catalog import MODELS, model_keys

    kinds = ", ".join(MODELS)
    props: dict[str, Schema] = {
        "kind": {"enum": list(MODELS), "description": f"model family: {kinds}"},
        "norm": norm_schema(),
        **{name: {"description": opt.summary} for name, opt in model_keys().items()},
    }
    rules = [
        {
            "if": {"properties": {"kind": {"const": k}}, "required": ["kind"]},
            "then": {
                "properties": {o.name: json_schema(o) for o in m.options},
                "propertyNames": {"enum": sorted(m.keys)},
            },
        }
        for k, m in MODELS.items()
    ]
    rules[0]["if"] = {"anyOf": [{"not": {"required": ["kind"]}}, rules[0]["if"]]}  # mlp default
    return {
        "description": "the network: family, shape, activation, norm and its placement",
        "type": "object",
        "properties": props,
        "additionalProperties": False,
        "allOf": rules,
    }


def optimizer_schema() -> Schema:
    names = ["sgd", "momentum", "adam", "adamw"]
    props = _props(OPTIMIZER_KEYS, name={"enum": names})
    return {
        "description": TRAINING_KEYS["optimizer"][0],
        "anyOf": [
            {"enum": names},
            {
                "type": "object",
                "properties": {**props, "kind": {"enum": names, "description": "alias of name"}},
                "additionalProperties": False,
            },
        ],
    }


def diagnostics_schema() -> Schema:
    from normbench.train.diag_catalog import DIAGNOSTICS

    names = list(DIAGNOSTICS)
    props = {}
    for name, d in DIAGNOSTICS.items():
        option_props = {o.name: json_schema(o) for o in d.options}
        props[name] = {
            "description": d.summary,
            "anyOf": [
                {"type": "null"},
                {"type": "object", "properties": option_props, "additionalProperties": False},
            ],
        }
    summary = "; ".join(f"{n}: {d.summary}" for n, d in DIAGNOSTICS.items())
    return {
        "description": f"opt-in measurements (normbench list diagnostics) — {summary}",
        "anyOf": [
            {"type": "array", "items": {"enum": names}, "uniqueItems": True},
            {"type": "object", "properties": props, "additionalProperties": False},
        ],
    }


def grid_schema() -> Schema:
    """``grid:`` — aliases with typed values, or any dotted key path."""
    from normbench.data.registry import DATASETS
    from normbench.models.catalog import ACTIVATIONS, MODELS
    from normbench.suite_keys import ALIASES

    values: dict[str, Schema] = {
        "norm": norm_schema(),
        "placement": {"enum": sorted({p for m in MODELS.values() for p in m.placements})},
        "activation": {"enum": list(ACTIVATIONS)},
        "lr_mult": TRAINING_KEYS["lr_mult"][1],
        "lr": TRAINING_KEYS["lr"][1],
        "batch_size": TRAINING_KEYS["batch_size"][1],
        "steps": TRAINING_KEYS["steps"][1],
        "optimizer": optimizer_schema(),
        "model": {"anyOf": [{"enum": list(MODELS)}, model_schema()]},
        "dataset": {"anyOf": [{"enum": list(DATASETS)}, dataset_schema()]},
    }
    props = {
        a: {
            "type": "array",
            "minItems": 1,
            "items": values.get(a, {}),
            "description": f"values of {path} to sweep",
        }
        for a, path in ALIASES.items()
    }
    return {
        "description": "cartesian product of swept values; keys are aliases or dotted paths "
        "(model.hidden, training.lr_schedule, dataset.num_samples, …)",
        "type": "object",
        "properties": props,
        "propertyNames": {"enum": [*ALIASES, *dotted_keys()]},
        "additionalProperties": {
            "type": "array",
            "minItems": 1,
            "description": "values of this dotted key to sweep",
        },
    }


def dotted_keys() -> list[str]:
    """Every dotted path a grid may sweep: a section's keys, optimizer, norm and dataset options."""
    from normbench.data.registry import DATASETS
    from normbench.models.catalog import model_keys
    from normbench.norms.catalog import NORMS

    norm_opts = sorted({o.name for e in NORMS.values() for o in e.options} | {"kind"})
    data_opts = sorted({o.name for e in DATASETS.values() for o in e.all_options()} | {"name"})
    return [
        *(f"model.{k}" for k in ["kind", "norm", *model_keys()]),
        *(f"model.norm.{k}" for k in norm_opts),
        *(f"training.{k}" for k in TRAINING_KEYS),
        *(f"training.optimizer.{k}" for k in OPTIMIZER_KEYS),
        *(f"dataset.{k}" for k in data_opts),
    ]


def build_schema() -> Schema:
    """The whole suite schema (``normbench schema``)."""
    from normbench import __version__
    from normbench.suite_keys import TARGET_KEYS

    return {
        "$schema": SCHEMA_DIALECT,
        "$id": SCHEMA_ID,
        "title": "normbench suite",
        "description": f"A normbench {__version__} suite: dataset, model, training and the grid "
        "to sweep. Editors: start the file with `# yaml-language-server: "
        "$schema=PATH/suite.schema.json`.",
        "type": "object",
        "required": ["name", "dataset"],
        "additionalProperties": False,
        "properties": {
            "name": {
                "type": "string",
                "pattern": NAME_PATTERN,
                "description": "suite name: a-z, 0-9, '_' and '-' (the run directory)",
            },
            "description": {"type": "string", "description": "free text, shown in the report"},
            "dataset": dataset_schema(),
            "model": model_schema(),
            "training": {
                "description": "optimizer, learning rate, batch, steps, seeds, device",
                "type": "object",
                "additionalProperties": False,
                "properties": _props(TRAINING_KEYS, optimizer=optimizer_schema()),
            },
            "grid": grid_schema(),
            "exclude": {
                "type": "array",
                "items": {"type": "object", "minProperties": 1},
                "description": "grid points not to run, e.g. {norm: none, placement: post}",
            },
            "targets": {
                "type": "object",
                "description": "steps/seconds to target are reported for these thresholds",
                "propertyNames": {"enum": list(TARGET_KEYS)},
                "additionalProperties": {"type": "number"},
            },
            "diagnostics": diagnostics_schema(),
            "gates": {
                "type": "array",
                "description": "default --fail-on gates for run --baseline "
                "and compare, METRIC:[+|-]NUMBER[%]",
                "items": {"type": "string", "pattern": GATE_PATTERN},
            },
            "claims": {
                "type": "array",
                "description": "published claims checked against the seeds",
                "items": {
                    "type": "object",
                    "required": ["text", "metric"],
                    "additionalProperties": False,
                    "properties": _props(CLAIM_KEYS),
                },
            },
        },
    }


__all__ = ["SCHEMA_ID", "build_schema", "dataset_schema", "model_schema", "norm_schema"]
