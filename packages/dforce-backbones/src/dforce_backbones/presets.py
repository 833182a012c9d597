"""Size presets: dicts of constructor functions for the transformer and the paper's RNNs (ref. §4.1, §5)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from dforce_backbones.recurrent import RecurrentDenoiser, RecurrentDenoiserConfig
from dforce_backbones.transformer import CausalTransformer, CausalTransformerConfig

__all__ = ["RECURRENT_PRESETS", "TRANSFORMER_PRESETS"]


def _transformer(d_model: int, n_layers: int, n_heads: int) -> Callable[..., CausalTransformer]:
    """Constructor ``f(token_shape, **overrides)`` for a transformer of the given size."""

    def build(token_shape: Sequence[int], **overrides: Any) -> CausalTransformer:
        kwargs: dict[str, Any] = {"d_model": d_model, "n_layers": n_layers, "n_heads": n_heads}
        kwargs.update(overrides)
        return CausalTransformer(CausalTransformerConfig(token_shape=tuple(token_shape), **kwargs))

    build.__doc__ = f"CausalTransformer with d_model={d_model}, {n_layers} layers, {n_heads} heads."
    return build


TRANSFORMER_PRESETS: dict[str, Callable[..., CausalTransformer]] = {
    "tiny": _transformer(64, 2, 2),
    "small": _transformer(256, 6, 4),
    "base": _transformer(512, 12, 8),
}


def _recurrent(
    z_dim: int, network_size: int, num_mlp_layers: int, num_gru_layers: int
) -> Callable[..., RecurrentDenoiser]:
    """Constructor ``f(token_shape, **overrides)`` for one of the paper's ``TransitionMlp`` sizes."""

    def build(token_shape: Sequence[int], **overrides: Any) -> RecurrentDenoiser:
        kwargs: dict[str, Any] = {
            "z_dim": z_dim,
            "network_size": network_size,
            "num_mlp_layers": num_mlp_layers,
            "num_gru_layers": num_gru_layers,
        }
        kwargs.update(overrides)
        return RecurrentDenoiser(RecurrentDenoiserConfig(token_shape=tuple(token_shape), **kwargs))

    build.__doc__ = (
        f"RecurrentDenoiser with z={z_dim}, network_size={network_size}, "
        f"{num_mlp_layers} MLP layers, {num_gru_layers} GRUs."
    )
    return build


# Maze (paper B.2 / reference §4.1): z 128, 4 MLP layers, 1 GRU, network_size 32 (yaml) or 16 (medium/umaze);
# pass init_encoder_dim=4 for the start-observation encoder. Time series (§5.3): z 1024, 1 MLP layer, 4 GRUs.
RECURRENT_PRESETS: dict[str, Callable[..., RecurrentDenoiser]] = {
    "maze": _recurrent(128, 32, 4, 1),
    "maze_small": _recurrent(128, 16, 4, 1),
    "time_series": _recurrent(1024, 64, 1, 4),
}
