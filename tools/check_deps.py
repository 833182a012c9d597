#!/usr/bin/env python3
"""Enforce the dforce workspace dependency graph.

Every ``.py`` file under ``<member>/src`` of each workspace member (the ``[tool.uv.workspace].members`` globs of
the root ``pyproject.toml``: ``packages/*`` are libraries, ``apps/*`` are apps) is parsed with :mod:`ast`, and
the internal import edges between members are checked against the allowed graph::

    dforce_core                                  -> (nothing internal)
    dforce_backbones / _sampling / _datasets / _train (any other library) -> dforce_core only
    apps                                         -> any library; nothing imports an app

It also checks that each member's ``[project].dependencies`` declares every sibling it imports (with an ``==``
pin, if any, that matches the sibling's version) and declares no sibling the graph forbids, and that no library
imports wandb / gym(nasium) / mujoco / a simulator at module top level (inside a function or an
``if TYPE_CHECKING:`` block is fine).

Usage::

    python tools/check_deps.py                 # exit 0 with a summary, or print violations and exit 1
    python tools/check_deps.py --list-members  # JSON list of members (for the CI matrix)

Standard library only (Python >= 3.10), so CI can run it without syncing the workspace.
"""

from __future__ import annotations

import argparse
import ast
import glob
import json
import re
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent

CORE = "dforce_core"
APPS_DIR = "apps"
DEFAULT_MEMBER_GLOBS = ("packages/*", "apps/*")

# Heavy / optional runtime dependencies a library may only import lazily (inside a function) or for typing.
FORBIDDEN_TOP_LEVEL = frozenset(
    {"wandb", "gymnasium", "gym", "mujoco", "d4rl", "miniworld", "vizdoom", "crafter", "ale_py"}
)

_NAME_RE = re.compile(r"\s*([A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)")
_PIN_RE = re.compile(r"===?\s*([^\s,;]+)")


# --------------------------------------------------------------------------------------------------- TOML


def load_toml(path: Path) -> dict:
    """Parse a TOML file with tomllib (Python >= 3.11) or tomli (3.10)."""
    text = path.read_text(encoding="utf-8")
    try:
        import tomllib
    except ModuleNotFoundError:
        try:
            import tomli as tomllib
        except ModuleNotFoundError:
            raise SystemExit("check_deps needs Python >= 3.11 or `pip install tomli` on 3.10") from None
    return tomllib.loads(text)


def normalize(name: str) -> str:
    """PEP 503 normalised distribution name."""
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass(frozen=True)
class Member:
    name: str  # distribution name, as written in its pyproject
    rel: str  # path relative to the workspace root (posix)
    path: Path
    kind: str  # "library" | "app"
    version: str | None
    dependencies: tuple[str, ...]  # raw requirement strings of [project].dependencies
    import_names: frozenset[str]  # top-level modules/packages under src/

    @property
    def src(self) -> Path:
        return self.path / "src"

    def as_json(self) -> dict:
        return {
            "name": self.name,
            "path": self.rel,
            "kind": self.kind,
            "version": self.version,
            "import_names": sorted(self.import_names),
        }


def _member_dirs(root: Path) -> list[Path]:
    pyproject = root / "pyproject.toml"
    workspace: dict = {}
    if pyproject.is_file():
        workspace = load_toml(pyproject).get("tool", {}).get("uv", {}).get("workspace", {})
    patterns = workspace.get("members") or list(DEFAULT_MEMBER_GLOBS)
    excluded: set[Path] = set()
    for pattern in workspace.get("exclude") or []:
        excluded.update(Path(p).resolve() for p in glob.glob(str(root / pattern)))
    dirs: set[Path] = set()
    for pattern in patterns:
        for p in glob.glob(str(root / pattern)):
            path = Path(p).resolve()
            if path not in excluded and (path / "pyproject.toml").is_file():
                dirs.add(path)
    return sorted(dirs)


def _import_names(src: Path) -> frozenset[str]:
    names = set()
    if src.is_dir():
        for child in src.iterdir():
            if child.name.startswith((".", "_")) or child.name.endswith(".egg-info"):
                continue
            if child.is_dir() and any(child.rglob("*.py")):
                names.add(child.name)
            elif child.suffix == ".py":
                names.add(child.stem)
    return frozenset(names)


def discover_members(root: Path = REPO_ROOT) -> list[Member]:
    root = Path(root).resolve()
    members = []
    for path in _member_dirs(root):
        project = load_toml(path / "pyproject.toml").get("project", {})
        rel = path.relative_to(root).as_posix()
        members.append(
            Member(
                name=project.get("name") or path.name,
                rel=rel,
                path=path,
                kind="app" if rel.split("/")[0] == APPS_DIR else "library",
                version=project.get("version"),
                dependencies=tuple(project.get("dependencies") or ()),
                import_names=_import_names(path / "src"),
            )
        )
    return members


