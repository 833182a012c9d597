"""Lazy imports of the optional `maze` extra with an actionable error."""

from __future__ import annotations

import importlib
from types import ModuleType

_HINT = "pip install dforce-datasets[maze]"


def require(module: str) -> ModuleType:
    """Import an optional dependency of dforce_datasets.maze2d or raise ImportError naming the extra."""
    try:
        return importlib.import_module(module)
    except ImportError as err:  # pragma: no cover - exercised only where the extra is missing
        raise ImportError(
            f"dforce_datasets.maze2d needs the optional dependency {module!r}: {_HINT} ({err})"
        ) from err
