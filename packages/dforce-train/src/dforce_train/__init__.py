"""Training loop for Diffusion Forcing models: torchrun DDP, mixed precision, EMA, checkpoints, logging."""

__version__ = "0.1.0"
