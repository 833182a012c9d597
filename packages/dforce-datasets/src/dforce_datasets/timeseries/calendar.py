"""Frequencies, period ordinals and calendar fields on numpy datetime64 (no pandas)."""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

# Canonical base units and the spellings accepted for each (pandas / GluonTS aliases, old and new).
_UNIT_ALIASES = {
    "min": "min", "t": "min",
    "h": "H",
    "d": "D",
    "b": "B",
    "w": "W", "w-sun": "W",
    "me": "M", "ms": "M",
}
_FREQ_RE = re.compile(r"^\s*(\d*)\s*([A-Za-z][A-Za-z-]*)\s*$")
_MINUTES = {"min": 1, "H": 60, "D": 1440}


@dataclass(frozen=True)
class Frequency:
    """A sampling frequency: ``multiple`` steps of a base ``unit`` (min, H, D, B, W or M)."""

    unit: str
    multiple: int = 1

    def __post_init__(self) -> None:
        if self.unit not in ("min", "H", "D", "B", "W", "M"):
            raise ValueError(f"unit must be one of min, H, D, B, W, M, got {self.unit!r}")
        if self.multiple < 1:
            raise ValueError(f"multiple must be >= 1, got {self.multiple}")

    def __str__(self) -> str:
        return f"{self.multiple if self.multiple > 1 else ''}{self.unit}"


def parse_freq(freq: str | Frequency) -> Frequency:
    """Parse a pandas-style frequency string such as ``"B"``, ``"h"``, ``"30min"``, ``"5T"`` or ``"W"``."""
    if isinstance(freq, Frequency):
        return freq
    m = _FREQ_RE.match(str(freq))
    if m is not None and m.group(2) == "m":
        raise ValueError(f"ambiguous frequency {freq!r}: write 'min' for minutes or 'M' for months")
    unit = None if m is None else "M" if m.group(2) == "M" else _UNIT_ALIASES.get(m.group(2).lower())
    if unit is None:
        raise ValueError(
            f"unsupported frequency {freq!r}: use an optional integer multiple and one of "
            "min/T (minutes), H/h (hours), D (days), B (business days), W (weeks, W-SUN), M/ME (months)"
        )
    return Frequency(unit, int(m.group(1)) if m.group(1) else 1)


def parse_timestamp(text: str) -> np.datetime64:
    """Parse an ISO-like start string (``"1990-01-01 00:00:00"``) to minute-precision datetime64."""
    if not isinstance(text, str):
        raise ValueError(f"start must be a string like '2014-01-01 00:00:00', got {type(text).__name__}")
    s = text.strip().replace(" ", "T")
    if s.endswith("Z") or re.search(r"[+-]\d\d:?\d\d$", s.split("T", 1)[-1] if "T" in s else ""):
        raise ValueError(f"start {text!r} has a time zone; write local times without an offset")
    try:
        return np.datetime64(s, "m")
    except ValueError as exc:
        raise ValueError(f"cannot parse start {text!r} as a date/time ('YYYY-MM-DD[ HH:MM[:SS]]')") from exc


def _days(ts_minutes: np.ndarray) -> np.ndarray:
    return np.floor_divide(ts_minutes, 1440)


def to_ordinal(ts: np.datetime64 | np.ndarray, freq: str | Frequency) -> np.ndarray:
    """Period ordinal in base units of ``freq`` of the period containing ``ts`` (weekends roll forward for B)."""
    f = parse_freq(freq)
    m = np.asarray(ts, dtype="datetime64[m]").astype(np.int64)
    if f.unit in _MINUTES:
        return np.floor_divide(m, _MINUTES[f.unit])
    d = _days(m)
    if f.unit == "B":
        week, weekday = np.divmod(d + 3, 7)  # 1970-01-01 is a Thursday (Monday = 0)
        return week * 5 + np.minimum(weekday, 5)
    if f.unit == "W":
        return np.floor_divide(d + 3, 7)  # Monday-started weeks (pandas W-SUN periods)
    return np.asarray(ts, dtype="datetime64[m]").astype("datetime64[M]").astype(np.int64)


def from_ordinal(ordinal: np.ndarray | int, freq: str | Frequency) -> np.ndarray:
    """Start time (datetime64[m]) of each period ordinal in base units of ``freq``."""
    f = parse_freq(freq)
    o = np.asarray(ordinal, dtype=np.int64)
    if f.unit in _MINUTES:
        return (o * _MINUTES[f.unit]).astype("datetime64[m]")
    if f.unit == "B":
        week, weekday = np.divmod(o, 5)
        return ((week * 7 + weekday - 3) * 1440).astype("datetime64[m]")
    if f.unit == "W":
        return ((o * 7 - 3) * 1440).astype("datetime64[m]")
    return o.astype("datetime64[M]").astype("datetime64[m]")


def period_times(start_ordinal: int, length: int, freq: str | Frequency) -> np.ndarray:
    """Start times (datetime64[m]) of ``length`` consecutive steps from ``start_ordinal``."""
    f = parse_freq(freq)
    return from_ordinal(start_ordinal + f.multiple * np.arange(length, dtype=np.int64), f)


def calendar_fields(times: np.ndarray) -> dict[str, np.ndarray]:
    """Zero-based calendar fields (minute, hour, weekday with Monday = 0, day/week/month of year, ...)."""
    t = np.asarray(times, dtype="datetime64[m]")
    m = t.astype(np.int64)
    days = _days(m)
    dow = np.mod(days + 3, 7)
    year_start = t.astype("datetime64[Y]").astype("datetime64[D]").astype(np.int64)
    month = t.astype("datetime64[M]")
    month_start = month.astype("datetime64[D]").astype(np.int64)
    thursday = days - dow + 3  # ISO week: the week belongs to the year of its Thursday
    thursday_year = (thursday.astype("datetime64[D]").astype("datetime64[Y]").astype("datetime64[D]")
                     .astype(np.int64))
    return {
        "minute_of_hour": np.mod(m, 60),
        "hour_of_day": np.mod(np.floor_divide(m, 60), 24),
        "day_of_week": dow,
        "day_of_month": days - month_start,
        "day_of_year": days - year_start,
        "week_of_year": np.floor_divide(thursday - thursday_year, 7),
        "month_of_year": np.mod(month.astype(np.int64), 12),
    }