# ------------------------------------------------------------------------------------------------ imports


@dataclass(frozen=True)
class ImportRef:
    module: str  # absolute dotted module name (relative imports resolved)
    line: int
    top_level: bool  # executed when the module is imported (not inside a function body)
    type_checking: bool  # inside an ``if TYPE_CHECKING:`` block

    @property
    def top(self) -> str:
        return self.module.split(".")[0]


def _is_type_checking(test: ast.expr) -> bool:
    if isinstance(test, ast.Name):
        return test.id == "TYPE_CHECKING"
    return isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"


def _dynamic_import_target(node: ast.Call) -> str | None:
    """``importlib.import_module("x")`` / ``import_module("x")`` / ``__import__("x")`` with a literal name."""
    func = node.func
    name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else None
    if name not in ("import_module", "__import__") or not node.args:
        return None
    arg = node.args[0]
    if isinstance(arg, ast.Constant) and isinstance(arg.value, str) and not arg.value.startswith("."):
        return arg.value
    return None


class _ImportCollector(ast.NodeVisitor):
    def __init__(self, package: list[str]):
        self.package = package  # package the module lives in, for relative imports
        self.refs: list[ImportRef] = []
        self._in_function = 0
        self._type_checking = 0

    def _add(self, module: str, node: ast.AST) -> None:
        self.refs.append(ImportRef(module, node.lineno, not self._in_function, bool(self._type_checking)))

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._add(alias.name, node)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level:
            if node.level - 1 > len(self.package):
                return  # beyond the top-level package: an error Python reports itself
            base = self.package[: len(self.package) - (node.level - 1)]
            module = ".".join(base + ([node.module] if node.module else []))
            if module:
                self._add(module, node)
        elif node.module:
            self._add(node.module, node)

    def visit_Call(self, node: ast.Call) -> None:
        target = _dynamic_import_target(node)
        if target:
            self._add(target, node)
        self.generic_visit(node)

    def visit_If(self, node: ast.If) -> None:
        if _is_type_checking(node.test):
            self._type_checking += 1
            for stmt in node.body:
                self.visit(stmt)
            self._type_checking -= 1
            for stmt in node.orelse:
                self.visit(stmt)
        else:
            self.generic_visit(node)

    def _visit_function(self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda) -> None:
        # Decorators, defaults and annotations run at definition time; only the body is deferred.
        for expr in getattr(node, "decorator_list", []):
            self.visit(expr)
        self.visit(node.args)
        if getattr(node, "returns", None) is not None:
            self.visit(node.returns)
        self._in_function += 1
        for stmt in node.body if isinstance(node.body, list) else [node.body]:
            self.visit(stmt)
        self._in_function -= 1

    visit_FunctionDef = visit_AsyncFunctionDef = visit_Lambda = _visit_function


def collect_imports(path: Path, module_name: str) -> list[ImportRef]:
    """All imports of one source file. Raises SyntaxError if it does not parse."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    parts = module_name.split(".")
    package = parts if path.name == "__init__.py" else parts[:-1]
    collector = _ImportCollector(package)
    collector.visit(tree)
    return collector.refs


def iter_sources(member: Member) -> Iterator[tuple[Path, str]]:
    """(file, dotted module name) for every .py file under the member's src/."""
    if not member.src.is_dir():
        return
    for path in sorted(member.src.rglob("*.py")):
        rel = path.relative_to(member.src).with_suffix("")
        if any(part.startswith(".") or part == "__pycache__" for part in rel.parts):
            continue
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts.pop()
        yield path, ".".join(parts)


# ----------------------------------------------------------------------------------------------- checking


@dataclass(frozen=True, order=True)
class Violation:
    path: str  # relative to the root
    line: int
    code: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: [{self.code}] {self.message}"


@dataclass
class Analysis:
    root: Path
    members: list[Member]
    files: int = 0
    edges: dict[tuple[str, str], int] = field(default_factory=dict)  # (from member, to member) -> #imports
    violations: list[Violation] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def edge_problem(source: Member, target: Member) -> str | None:
    """Why the graph forbids ``source`` importing ``target`` (None if it is allowed)."""
    if source is target:
        return None
    if target.kind == "app":
        return "imports-app"
    if source.kind == "app":
        return None
    if CORE in target.import_names:
        return None
    if CORE in source.import_names:
        return "upward-edge"
    return "sideways-edge"


def _parse_requirement(req: str) -> tuple[str, str | None] | None:
    m = _NAME_RE.match(req)
    if not m:
        return None
    rest = req[m.end():].split(";", 1)[0]
    if "@" in rest:
        return normalize(m.group(1)), None
    pin = _PIN_RE.search(rest)
    return normalize(m.group(1)), pin.group(1) if pin else None


