"""Domain datasets, webdataset shards and numba preprocessing for Diffusion Forcing."""

__version__ = "0.1.0"
