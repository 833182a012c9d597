"""Reader for datasets in the GluonTS file format (metadata + train/ and test/ JSON lines), dir or archive."""

from __future__ import annotations

import gzip
import json
import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .archive import extract_cached, is_archive
from .calendar import parse_freq, parse_timestamp

log = logging.getLogger(__name__)

DATA_SUFFIXES = (".json", ".jsonl", ".json.gz", ".jsonl.gz")
_NAN_STRINGS = frozenset({"nan", "NaN", "NAN"})


@dataclass(frozen=True)
class SeriesEntry:
    """One univariate series: start time, float64 target (NaN = missing), static category, id, origin."""

    start: np.datetime64
    target: np.ndarray
    item_id: str | int | None
    feat_static_cat: tuple[int, ...]
    location: str

    @property
    def nan_count(self) -> int:
        """Number of missing (NaN) target values."""
        return int(np.count_nonzero(np.isnan(self.target)))


@dataclass(frozen=True)
class DatasetMetadata:
    """What a dataset declares: frequency, prediction length, feat_static_cat cardinalities, and from where."""

    freq: str
    prediction_length: int | None
    cardinality: tuple[int, ...]
    source: str


@dataclass(frozen=True)
class GluonTSDataset:
    """A GluonTS-format dataset: metadata plus the train and test series, in file order."""

    root: Path
    metadata: DatasetMetadata
    train: tuple[SeriesEntry, ...]
    test: tuple[SeriesEntry, ...]

    @property
    def freq(self) -> str:
        """The frequency string (``"B"``, ``"H"``, ``"30min"``, ...)."""
        return self.metadata.freq

    @property
    def prediction_length(self) -> int | None:
        """Forecast horizon declared by the dataset (or given by the caller)."""
        return self.metadata.prediction_length

    def nan_counts(self) -> dict[str, int]:
        """Missing target values per split."""
        return {"train": sum(e.nan_count for e in self.train), "test": sum(e.nan_count for e in self.test)}

    def summary(self) -> dict:
        """JSON-ready description: sizes, lengths, frequency, missing values."""
        def lengths(entries):
            return sorted({len(e.target) for e in entries})

        return {
            "root": str(self.root),
            "freq": self.freq,
            "prediction_length": self.prediction_length,
            "cardinality": list(self.metadata.cardinality),
            "metadata_source": self.metadata.source,
            "num_train": len(self.train),
            "num_test": len(self.test),
            "train_lengths": lengths(self.train),
            "test_lengths": lengths(self.test),
            "nan": self.nan_counts(),
        }


# ----------------------------------------------------------------------------------------------- entries


def _target_array(values, location: str) -> np.ndarray:
    """Float64 target from a JSON list; "NaN" strings and null become NaN; anything else is an error."""
    if not isinstance(values, list) or not values:
        raise ValueError(f"{location}: 'target' must be a non-empty list of numbers")
    try:
        arr = np.asarray(values)
    except ValueError as exc:
        raise ValueError(f"{location}: 'target' is ragged or nested: {exc}") from exc
    if arr.ndim != 1:
        raise ValueError(f"{location}: 'target' must be one-dimensional (multivariate entries are not "
                         f"supported), got shape {arr.shape}")
    if arr.dtype.kind in "biuf":
        out = arr.astype(np.float64)
    else:
        out = np.empty(len(values), dtype=np.float64)
        for i, v in enumerate(values):
            if v is None or (isinstance(v, str) and v.strip() in _NAN_STRINGS):
                out[i] = math.nan
            elif isinstance(v, (int, float)) and not isinstance(v, bool):
                out[i] = v
            else:
                raise ValueError(f"{location}: target[{i}] = {v!r} is not a number (missing values are "
                                 "written NaN, \"NaN\" or null)")
    if np.isinf(out).any():
        i = int(np.flatnonzero(np.isinf(out))[0])
        raise ValueError(f"{location}: target[{i}] is infinite")
    return out


def parse_entry(line: str, location: str) -> SeriesEntry:
    """One JSON line -> SeriesEntry; ValueError naming ``location`` (file:line) on anything malformed."""
    try:
        data = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{location}: invalid JSON ({exc.msg} at column {exc.colno})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{location}: each line must be a JSON object, got {type(data).__name__}")
    for key in ("start", "target"):
        if key not in data:
            raise ValueError(f"{location}: missing required field {key!r}")
    try:
        start = parse_timestamp(data["start"])
    except ValueError as exc:
        raise ValueError(f"{location}: {exc}") from None
    target = _target_array(data["target"], location)
    cats = data.get("feat_static_cat", ())
    if cats is None:
        cats = ()
    if not isinstance(cats, list | tuple) or not all(
        isinstance(c, int | float) and not isinstance(c, bool) and float(c).is_integer() and c >= 0 for c in cats
    ):
        raise ValueError(f"{location}: 'feat_static_cat' must be a list of non-negative integers, got {cats!r}")
    item_id = data.get("item_id")
    if item_id is not None and not isinstance(item_id, str | int):
        raise ValueError(f"{location}: 'item_id' must be a string or integer, got {item_id!r}")
    return SeriesEntry(start, target, item_id, tuple(int(c) for c in cats), location)


def data_files(directory: Path) -> list[Path]:
    """The JSON-lines files of one split directory, sorted; hidden and ``_``/``.``-prefixed files skipped."""
    files = sorted(
        p for p in directory.iterdir()
        if p.is_file() and not p.name.startswith((".", "_")) and p.name.lower().endswith(DATA_SUFFIXES)
    )
    if not files:
        raise ValueError(f"{directory}: no data files (expected *.json, *.jsonl, *.json.gz or *.jsonl.gz)")
    return files


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    try:
        with opener(path, "rt", encoding="utf-8") as f:
            for number, line in enumerate(f, 1):
                if line.strip():
                    yield number, line
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: cannot read ({exc})") from exc