def _line_of(path: Path, needle: str) -> int:
    try:
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if needle in line:
                return number
    except OSError:
        pass
    return 1


def analyze(root: Path = REPO_ROOT) -> Analysis:
    root = Path(root).resolve()
    members = discover_members(root)
    result = Analysis(root=root, members=members)
    by_import = {name: m for m in members for name in m.import_names}
    by_dist = {normalize(m.name): m for m in members}
    add = result.violations.append

    def rel(path: Path) -> str:
        return path.relative_to(root).as_posix()

    for member in members:
        pyproject = member.path / "pyproject.toml"
        expected = normalize(member.name).replace("-", "_")
        if member.kind == "library" and expected not in member.import_names:
            add(Violation(rel(pyproject), 1, "layout",
                          f"library {member.name} has no src/{expected} package"))

        declared: dict[str, str | None] = {}
        for req in member.dependencies:
            parsed = _parse_requirement(req)
            if parsed:
                declared[parsed[0]] = parsed[1]

        # Declared internal dependencies: allowed by the graph, and pinned to the sibling's version.
        for dist, pin in sorted(declared.items()):
            target = by_dist.get(dist)
            if target is None:
                continue
            line = _line_of(pyproject, target.name)
            problem = edge_problem(member, target)
            if problem:
                add(Violation(rel(pyproject), line, "forbidden-dependency",
                              f"{member.name} declares {target.name} ({problem})"))
            if pin is not None and target.version is not None and pin != target.version:
                add(Violation(rel(pyproject), line, "pin-mismatch",
                              f"{member.name} pins {target.name}=={pin} but {target.rel} is {target.version}"))

        imported: set[str] = set()
        for path, module in iter_sources(member):
            result.files += 1
            try:
                refs = collect_imports(path, module)
            except SyntaxError as exc:
                add(Violation(rel(path), exc.lineno or 1, "syntax-error", f"cannot parse: {exc.msg}"))
                continue
            for ref in refs:
                target = by_import.get(ref.top)
                if target is not None and target is not member:
                    key = (member.name, target.name)
                    result.edges[key] = result.edges.get(key, 0) + 1
                    problem = edge_problem(member, target)
                    if problem:
                        add(Violation(rel(path), ref.line, problem,
                                      f"{module} ({member.name}) imports {ref.module} ({target.name})"))
                    if normalize(target.name) not in declared and target.name not in imported:
                        add(Violation(rel(path), ref.line, "undeclared-dependency",
                                      f"{module} imports {ref.module} but {member.rel}/pyproject.toml does "
                                      f"not list {target.name} in [project].dependencies"))
                    imported.add(target.name)
                if (member.kind == "library" and ref.top in FORBIDDEN_TOP_LEVEL and ref.top_level
                        and not ref.type_checking):
                    add(Violation(rel(path), ref.line, "top-level-import",
                                  f"library module {module} imports {ref.module} at module level; import it "
                                  "inside the function that needs it (or under `if TYPE_CHECKING:`)"))

        for dist in sorted(declared):
            target = by_dist.get(dist)
            if target is not None and target is not member and target.name not in imported:
                result.notes.append(f"{member.name} declares {target.name} but does not import it (yet)")

    result.violations.sort()
    return result


def find_violations(root: Path = REPO_ROOT) -> list[Violation]:
    """The dependency-graph violations of the workspace at ``root`` (empty list: all good)."""
    return analyze(root).violations


# -------------------------------------------------------------------------------------------------- CLI


def _summary(result: Analysis) -> Iterable[str]:
    libs = [m.name for m in result.members if m.kind == "library"]
    apps = [m.name for m in result.members if m.kind == "app"]
    yield (f"check_deps: {len(libs)} libraries, {len(apps)} apps, {result.files} source files, "
           f"{sum(result.edges.values())} internal imports")
    for (src, dst), count in sorted(result.edges.items()):
        yield f"  {src} -> {dst} ({count})"
    for note in result.notes:
        yield f"  note: {note}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, default=REPO_ROOT, help="workspace root (default: this repo)")
    parser.add_argument("--list-members", action="store_true",
                        help="print the workspace members as a JSON list (for a CI matrix) and exit")
    parser.add_argument("--kind", choices=("library", "app"), help="with --list-members: only this kind")
    args = parser.parse_args(argv)

    if args.list_members:
        members = [m.as_json() for m in discover_members(args.root) if args.kind in (None, m.kind)]
        print(json.dumps(members, separators=(",", ":")))
        return 0

    result = analyze(args.root)
    if result.violations:
        print(f"check_deps: {len(result.violations)} violation(s) of the dependency rules "
              "(see docs/ARCHITECTURE.md):")
        for violation in result.violations:
            print(f"  {violation}")
        return 1
    print("\n".join(_summary(result)))
    print("check_deps: OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
