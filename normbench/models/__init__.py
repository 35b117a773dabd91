"""Model builders: ``build(model_cfg, sample_shape, num_outputs)`` (torch imported lazily)."""

from __future__ import annotations

from typing import Any


def build(cfg: dict[str, Any], sample_shape: tuple[int, ...], num_outputs: int) -> Any:
    """Build the ``nn.Module`` for a resolved model config and one sample's shape."""
    from normbench.models.cnn import build_cnn
    from normbench.models.custom import build_custom
    from normbench.models.mlp import build_mlp
    from normbench.models.rnn import build_rnn

    builders = {"mlp": build_mlp, "cnn": build_cnn, "rnn": build_rnn, "custom": build_custom}
    return builders[cfg["kind"]](cfg, sample_shape, num_outputs)
