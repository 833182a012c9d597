#!/usr/bin/env python3
"""Smoke-test the built wheels of every dforce library in a clean virtual environment.

1. Build every workspace member (sdist, then the wheel from the sdist) with ``uv build --all-packages
   --no-sources`` into a temporary ``dist/`` (or take already built ones with ``--dist``).
2. For each library (``packages/*``): create a fresh venv, install *only that library's wheel* with
   ``--find-links dist/`` from outside the workspace, so sibling dforce wheels come from the fresh build and
   everything else from the package index, never from the workspace sources.
3. In that venv: ``import <name>``, print ``<name>.__version__`` (must equal the wheel's version), import every
   submodule (to catch undeclared third-party dependencies), and check that every dforce module was loaded
   from the venv and every dforce distribution in it is byte-identical to the freshly built wheel.

Prints one line per library (``ok`` / ``FAIL``), then a one-line JSON summary; exits 1 if anything failed.
Installer: ``uv pip install`` (default; reuses uv's cache) or ``--installer pip`` (``python -m pip`` in a venv
made with ``uv venv --seed``).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent

# Same headless / offline settings as CI, in case an import touches them.
CHILD_ENV_DEFAULTS = {"MUJOCO_GL": "egl", "PYGLET_HEADLESS": "1", "WANDB_MODE": "offline", "WANDB_SILENT": "true"}
# Variables that would leak the calling environment (e.g. `uv run`'s project venv) into the check.
CHILD_ENV_DROP = ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "UV_PROJECT_ENVIRONMENT",
                  "CONDA_PREFIX")


def _load_check_deps():
    """tools/check_deps.py, loaded by path so this works however this script is invoked."""
    name = "dforce_tools_check_deps"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name("check_deps.py"))
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


# Runs inside the fresh venv: python -I -c PROBE <import name>. Last stdout line is a JSON report.
PROBE = r"""
import importlib, importlib.metadata as md, json, os, pkgutil, re, sys, traceback

name = sys.argv[1]
report = {"version": None, "file": None, "modules": [], "errors": [], "dists": {}, "optional": []}
EXTRA_HINT = re.compile(r"pip install (dforce-[a-z-]+)\[([a-z0-9_,-]+)\]")

def err(where):
    exc = sys.exc_info()[1]
    line = traceback.format_exception_only(type(exc), exc)[-1].strip()
    report["errors"].append(f"{where}: {line}")
    print(f"--- {where}", file=sys.stderr)
    traceback.print_exc()

def walk(package, path):
    for info in sorted(pkgutil.iter_modules(path), key=lambda i: i.name):
        if info.name == "__main__":
            continue
        full = f"{package}.{info.name}"
        try:
            module = importlib.import_module(full)
        except ImportError as exc:
            hint = EXTRA_HINT.search(str(exc))
            if hint is None:  # an optional subpackage must name the extra that provides its dependencies
                err(f"import {full}")
            else:
                report["optional"].append(f"{full} needs {hint.group(1)}[{hint.group(2)}]")
            continue
        except BaseException:
            err(f"import {full}")
            continue
        report["modules"].append(full)
        if info.ispkg:
            walk(full, getattr(module, "__path__", []))

try:
    pkg = importlib.import_module(name)
except BaseException:
    err(f"import {name}")
else:
    report["modules"].append(name)
    report["file"] = getattr(pkg, "__file__", None)
    version = getattr(pkg, "__version__", None)
    report["version"] = None if version is None else str(version)
    print(report["version"])
    walk(name, getattr(pkg, "__path__", []))

prefix = os.path.realpath(sys.prefix)
for mod_name, module in sorted(sys.modules.items()):
    if mod_name.split(".")[0].startswith("dforce_"):
        file = getattr(module, "__file__", None)
        if file and not os.path.realpath(file).startswith(prefix + os.sep):
            report["errors"].append(f"{mod_name} was imported from {file}, outside the venv")

for dist in md.distributions():
    dist_name = re.sub(r"[-_.]+", "-", dist.metadata["Name"]).lower()
    if dist_name.startswith("dforce-"):
        hashes = {str(f): f.hash.value for f in (dist.files or []) if f.hash and str(f).endswith(".py")}
        report["dists"][dist_name] = {"version": dist.version, "hashes": hashes}

