"""Diffusion Forcing for multivariate probabilistic time-series forecasting (GluonTS ``_nips`` benchmark).

``Forecaster``, ``ForecastConfig``, ``SeasonalRandomWalk`` and ``run_experiment`` are imported lazily, so
``dforce_forecast.metrics`` stays usable without importing torch.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "ForecastConfig": "dforce_forecast.config",
    "Forecaster": "dforce_forecast.forecaster",
    "SeasonalRandomWalk": "dforce_forecast.baselines",
    "run_experiment": "dforce_forecast.experiment",
    "prepare": "dforce_forecast.data",
}

__all__ = ["ForecastConfig", "Forecaster", "SeasonalRandomWalk", "__version__", "prepare", "run_experiment"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'dforce_forecast' has no attribute {name!r}")
