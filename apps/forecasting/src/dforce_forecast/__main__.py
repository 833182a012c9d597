"""``python -m dforce_forecast``: the same as the ``dforce-forecast`` command."""

import sys

from dforce_forecast.cli import main

sys.exit(main())
