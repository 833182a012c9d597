"""dforce-plan: Diffusion Forcing planning in D4RL maze2d with Monte Carlo Guidance."""

__version__ = "0.1.0"