def read_split(directory: str | Path) -> list[SeriesEntry]:
    """All series of one split directory (``train/`` or ``test/``), in file then line order."""
    directory = Path(directory)
    return [parse_entry(line, f"{path}:{number}") for path in data_files(directory)
            for number, line in _lines(path)]


# ---------------------------------------------------------------------------------------------- metadata


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: invalid JSON metadata ({exc})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: metadata must be a JSON object")
    return data


def _cardinality(raw, path: Path) -> tuple[int, ...]:
    if raw in (None, []):
        return ()
    try:
        return tuple(int(f["cardinality"]) for f in raw)
    except (TypeError, KeyError, ValueError) as exc:
        raise ValueError(f"{path}: 'feat_static_cat' must be a list of {{'name', 'cardinality'}} objects") from exc


def read_metadata(root: str | Path, *, freq: str | None = None,
                  prediction_length: int | None = None) -> DatasetMetadata:
    """Metadata from ``metadata.json`` (GluonTS) or ``metadata/metadata.json`` (raw GP-copula archives).

    ``freq`` / ``prediction_length`` fill in values the files lack; a ``freq`` that contradicts the file is
    an error, a ``prediction_length`` overrides the file's.
    """
    root = Path(root)
    data, source = {}, "arguments"
    for candidate in (root / "metadata.json", root / "metadata" / "metadata.json"):
        if candidate.is_file():
            data, source = _read_json(candidate), str(candidate)
            break
    file_freq = data.get("freq") or data.get("time_granularity")
    if file_freq is not None and freq is not None and parse_freq(file_freq) != parse_freq(freq):
        raise ValueError(f"{source} says freq={file_freq!r} but freq={freq!r} was requested")
    final_freq = file_freq or freq
    if final_freq is None:
        raise ValueError(f"{root}: no metadata.json (or metadata/metadata.json) giving the frequency; "
                         "add one or pass freq=")
    parse_freq(final_freq)  # validate early
    file_pl = data.get("prediction_length")
    pl = prediction_length if prediction_length is not None else file_pl
    if pl is not None and (not isinstance(pl, int) or isinstance(pl, bool) or pl < 1):
        raise ValueError(f"{source}: prediction_length must be a positive integer, got {pl!r}")
    return DatasetMetadata(str(final_freq), pl, _cardinality(data.get("feat_static_cat"), Path(source)), source)


# ----------------------------------------------------------------------------------------------- dataset


def find_dataset_root(path: str | Path, max_depth: int = 2) -> Path:
    """The directory holding ``train/`` (and usually ``test/``): ``path`` itself or one below it."""
    path = Path(path)
    if not path.is_dir():
        raise ValueError(f"{path} is not a directory")
    frontier, found = [path], []
    for _ in range(max_depth + 1):
        found = [p for p in frontier if (p / "train").is_dir()]
        if found:
            break
        frontier = [c for p in frontier for c in sorted(p.iterdir())
                    if c.is_dir() and not c.name.startswith((".", "_"))]
    if len(found) != 1:
        what = "no directory with a train/ subdirectory" if not found else f"several candidates {found}"
        raise ValueError(f"{path}: expected one GluonTS dataset (train/, test/, metadata.json), found {what}")
    return found[0]


def _fill_defaults(entries: list[SeriesEntry], num_series: int) -> tuple[SeriesEntry, ...]:
    """Give id-less / category-less series ``item_id = index`` and ``feat_static_cat = [index % num_series]``."""
    if all(e.item_id is None and not e.feat_static_cat for e in entries):
        return tuple(SeriesEntry(e.start, e.target, i, (i % max(num_series, 1),), e.location)
                     for i, e in enumerate(entries))
    return tuple(entries)


def read_dataset(path: str | Path, *, freq: str | None = None, prediction_length: int | None = None,
                 cache_dir: str | Path | None = None) -> GluonTSDataset:
    """Read a GluonTS-format dataset from a directory or a .tar.gz (extracted safely into ``cache_dir``).

    Series without ``item_id`` and ``feat_static_cat`` (the raw GP-copula archives) get the ids GluonTS gives
    them on conversion: ``item_id = index`` and ``feat_static_cat = [index % len(train)]``.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"dataset path {path} does not exist")
    if path.is_file():
        if not is_archive(path):
            raise ValueError(f"{path}: expected a directory or a .tar.gz / .tgz / .tar archive")
        from .registry import cache_root  # local import: registry imports this module

        path = extract_cached(path, Path(cache_dir) if cache_dir else cache_root() / "timeseries" / "extracted")
    root = find_dataset_root(path)
    meta = read_metadata(root, freq=freq, prediction_length=prediction_length)
    train = read_split(root / "train")
    test = read_split(root / "test") if (root / "test").is_dir() else []
    if not meta.cardinality:
        meta = DatasetMetadata(meta.freq, meta.prediction_length, (len(train),), meta.source)
    ds = GluonTSDataset(root, meta, _fill_defaults(train, len(train)), _fill_defaults(test, len(train)))
    nans = ds.nan_counts()
    if nans["train"] or nans["test"]:
        log.info("%s: kept %d NaN target values in train and %d in test (missing observations)",
                 root, nans["train"], nans["test"])
    return ds
