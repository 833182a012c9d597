"""Causal transformer and recurrent networks with per-token noise levels for Diffusion Forcing."""

from dforce_backbones.attention import RopeSelfAttention, banded_causal_mask
from dforce_backbones.embeddings import LevelEmbedding, apply_rope, rope_angles, sinusoidal_embedding
from dforce_backbones.frames import stack_frames, unstack_frames
from dforce_backbones.kv_cache import KVCache
from dforce_backbones.presets import RECURRENT_PRESETS, TRANSFORMER_PRESETS
from dforce_backbones.recurrent import RecurrentCache, RecurrentDenoiser, RecurrentDenoiserConfig, ResBlock
from dforce_backbones.transformer import AdaLNBlock, CausalTransformer, CausalTransformerConfig, FinalLayer

__version__ = "0.1.0"

__all__ = [
    "RECURRENT_PRESETS",
    "TRANSFORMER_PRESETS",
    "AdaLNBlock",
    "CausalTransformer",
    "CausalTransformerConfig",
    "FinalLayer",
    "KVCache",
    "LevelEmbedding",
    "RecurrentCache",
    "RecurrentDenoiser",
    "RecurrentDenoiserConfig",
    "ResBlock",
    "RopeSelfAttention",
    "apply_rope",
    "banded_causal_mask",
    "rope_angles",
    "sinusoidal_embedding",
    "stack_frames",
    "unstack_frames",
]
