"""The six GluonTS ``_nips`` multivariate datasets: names, canonical URLs, protocol constants, download."""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import tempfile
import urllib.request
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from .archive import sha256_file
from .gluonts_format import GluonTSDataset, read_dataset

log = logging.getLogger(__name__)

ENV_DATA_DIR = "DFORCE_DATA_DIR"
DEFAULT_CACHE = Path("~/.cache/dforce")
_GP_COPULA_ROOT = "https://raw.githubusercontent.com/mbohlkeschneider/gluon-ts/mv_release/datasets/"
_WIKI_URL = ("https://github.com/awslabs/gluon-ts/raw/1553651ca1fca63a16e012b8927bd9ce72b8e79e/datasets/"
             "wiki-rolling_nips.tar.gz")

Opener = Callable[[str], BinaryIO]


@dataclass(frozen=True)
class DatasetInfo:
    """Protocol constants of one benchmark dataset (GluonTS ``_gp_copula_2019`` + the TimeGrad/DF setup)."""

    name: str
    url: str
    num_series: int
    freq: str
    prediction_length: int
    rolling_windows: int
    train_length: int
    max_target_dim: int | None = None
    sha256: str | None = None

    @property
    def target_dim(self) -> int:
        """Number of series the multivariate model sees: ``min(max_target_dim, num_series)``."""
        return min(self.max_target_dim or self.num_series, self.num_series)


def _info(name: str, num_series: int, freq: str, pl: int, windows: int, train_length: int, **kw) -> DatasetInfo:
    url = kw.pop("url", _GP_COPULA_ROOT + f"{name}.tar.gz")
    return DatasetInfo(name, url, num_series, freq, pl, windows, train_length, **kw)


DATASETS: dict[str, DatasetInfo] = {
    info.name: info
    for info in (
        _info("exchange_rate_nips", 8, "B", 30, 5, 6071,
              sha256="83f3cf364ae7854b0a74ef9825c47b8314896de820de877fd466cdffd94027d1"),
        _info("solar_nips", 137, "H", 24, 7, 7009),
        _info("electricity_nips", 370, "H", 24, 7, 5833),
        _info("traffic_nips", 963, "H", 24, 7, 4001),
        _info("taxi_30min", 1214, "30min", 24, 56, 1488),
        _info("wiki-rolling_nips", 9535, "D", 30, 5, 792, max_target_dim=2000, url=_WIKI_URL),
    )
}


def dataset_info(name: str) -> DatasetInfo:
    """Registry entry of ``name``; ValueError listing the known names otherwise."""
    try:
        return DATASETS[name]
    except KeyError:
        raise ValueError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}") from None


def cache_root(cache_dir: str | Path | None = None) -> Path:
    """Cache directory: ``cache_dir``, else ``$DFORCE_DATA_DIR``, else ``~/.cache/dforce``."""
    return Path(cache_dir or os.environ.get(ENV_DATA_DIR) or DEFAULT_CACHE).expanduser()


