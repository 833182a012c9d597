"""Diffusion Forcing for multivariate probabilistic time-series forecasting (GluonTS ``_nips`` benchmark)."""

__version__ = "0.1.0"
