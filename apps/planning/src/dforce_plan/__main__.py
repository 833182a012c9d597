"""``python -m dforce_plan``."""

import sys

from .cli import main

sys.exit(main())
