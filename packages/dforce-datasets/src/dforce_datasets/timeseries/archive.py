"""Checksums and safe extraction of dataset archives (no path escapes, no links out, no devices)."""

from __future__ import annotations

import hashlib
import logging
import os
import posixpath
import shutil
import tarfile
import tempfile
from pathlib import Path

log = logging.getLogger(__name__)

ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar")
_COMPLETE = ".complete"


def sha256_file(path: str | Path, chunk_size: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(chunk_size):
            h.update(chunk)
    return h.hexdigest()


def is_archive(path: str | Path) -> bool:
    """Whether ``path`` names a tar archive this module extracts."""
    return str(path).lower().endswith(ARCHIVE_SUFFIXES)


def archive_stem(path: str | Path) -> str:
    """File name without its archive suffix (``exchange_rate_nips.tar.gz`` -> ``exchange_rate_nips``)."""
    name = Path(path).name
    for suffix in ARCHIVE_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def _is_junk(name: str) -> bool:
    """macOS metadata that some archives carry (``__MACOSX/``, AppleDouble ``._*`` files)."""
    parts = name.split("/")
    return "__MACOSX" in parts or parts[-1].startswith("._")


def _checked_name(name: str, archive: Path) -> str:
    """Normalised member name, or ValueError if it is absolute or climbs out of the target."""
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        raise ValueError(f"unsafe archive {archive}: member {name!r} has an absolute path")
    norm = posixpath.normpath(name.replace("\\", "/"))
    if norm == ".." or norm.startswith("../") or ".." in name.replace("\\", "/").split("/"):
        raise ValueError(f"unsafe archive {archive}: member {name!r} contains '..'")
    return norm


def _through_link(path: str, links: set[str], whole: bool) -> bool:
    """Whether ``path`` (unnormalised, '/'-separated) passes through a symlink member on the way (or, with
    ``whole``, is one): chained links such as ``x -> .`` then ``x/y -> ../evil`` escape a per-link check."""
    parts = [p for p in path.split("/") if p not in ("", ".")]
    prefixes = ["/".join(parts[:i]) for i in range(1, len(parts) + (1 if whole else 0))]
    # while no earlier prefix is a link, '..' steps resolve lexically, so normpath is what the filesystem does
    return any(posixpath.normpath(p) in links for p in prefixes)


def check_members(tar: tarfile.TarFile, archive: Path) -> list[tarfile.TarInfo]:
    """The members to extract; raises ValueError on anything that could write outside the target."""
    members = tar.getmembers()
    links = {posixpath.normpath(m.name.replace("\\", "/")) for m in members if m.issym()}
    keep = []
    for member in members:
        name = _checked_name(member.name, archive)
        if _is_junk(name):
            continue
        if _through_link(name, links, whole=False):
            raise ValueError(f"unsafe archive {archive}: member {member.name!r} lies under a symlink of the archive")
        if member.issym() or member.islnk():
            link = member.linkname.replace("\\", "/")
            base = posixpath.dirname(name) if member.issym() else ""
            target = posixpath.normpath(posixpath.join(base, link))
            if link.startswith("/") or target == ".." or target.startswith("../"):
                raise ValueError(f"unsafe archive {archive}: link {member.name!r} -> {member.linkname!r} "
                                 "points outside the extraction directory")
            if _through_link(posixpath.join(base, link), links, whole=member.islnk()):
                raise ValueError(f"unsafe archive {archive}: link {member.name!r} -> {member.linkname!r} "
                                 "resolves through another symlink of the archive")
        elif not (member.isfile() or member.isdir()):
            raise ValueError(f"unsafe archive {archive}: member {member.name!r} is a device, fifo or other "
                             "special file")
        keep.append(member)
    return keep


def safe_extract(archive: str | Path, dest: str | Path) -> Path:
    """Extract a tar archive into ``dest`` (created; must not exist yet) after checking every member."""
    archive, dest = Path(archive), Path(dest)
    if dest.exists():
        raise ValueError(f"extraction target {dest} already exists; remove it first")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent))
    try:
        try:
            with tarfile.open(archive, "r:*") as tar:
                members = check_members(tar, archive)
                if hasattr(tarfile, "data_filter"):
                    tar.extractall(tmp, members=members, filter="data")
                else:  # Python without extraction filters: the members were checked above
                    tar.extractall(tmp, members=members)
        except (tarfile.TarError, EOFError, OSError) as exc:
            raise ValueError(f"cannot extract {archive}: {exc} (is it a complete .tar.gz?)") from exc
        (tmp / _COMPLETE).write_text(str(archive.name), encoding="utf-8")
        os.replace(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest


def extract_cached(archive: str | Path, cache_dir: str | Path, *, sha256: str | None = None) -> Path:
    """Extract ``archive`` once into ``cache_dir/<stem>-<sha256[:16]>`` and return that directory."""
    archive = Path(archive)
    digest = sha256 or sha256_file(archive)
    dest = Path(cache_dir) / f"{archive_stem(archive)}-{digest[:16]}"
    if (dest / _COMPLETE).is_file():
        return dest
    if dest.exists():  # a crashed earlier run: start over
        shutil.rmtree(dest)
    log.info("extracting %s into %s", archive, dest)
    try:
        return safe_extract(archive, dest)
    except OSError:
        if (dest / _COMPLETE).is_file():  # pragma: no cover - a concurrent extraction won the race
            return dest
        raise
