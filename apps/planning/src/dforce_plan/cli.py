"""``dforce-plan`` command line (placeholder until the planner lands)."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``dforce-plan`` console script."""
    print("dforce-plan: not implemented yet", file=sys.stderr)
    return 2