def download_archive(url: str, dest: str | Path, *, sha256: str | None = None, opener: Opener | None = None,
                     timeout: float = 120.0) -> str:
    """Stream ``url`` to ``dest`` (atomically), check its sha256 if given, and return the digest.

    On a checksum mismatch nothing is left at ``dest`` and ValueError says what was expected.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    tmp = Path(tmp_name)
    h = hashlib.sha256()
    try:
        with os.fdopen(fd, "wb") as out:
            response = opener(url) if opener else urllib.request.urlopen(url, timeout=timeout)
            with response:
                while chunk := response.read(1 << 20):
                    h.update(chunk)
                    out.write(chunk)
        digest = h.hexdigest()
        if sha256 is not None and digest != sha256.lower():
            raise ValueError(f"checksum mismatch for {url}: expected sha256 {sha256}, got {digest}; "
                             f"the download was discarded (nothing cached at {dest})")
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return digest


def verify_archive(path: Path, info: DatasetInfo, *, record: bool = False) -> str:
    """Check an archive against the known checksum, or against the one recorded at first download.

    With no checksum to check against, a warning says so; ``record`` (archives in our own cache) then records
    this one, so later loads are checked against it.
    """
    digest = sha256_file(path)
    sidecar = path.with_name(path.name + ".sha256")
    expected = info.sha256 or (sidecar.read_text(encoding="utf-8").split()[0] if sidecar.is_file() else None)
    if expected is None:
        warnings.warn(f"{path}: {info.name} has no published checksum and none was recorded, so this archive is "
                      f"not verified (its sha256 is {digest})" + ("; recorded it for later loads" if record else ""),
                      stacklevel=3)
        if record:
            _record_digest(path, digest)
    elif digest != expected.lower():
        source = "the registry" if info.sha256 else str(sidecar)
        raise ValueError(f"{path}: sha256 {digest} does not match {expected} from {source}; "
                         "delete the file to download it again, or point data_dir at a good copy")
    return digest


def _candidates(directory: Path, name: str) -> list[Path]:
    return [directory / name, directory / f"{name}.tar.gz", directory / "timeseries" / f"{name}.tar.gz"]


def locate(name: str, *, data_dir: str | Path | None = None, cache_dir: str | Path | None = None,
           download: bool = True, opener: Opener | None = None) -> Path:
    """Local directory or verified archive of a registered dataset, downloading it into the cache if needed.

    With ``data_dir`` only that directory is searched (``<name>/``, ``<name>.tar.gz``); otherwise the cache
    (``cache_dir`` / ``$DFORCE_DATA_DIR`` / ``~/.cache/dforce``), then the canonical URL.
    """
    info = dataset_info(name)
    search = Path(data_dir).expanduser() if data_dir is not None else cache_root(cache_dir)
    for candidate in _candidates(search, name):
        if candidate.is_dir():
            return candidate
        if candidate.is_file():
            verify_archive(candidate, info, record=data_dir is None)
            return candidate
    looked = ", ".join(str(p) for p in _candidates(search, name))
    if data_dir is not None:
        raise FileNotFoundError(f"{name}: not found in data_dir (looked for {looked})")
    if not download:
        raise FileNotFoundError(f"{name}: not in the cache (looked for {looked}) and download=False; "
                                f"get it from {info.url}")
    dest = cache_root(cache_dir) / "timeseries" / f"{name}.tar.gz"
    log.info("downloading %s from %s", name, info.url)
    digest = download_archive(info.url, dest, sha256=info.sha256, opener=opener)
    if info.sha256 is None:  # (a crash before this line leaves no record: the next load records and warns)
        _record_digest(dest, digest)
        log.warning("%s has no published checksum; recorded sha256 %s (later loads are checked against it)",
                 name, digest)
    return dest


def _record_digest(archive: Path, digest: str) -> None:
    """Write ``<archive>.sha256`` (trust on first use), atomically."""
    sidecar = archive.with_name(archive.name + ".sha256")
    tmp = sidecar.with_name(sidecar.name + ".part")
    tmp.write_text(f"{digest}  {archive.name}\n", encoding="utf-8")
    os.replace(tmp, sidecar)


def load_dataset(name_or_path: str | Path, *, data_dir: str | Path | None = None,
                 cache_dir: str | Path | None = None, download: bool = True,
                 opener: Opener | None = None) -> GluonTSDataset:
    """A registered dataset by name (local copy, cache or download) or any GluonTS dataset dir / archive."""
    name = str(name_or_path)
    extract_to = cache_root(cache_dir) / "timeseries" / "extracted"
    if name not in DATASETS:
        path = Path(name_or_path).expanduser()
        if not path.exists():
            raise ValueError(f"{name!r} is neither a registered dataset ({', '.join(DATASETS)}) nor an existing "
                             "path")
        return read_dataset(path, cache_dir=extract_to)
    info = DATASETS[name]
    path = locate(name, data_dir=data_dir, cache_dir=cache_dir, download=download, opener=opener)
    ds = read_dataset(path, freq=info.freq, cache_dir=extract_to)
    if ds.prediction_length is None:
        ds = dataclasses.replace(ds, metadata=dataclasses.replace(ds.metadata, prediction_length=info.prediction_length))
    found = {"training series": (len(ds.train), info.num_series),
             "prediction length": (ds.prediction_length, info.prediction_length)}
    off = [f"{k} {got} (the published {name} has {want})" for k, (got, want) in found.items() if got != want]
    if off:
        warnings.warn(f"{path}: {'; '.join(off)}: this is not the dataset of the paper's protocol, and its scores "
                      "are not comparable with the published ones", stacklevel=2)
    return ds
