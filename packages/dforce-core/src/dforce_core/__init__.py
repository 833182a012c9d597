"""Noise schedules, per-token forward process, parameterisations and loss weights for Diffusion Forcing."""

__version__ = "0.1.0"
