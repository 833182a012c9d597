"""Causal transformer and recurrent networks with per-token noise levels for Diffusion Forcing."""

__version__ = "0.1.0"
