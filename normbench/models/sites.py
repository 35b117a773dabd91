"""Where inside a model a layer option points: a module path or a counted hidden block/site."""

from __future__ import annotations

from torch import nn


def resolve_layer(model: nn.Module, layer: int | str) -> tuple[nn.Module, str, int | str]:
    """Where the activations probe looks: (module, ``"input"`` or ``"output"``, label).

    A module path (``"layer2.0.relu"``) records that module's input. An index counts the
    hidden blocks of a built-in model (the input of ``blocks[i].act``) or, in a custom model,
    the normalisation sites in module order (the output of the i-th norm layer, i.e. what
    the next layer, usually the non-linearity, receives). ``LookupError`` when absent.
    """
    if isinstance(layer, str):
        try:
            return model.get_submodule(layer), "input", layer
        except AttributeError:
            raise LookupError(f"the model has no module '{layer}'") from None
    blocks = getattr(model, "blocks", None)
    if isinstance(blocks, nn.ModuleList) and len(blocks) and hasattr(blocks[0], "act"):
        i = layer % len(blocks)
        return blocks[i].act, "input", i
    sites = getattr(model, "normbench_sites", None)
    if sites:
        i = layer % len(sites)
        return model.get_submodule(sites[i]), "output", sites[i]
    raise LookupError(
        f"layer {layer}: the model has no hidden blocks or norm layers to count; "
        "give a module path such as 'layer1.0.relu'"
    )
