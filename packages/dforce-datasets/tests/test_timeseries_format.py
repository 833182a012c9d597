"""GluonTS-format reader: layouts, NaN handling, malformed lines, metadata, and safe archive extraction."""

from __future__ import annotations

import gzip
import io
import json
import logging
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest

from dforce_datasets.timeseries import read_dataset, read_metadata, read_split, safe_extract
from dforce_datasets.timeseries.archive import extract_cached
from dforce_datasets.timeseries.gluonts_format import find_dataset_root, parse_entry


def write_lines(path: Path, lines: list[str]) -> Path:
    """Write JSON lines (gzip-compressed for a .gz name)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "".join(line + "\n" for line in lines)
    if path.name.endswith(".gz"):
        with gzip.open(path, "wt", encoding="utf-8") as f:
            f.write(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def make_dataset(root: Path, *, raw: bool = False, gz: bool = False) -> Path:
    """A 3-series daily dataset with 2 rolling test dates, in processed (default) or raw GP-copula layout."""
    suffix = ".json.gz" if gz else ".json"
    train, test = [], []
    for i in range(3):
        entry = {"start": "2020-01-01 00:00:00", "target": [float(i + t) for t in range(10)]}
        if not raw:
            entry.update(item_id=f"s{i}", feat_static_cat=[i])
        train.append(json.dumps(entry))
    for w in range(2):
        for i in range(3):
            entry = {"start": "2020-01-01 00:00:00", "target": [float(i + t) for t in range(12 + 2 * w)]}
            if not raw:
                entry.update(item_id=f"s{i}", feat_static_cat=[i])
            test.append(json.dumps(entry))
    write_lines(root / "train" / f"data{suffix}", train)
    write_lines(root / "test" / f"data{suffix}", test)
    if raw:
        (root / "metadata").mkdir()
        (root / "metadata" / "metadata.json").write_text(json.dumps({"time_granularity": "D"}))
    else:
        meta = {"freq": "D", "prediction_length": 2, "feat_static_cat": [{"name": "feat_static_cat_0",
                                                                           "cardinality": "3"}]}
        (root / "metadata.json").write_text(json.dumps(meta))
    return root


def test_reads_processed_layout_with_gzip(tmp_path):
    ds = read_dataset(make_dataset(tmp_path / "ds", gz=True))
    assert ds.freq == "D" and ds.prediction_length == 2 and ds.metadata.cardinality == (3,)
    assert len(ds.train) == 3 and len(ds.test) == 6
    assert ds.train[1].item_id == "s1" and ds.train[1].feat_static_cat == (1,)
    assert ds.train[2].target.dtype == np.float64 and ds.train[2].target[0] == 2.0
    assert ds.train[0].start == np.datetime64("2020-01-01T00:00")
    assert ds.summary()["test_lengths"] == [12, 14]


def test_raw_layout_gets_gluonts_ids(tmp_path):
    ds = read_dataset(make_dataset(tmp_path / "ds", raw=True))
    assert ds.freq == "D" and ds.prediction_length is None
    assert ds.metadata.cardinality == (3,)
    assert [e.item_id for e in ds.test] == list(range(6))
    assert [e.feat_static_cat for e in ds.test] == [(0,), (1,), (2,), (0,), (1,), (2,)]


def test_nan_values_are_kept_and_reported(tmp_path, caplog):
    root = make_dataset(tmp_path / "ds")
    write_lines(root / "train" / "data.json", [
        '{"start": "2020-01-01", "target": [1.0, "NaN", 3.0, null, NaN]}',
        '{"start": "2020-01-01", "target": [1, 2, 3, 4, 5]}',
    ])
    with caplog.at_level(logging.INFO, logger="dforce_datasets.timeseries"):
        ds = read_dataset(root)
    assert np.isnan(ds.train[0].target).tolist() == [False, True, False, True, True]
    assert ds.train[0].nan_count == 3 and ds.nan_counts() == {"train": 3, "test": 0}
    assert ds.train[1].target.dtype == np.float64
    assert "kept 3 NaN" in caplog.text


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"start": "2020-01-01", "target": [1, 2', "invalid JSON"),
        ('[1, 2, 3]', "must be a JSON object"),
        ('{"target": [1, 2]}', "missing required field 'start'"),
        ('{"start": "2020-01-01"}', "missing required field 'target'"),
        ('{"start": "2020-01-01", "target": []}', "non-empty list"),
        ('{"start": "2020-01-01", "target": [1, "abc"]}', "target[1] = 'abc' is not a number"),
        ('{"start": "2020-01-01", "target": [[1, 2], [3, 4]]}', "one-dimensional"),
        ('{"start": "2020-01-01", "target": [1, Infinity]}', "target[1] is infinite"),
        ('{"start": "yesterday", "target": [1, 2]}', "cannot parse start"),
        ('{"start": "2020-01-01T00:00:00+01:00", "target": [1]}', "time zone"),
        ('{"start": "2020-01-01", "target": [1], "feat_static_cat": [-1]}', "feat_static_cat"),
        ('{"start": "2020-01-01", "target": [1], "item_id": [1]}', "item_id"),
    ],
)
def test_malformed_lines_name_file_and_line(tmp_path, line, message):
    path = write_lines(tmp_path / "train" / "data.json", ['{"start": "2020-01-01", "target": [1]}', "", line])
    with pytest.raises(ValueError) as info:
        read_split(tmp_path / "train")
    assert f"{path}:3" in str(info.value)
    assert message in str(info.value)


def test_parse_entry_accepts_integer_targets_and_ids():
    e = parse_entry('{"start": "2014-01-01 00:00:00", "target": [1, 2], "item_id": 7, "feat_static_cat": [2.0]}',
                    "x:1")
    assert e.item_id == 7 and e.feat_static_cat == (2,) and e.target.tolist() == [1.0, 2.0]


def test_missing_metadata_is_a_clear_error(tmp_path):
    root = make_dataset(tmp_path / "ds")
    (root / "metadata.json").unlink()
    with pytest.raises(ValueError, match="no metadata.json"):
        read_dataset(root)
    assert read_dataset(root, freq="D", prediction_length=3).prediction_length == 3


def test_metadata_conflicts_and_bad_values(tmp_path):
    root = make_dataset(tmp_path / "ds")
    with pytest.raises(ValueError, match="freq='D' but freq='H'"):
        read_metadata(root, freq="H")
    assert read_metadata(root, freq="1D").freq == "D"
    (root / "metadata.json").write_text('{"freq": "D", "prediction_length": 0}')
    with pytest.raises(ValueError, match="prediction_length must be a positive integer"):
        read_metadata(root)
    (root / "metadata.json").write_text('{"freq": "D", "feat_static_cat": [{"name": "x"}]}')
    with pytest.raises(ValueError, match="cardinality"):
        read_metadata(root)
    (root / "metadata.json").write_text('{"freq": "7S"}')
    with pytest.raises(ValueError, match="unsupported frequency"):
        read_metadata(root)
    (root / "metadata.json").write_text("{not json")
    with pytest.raises(ValueError, match="invalid JSON metadata"):
        read_metadata(root)


def test_split_without_data_files(tmp_path):
    (tmp_path / "train").mkdir()
    (tmp_path / "train" / "README.txt").write_text("hi")
    (tmp_path / "train" / "._data.json").write_text("junk")
    with pytest.raises(ValueError, match="no data files"):
        read_split(tmp_path / "train")


def test_dataset_root_is_found_below_and_ambiguity_rejected(tmp_path):
    make_dataset(tmp_path / "outer" / "name")
    (tmp_path / "outer" / "__MACOSX" / "name" / "train").mkdir(parents=True)
    assert find_dataset_root(tmp_path / "outer") == tmp_path / "outer" / "name"
    make_dataset(tmp_path / "outer" / "other")
    with pytest.raises(ValueError, match="several candidates"):
        find_dataset_root(tmp_path / "outer")
    with pytest.raises(ValueError, match="no directory with a train"):
        find_dataset_root(tmp_path / "outer" / "name" / "train")


def make_archive(path: Path, source: Path, *, extra: list[tarfile.TarInfo] | None = None) -> Path:
    """A .tar.gz of ``source`` (as its own top-level directory) plus hand-made members."""
    with tarfile.open(path, "w:gz") as tar:
        tar.add(source, arcname=source.name)
        for info in extra or []:
            data = b"x" if info.isfile() else None
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def _member(name: str, kind: bytes = tarfile.REGTYPE, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    return info


def test_archive_is_extracted_once_and_macos_junk_skipped(tmp_path):
    src = make_dataset(tmp_path / "mydata")
    archive = make_archive(tmp_path / "mydata.tar.gz", src,
                           extra=[_member("__MACOSX/mydata/._x"), _member("mydata/train/._data.json")])
    cache = tmp_path / "cache"
    ds = read_dataset(archive, cache_dir=cache)
    assert len(ds.train) == 3 and ds.root.name == "mydata"
    (extracted,) = [p for p in cache.iterdir()]
    assert extracted.name.startswith("mydata-")
    assert not (extracted / "__MACOSX").exists() and not (extracted / "mydata" / "train" / "._data.json").exists()
    marker = extracted / ".complete"
    mtime = marker.stat().st_mtime_ns
    assert extract_cached(archive, cache) == extracted and marker.stat().st_mtime_ns == mtime


@pytest.mark.parametrize(
    ("member", "message"),
    [
        (_member("/etc/evil"), "absolute path"),
        (_member("mydata/../../evil"), "contains '..'"),
        (_member("mydata/link", tarfile.SYMTYPE, "../../outside"), "points outside"),
        (_member("mydata/abs", tarfile.SYMTYPE, "/etc/passwd"), "points outside"),
        (_member("mydata/hard", tarfile.LNKTYPE, "../etc/passwd"), "points outside"),
        (_member("mydata/dev", tarfile.CHRTYPE), "special file"),
        (_member("mydata/fifo", tarfile.FIFOTYPE), "special file"),
    ],
)
def test_unsafe_archives_are_rejected_without_leftovers(tmp_path, member, message):
    src = make_dataset(tmp_path / "mydata")
    archive = make_archive(tmp_path / "bad.tar.gz", src, extra=[member])
    dest = tmp_path / "out" / "bad"
    with pytest.raises(ValueError, match=message):
        safe_extract(archive, dest)
    assert not dest.exists() and list((tmp_path / "out").iterdir()) == []
    assert not (tmp_path / "evil").exists() and not (tmp_path / "outside").exists()


@pytest.mark.parametrize("chain", [
    [_member("mydata/x", tarfile.SYMTYPE, "."), _member("mydata/x/y", tarfile.SYMTYPE, "../../evil")],
    [_member("mydata/x", tarfile.SYMTYPE, "train"), _member("mydata/y", tarfile.SYMTYPE, "x/../../evil")],
    [_member("mydata/x", tarfile.SYMTYPE, "train"), _member("mydata/x/data.json")],
])
def test_chained_links_are_rejected(tmp_path, chain):
    src = make_dataset(tmp_path / "mydata")
    archive = make_archive(tmp_path / "bad.tar.gz", src, extra=chain)
    with pytest.raises(ValueError, match="symlink of the archive"):
        safe_extract(archive, tmp_path / "out" / "bad")
    assert not (tmp_path / "out" / "bad").exists() and not (tmp_path / "evil").exists()


def test_links_inside_the_archive_are_allowed(tmp_path):
    src = make_dataset(tmp_path / "mydata")
    archive = make_archive(tmp_path / "ok.tar.gz", src,
                           extra=[_member("mydata/train/alias", tarfile.SYMTYPE, "data.json")])
    dest = safe_extract(archive, tmp_path / "out")
    assert (dest / "mydata" / "train" / "alias").is_symlink()


def test_truncated_archive_is_a_clear_error(tmp_path):
    archive = make_archive(tmp_path / "t.tar.gz", make_dataset(tmp_path / "mydata"))
    data = archive.read_bytes()
    archive.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="cannot extract"):
        extract_cached(archive, tmp_path / "cache")
    assert list((tmp_path / "cache").iterdir()) == []


def test_read_dataset_rejects_other_files(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_dataset(tmp_path / "nope")
    (tmp_path / "x.zip").write_bytes(b"PK")
    with pytest.raises(ValueError, match="expected a directory or a .tar.gz"):
        read_dataset(tmp_path / "x.zip")


def test_import_is_light():
    """``import dforce_datasets.timeseries`` pulls in neither numba nor gluonts nor pandas."""
    code = ("import sys, dforce_datasets, dforce_datasets.timeseries; "
            "print(sorted(m for m in ('numba', 'gluonts', 'pandas') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
