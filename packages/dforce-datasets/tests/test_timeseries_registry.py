"""The ``_nips`` registry: constants, download with checksum, local copies, and the real exchange_rate_nips."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import logging
import tarfile
from pathlib import Path

import numpy as np
import pytest

from dforce_datasets.timeseries import DATASETS, cache_root, download_archive, load_dataset, locate, safe_extract
from dforce_datasets.timeseries import registry as registry_module

EXCHANGE = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "exchange_rate_nips.tar.gz"
EXCHANGE_SHA256 = "83f3cf364ae7854b0a74ef9825c47b8314896de820de877fd466cdffd94027d1"
needs_exchange = pytest.mark.skipif(not EXCHANGE.is_file(),
                                    reason=f"real exchange_rate_nips archive not found at {EXCHANGE}")


def tiny_archive(path: Path, name: str = "tiny", n_series: int = 2, windows: int = 2) -> Path:
    """A raw GP-copula style archive (metadata/metadata.json + train/ + test/) with a few hourly series."""
    path.parent.mkdir(parents=True, exist_ok=True)
    files = {f"{name}/metadata/metadata.json": json.dumps({"time_granularity": "H"})}
    files[f"{name}/train/train.json"] = "\n".join(
        json.dumps({"start": "2014-01-01 00:00:00", "target": list(range(i, i + 50))}) for i in range(n_series))
    files[f"{name}/test/test.json"] = "\n".join(
        json.dumps({"start": "2014-01-01 00:00:00", "target": list(range(i, i + 50 + 5 * (w + 1)))})
        for w in range(windows) for i in range(n_series))
    with tarfile.open(path, "w:gz") as tar:
        for member, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(member)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


@pytest.fixture
def fake_registry(monkeypatch, tmp_path):
    """Register a tiny dataset served from a file:// URL with an unknown checksum."""
    archive = tiny_archive(tmp_path / "served" / "tiny_nips.tar.gz", "tiny_nips")
    info = registry_module.DatasetInfo("tiny_nips", archive.as_uri(), 2, "H", 5, 2, 50)
    monkeypatch.setitem(DATASETS, "tiny_nips", info)
    return info


def test_registry_constants():
    expected = {
        "exchange_rate_nips": (8, "B", 30, 5, 6071),
        "solar_nips": (137, "H", 24, 7, 7009),
        "electricity_nips": (370, "H", 24, 7, 5833),
        "traffic_nips": (963, "H", 24, 7, 4001),
        "taxi_30min": (1214, "30min", 24, 56, 1488),
        "wiki-rolling_nips": (9535, "D", 30, 5, 792),
    }
    got = {k: (v.num_series, v.freq, v.prediction_length, v.rolling_windows, v.train_length)
           for k, v in DATASETS.items()}
    assert got == expected
    root = "https://raw.githubusercontent.com/mbohlkeschneider/gluon-ts/mv_release/datasets/"
    for name, info in DATASETS.items():
        if name != "wiki-rolling_nips":
            assert info.url == f"{root}{name}.tar.gz"
    wiki = DATASETS["wiki-rolling_nips"]
    assert wiki.url.startswith("https://github.com/awslabs/gluon-ts/raw/1553651ca1fca63a16e012b8927bd9ce72b8e79e/")
    assert wiki.max_target_dim == 2000 and wiki.target_dim == 2000 and DATASETS["solar_nips"].target_dim == 137
    assert DATASETS["exchange_rate_nips"].sha256 == EXCHANGE_SHA256


def test_cache_root_from_env(monkeypatch, tmp_path):
    monkeypatch.setenv("DFORCE_DATA_DIR", str(tmp_path / "c"))
    assert cache_root() == tmp_path / "c"
    assert cache_root(tmp_path / "x") == tmp_path / "x"
    monkeypatch.delenv("DFORCE_DATA_DIR")
    assert cache_root() == Path("~/.cache/dforce").expanduser()


def test_download_file_url_with_checksum(tmp_path):
    src = tiny_archive(tmp_path / "a.tar.gz")
    digest = hashlib.sha256(src.read_bytes()).hexdigest()
    dest = tmp_path / "cache" / "a.tar.gz"
    assert download_archive(src.as_uri(), dest, sha256=digest) == digest
    assert dest.read_bytes() == src.read_bytes()
    assert sorted(p.name for p in dest.parent.iterdir()) == ["a.tar.gz"]


def test_checksum_mismatch_leaves_no_corrupt_cache(tmp_path):
    src = tiny_archive(tmp_path / "a.tar.gz")
    dest = tmp_path / "cache" / "a.tar.gz"
    with pytest.raises(ValueError, match="checksum mismatch.*expected sha256 0+, got"):
        download_archive(src.as_uri(), dest, sha256="0" * 64)
    assert list(dest.parent.iterdir()) == []


