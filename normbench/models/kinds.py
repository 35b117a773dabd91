"""The model kinds, defined once (torch-free and import-free, so every layer may use them)."""

from __future__ import annotations

MLP, CNN, RNN, CUSTOM = "mlp", "cnn", "rnn", "custom"

# The kinds normbench builds itself: norms, data layouts and cost estimates are per built-in kind.
BUILT_IN_MODELS: tuple[str, ...] = (MLP, CNN, RNN)
# Every kind a suite may name: the built-in ones and a user's own factory.
MODEL_KINDS: tuple[str, ...] = (*BUILT_IN_MODELS, CUSTOM)
