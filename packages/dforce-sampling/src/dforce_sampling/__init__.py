"""Scheduling matrices, per-token DDIM/DDPM steps, KV-cached rollouts and guidance (incl. Monte Carlo Guidance) for Diffusion Forcing."""

__version__ = "0.1.0"