def test_download_records_hash_and_reuses_cache(fake_registry, tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("DFORCE_DATA_DIR", str(tmp_path / "cache"))
    with caplog.at_level(logging.INFO, logger="dforce_datasets.timeseries"):
        ds = load_dataset("tiny_nips")
    cached = tmp_path / "cache" / "timeseries" / "tiny_nips.tar.gz"
    assert cached.is_file() and "recorded sha256" in caplog.text
    sidecar = cached.with_name("tiny_nips.tar.gz.sha256")
    assert sidecar.read_text().split()[0] == hashlib.sha256(cached.read_bytes()).hexdigest()
    assert ds.freq == "H" and ds.prediction_length == 5 and len(ds.train) == 2 and len(ds.test) == 4

    def no_network(url):
        raise AssertionError("should not download again")

    assert locate("tiny_nips", opener=no_network) == cached
    cached.write_bytes(cached.read_bytes() + b"tampered")
    with pytest.raises(ValueError, match="does not match"):
        locate("tiny_nips", opener=no_network)


def test_unrecorded_archive_warns_and_is_recorded(fake_registry, tmp_path):
    cache = tmp_path / "cache"
    cached = locate("tiny_nips", cache_dir=cache)
    sidecar = cached.with_name("tiny_nips.tar.gz.sha256")
    sidecar.unlink()  # as if the process died between the download and the record
    with pytest.warns(UserWarning, match="not verified.*recorded it"):
        assert locate("tiny_nips", cache_dir=cache, download=False) == cached
    assert sidecar.read_text().split()[0] == hashlib.sha256(cached.read_bytes()).hexdigest()
    # an unverifiable archive in a user's data_dir warns but is not written next to
    local = tmp_path / "local"
    local.mkdir()
    (local / "tiny_nips.tar.gz").write_bytes(cached.read_bytes())
    with pytest.warns(UserWarning, match="not verified") as seen:
        locate("tiny_nips", data_dir=local)
    assert "recorded it" not in str(seen[0].message) and sorted(p.name for p in local.iterdir()) == ["tiny_nips.tar.gz"]


def test_a_dataset_unlike_its_registered_name_warns(fake_registry, monkeypatch, tmp_path):
    monkeypatch.setitem(DATASETS, "tiny_nips", dataclasses.replace(fake_registry, num_series=3))
    with pytest.warns(UserWarning, match=r"training series 2 \(the published tiny_nips has 3\).*not comparable"):
        load_dataset("tiny_nips", cache_dir=tmp_path / "c")


def test_not_found_errors(fake_registry, tmp_path):
    with pytest.raises(FileNotFoundError, match="not found in data_dir"):
        locate("tiny_nips", data_dir=tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match="download=False"):
        locate("tiny_nips", cache_dir=tmp_path / "empty", download=False)
    with pytest.raises(ValueError, match="unknown dataset"):
        locate("nope_nips")
    with pytest.raises(ValueError, match="neither a registered dataset"):
        load_dataset("nope_nips", cache_dir=tmp_path)


def test_data_dir_directory_and_plain_path(fake_registry, tmp_path):
    extracted = safe_extract(tmp_path / "served" / "tiny_nips.tar.gz", tmp_path / "local")
    assert locate("tiny_nips", data_dir=extracted) == extracted / "tiny_nips"
    ds = load_dataset("tiny_nips", data_dir=extracted, cache_dir=tmp_path / "c")
    assert ds.prediction_length == 5 and ds.root == extracted / "tiny_nips"
    assert not (tmp_path / "c").exists()  # a directory needs no extraction
    plain = load_dataset(extracted / "tiny_nips", cache_dir=tmp_path / "c")
    assert plain.prediction_length is None and len(plain.test) == 4


@needs_exchange
def test_exchange_through_monkeypatched_opener(tmp_path):
    calls = []

    def opener(url):
        calls.append(url)
        return open(EXCHANGE, "rb")

    ds = load_dataset("exchange_rate_nips", cache_dir=tmp_path, opener=opener)
    assert calls == [DATASETS["exchange_rate_nips"].url]
    assert (tmp_path / "timeseries" / "exchange_rate_nips.tar.gz").is_file()
    assert not (tmp_path / "timeseries" / "exchange_rate_nips.tar.gz.sha256").exists()  # checksum is known
    assert len(ds.train) == 8


@needs_exchange
def test_exchange_checksum_mismatch(tmp_path, monkeypatch):
    bad = tiny_archive(tmp_path / "bad.tar.gz")
    with pytest.raises(ValueError, match=f"expected sha256 {EXCHANGE_SHA256}"):
        load_dataset("exchange_rate_nips", cache_dir=tmp_path / "cache", opener=lambda url: open(bad, "rb"))
    assert list((tmp_path / "cache" / "timeseries").iterdir()) == []
    local = tmp_path / "local"
    local.mkdir()
    (local / "exchange_rate_nips.tar.gz").write_bytes(bad.read_bytes())
    with pytest.raises(ValueError, match="does not match"):
        load_dataset("exchange_rate_nips", data_dir=local, cache_dir=tmp_path / "cache")
    monkeypatch.setitem(DATASETS, "exchange_rate_nips",
                        dataclasses.replace(DATASETS["exchange_rate_nips"], url=EXCHANGE.as_uri()))
    assert len(load_dataset("exchange_rate_nips", cache_dir=tmp_path / "cache").train) == 8


@pytest.fixture(scope="module")
def exchange(tmp_path_factory):
    if not EXCHANGE.is_file():
        pytest.skip(f"real exchange_rate_nips archive not found at {EXCHANGE}")
    return load_dataset("exchange_rate_nips", data_dir=EXCHANGE.parent, cache_dir=tmp_path_factory.mktemp("cache"))


def test_real_exchange_rate_nips(exchange):
    ds = exchange
    assert ds.freq == "B" and ds.prediction_length == 30
    assert len(ds.train) == 8 and {len(e.target) for e in ds.train} == {6071}
    assert all(e.start == np.datetime64("1990-01-01T00:00") for e in ds.train + ds.test)
    assert len(ds.test) == 40
    lengths = [len(ds.test[8 * w].target) for w in range(5)]
    assert lengths == [6071 + 30 * (w + 1) for w in range(5)]
    assert all(len(e.target) == lengths[i // 8] for i, e in enumerate(ds.test))
    # the test windows extend the training series: the first 6071 values agree
    for i, e in enumerate(ds.test):
        np.testing.assert_array_equal(e.target[:6071], ds.train[i % 8].target)
    assert ds.nan_counts() == {"train": 0, "test": 0}
    assert [e.feat_static_cat for e in ds.test[:9]] == [(i,) for i in range(8)] + [(0,)]