print(json.dumps(report))
"""


@dataclass
class Result:
    name: str
    ok: bool = False
    version: str | None = None
    modules: int = 0
    seconds: float = 0.0
    error: str | None = None
    installed_dforce: list[str] = field(default_factory=list)
    needs_extras: list[str] = field(default_factory=list)  # optional subpackages that name their extra


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in CHILD_ENV_DROP}
    for key, value in CHILD_ENV_DEFAULTS.items():
        env.setdefault(key, value)
    return env


def _uv() -> list[str]:
    uv = os.environ.get("UV") or shutil.which("uv")
    return [uv] if uv else [sys.executable, "-m", "uv"]


def _run(cmd: list[str], *, cwd: Path, timeout: float, log: list[str]) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)
    shown = " ".join("<probe script>" if arg == PROBE else str(arg) for arg in cmd)
    log.append(f"$ {shown}  (exit {proc.returncode})\n{proc.stdout}{proc.stderr}")
    return proc


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "(no output)"


def _wheel_hashes(wheel: Path) -> dict[str, str]:
    """path -> urlsafe-b64 sha256 (RECORD format) of the .py files in a wheel."""
    hashes = {}
    with zipfile.ZipFile(wheel) as zf:
        for name in zf.namelist():
            if name.endswith(".py"):
                digest = hashlib.sha256(zf.read(name)).digest()
                hashes[name] = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    return hashes


def find_wheel(dist_dir: Path, name: str, version: str | None) -> Path | None:
    stem = re.sub(r"[-_.]+", "_", name).lower()
    candidates = sorted(dist_dir.glob(f"{stem}-*.whl"))
    if version is not None:
        candidates = [w for w in candidates if w.name.split("-")[1] == version]
    return candidates[-1] if candidates else None


def check_library(member, wheel: Path | None, wheels: dict[str, Path], *, dist_dir: Path, work: Path,
                  python: str, installer: str, keep: bool, timeout: float) -> tuple[Result, list[str]]:
    result = Result(name=member.name)
    log: list[str] = []
    start = time.monotonic()
    import_name = re.sub(r"[-_.]+", "_", member.name).lower()
    venv = work / f"venv-{member.name}"
    try:
        if wheel is None:
            result.error = f"no wheel for {member.name} {member.version} in {dist_dir}"
            return result, log
        cmd = [*_uv(), "venv", str(venv), "--python", python, "--no-project"]
        if installer == "pip":
            cmd.append("--seed")
        proc = _run(cmd, cwd=work, timeout=300, log=log)
        if proc.returncode:
            result.error = f"uv venv failed: {_last_line(proc.stderr)}"
            return result, log
        vpy = venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
        if installer == "pip":
            cmd = [str(vpy), "-m", "pip", "install", "--disable-pip-version-check", "--no-input",
                   "--find-links", str(dist_dir), str(wheel)]
        else:
            cmd = [*_uv(), "pip", "install", "--python", str(vpy), "--no-sources", "--find-links", str(dist_dir),
                   str(wheel)]
        proc = _run(cmd, cwd=work, timeout=timeout, log=log)
        if proc.returncode:
            result.error = f"install failed: {_last_line(proc.stderr)}"
            return result, log

        proc = _run([str(vpy), "-I", "-c", PROBE, import_name], cwd=work, timeout=timeout, log=log)
        try:
            report = json.loads(_last_line(proc.stdout))
        except json.JSONDecodeError:
            result.error = f"import probe crashed (exit {proc.returncode}): {_last_line(proc.stderr)}"
            return result, log
        errors = list(report["errors"])
        result.version = report["version"]
        result.modules = len(report["modules"])
        result.needs_extras = list(report.get("optional", []))
        if report["file"] is not None and result.version is None:
            errors.insert(0, f"{import_name}.__version__ is missing")
        elif report["file"] is not None and result.version != member.version:
            errors.insert(0, f"{import_name}.__version__ is {result.version!r}, the wheel is {member.version}")
        for dist_name, info in sorted(report["dists"].items()):
            result.installed_dforce.append(f"{dist_name}=={info['version']}")
            built = wheels.get(dist_name)
            if built is None:
                errors.append(f"{dist_name} {info['version']} was installed but is not a workspace member")
            elif _wheel_hashes(built) != info["hashes"]:
                errors.append(f"installed {dist_name} {info['version']} is not the freshly built wheel "
                              f"{built.name} (taken from the index instead of --find-links?)")
        if proc.returncode and not errors:
            errors.append(f"import probe exited {proc.returncode}: {_last_line(proc.stderr)}")
        if errors:
            result.error = "; ".join(errors)
        else:
            result.ok = True
        return result, log
    except subprocess.TimeoutExpired as exc:
        result.error = f"timed out after {exc.timeout:.0f}s: {' '.join(map(str, exc.cmd[:4]))} ..."
        return result, log
    finally:
        result.seconds = round(time.monotonic() - start, 1)
        if not keep:
            shutil.rmtree(venv, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--packages", nargs="+", metavar="NAME",
                        help="only these libraries (distribution or import names; comma-separated ok)")
    parser.add_argument("--python", default=None,
                        help="interpreter for the venvs: a version like 3.12 or a path (default: this one)")
    parser.add_argument("--installer", choices=("uv", "pip"), default="uv")
    parser.add_argument("--dist", type=Path, help="use the wheels already built in this folder (skip the build)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (dist/ and the venvs)")
    parser.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1),
                        help="libraries checked in parallel (default: %(default)s)")
    parser.add_argument("--timeout", type=float, default=900, help="seconds per install / import step")
    parser.add_argument("--root", type=Path, default=REPO_ROOT, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    started = time.monotonic()
    check_deps = _load_check_deps()
    root = args.root.resolve()
    members = check_deps.discover_members(root)
    libraries = [m for m in members if m.kind == "library"]
    if args.packages:
        wanted = {check_deps.normalize(p) for arg in args.packages for p in arg.split(",") if p.strip()}
        known = {check_deps.normalize(m.name) for m in libraries}
        unknown = wanted - known
        if unknown:
            parser.error(f"not a library of this workspace: {', '.join(sorted(unknown))} "
                         f"(libraries: {', '.join(sorted(known))})")
        libraries = [m for m in libraries if check_deps.normalize(m.name) in wanted]
    python = args.python or sys.executable

    work = Path(tempfile.mkdtemp(prefix="dforce-check-wheels-"))
    results: list[Result] = []
    build_error = None
    try:
        if args.dist:
            dist_dir = args.dist.resolve()
        else:
            dist_dir = work / "dist"
            log: list[str] = []
            cmd = [*_uv(), "build", "--all-packages", "--no-sources", "-o", str(dist_dir)]
            print(f"check_wheels: building all workspace members into {dist_dir}", file=sys.stderr)
            proc = _run(cmd, cwd=root, timeout=args.timeout, log=log)
            if proc.returncode:
                sys.stderr.write("\n".join(log))
                build_error = f"uv build failed: {_last_line(proc.stderr)}"

        wheels = {}
        for member in members:
            wheel = find_wheel(dist_dir, member.name, member.version)
            if wheel is not None:
                wheels[check_deps.normalize(member.name)] = wheel

        lock = threading.Lock()

        def one(member) -> Result:
            if build_error:
                return Result(name=member.name, error=build_error)
            result, log = check_library(
                member, wheels.get(check_deps.normalize(member.name)), wheels, dist_dir=dist_dir, work=work,
                python=python, installer=args.installer, keep=args.keep, timeout=args.timeout)
            with lock:
                if not result.ok:
                    sys.stderr.write(f"==== {member.name}: log\n" + "\n".join(log) + "\n")
                if result.ok:
                    print(f"ok   {result.name} {result.version} ({result.modules} modules, {result.seconds}s)",
                          flush=True)
                else:
                    print(f"FAIL {result.name}: {result.error}", flush=True)
            return result

        with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
            results = list(pool.map(one, libraries))
    finally:
        if args.keep:
            print(f"check_wheels: kept {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)

    failed = [r.name for r in results if not r.ok]
    summary = {
        "ok": not failed and bool(results),
        "failed": failed,
        "installer": args.installer,
        "python": python,
        "seconds": round(time.monotonic() - started, 1),
        "workdir": str(work) if args.keep else None,
        "packages": [asdict(r) for r in results],
    }
    if not results:
        print("FAIL no libraries to check")
    print(json.dumps(summary, separators=(",", ":")))
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
