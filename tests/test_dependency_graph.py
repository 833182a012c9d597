"""The workspace dependency graph (tools/check_deps.py) holds, and the checker catches what it should."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
LIBRARIES = ("dforce-core", "dforce-backbones", "dforce-sampling", "dforce-datasets", "dforce-train")


def _load_checker():
    name = "dforce_tools_check_deps"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, REPO_ROOT / "tools" / "check_deps.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


check_deps = _load_checker()


# --------------------------------------------------------------------------------------------- helpers


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")


def _member(root: Path, folder: str, name: str, deps: list[str], version: str = "0.1.0") -> Path:
    """A hatchling-style member with src/<import name>/__init__.py; returns the package directory."""
    deps_toml = "".join(f'    "{d}",\n' for d in deps)
    _write(root / folder / name / "pyproject.toml",
           f'[project]\nname = "{name}"\nversion = "{version}"\ndependencies = [\n{deps_toml}]\n')
    package = root / folder / name / "src" / name.replace("-", "_")
    _write(package / "__init__.py", f'__version__ = "{version}"\n')
    return package


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A clean synthetic workspace with the real library layout (no violations)."""
    _write(tmp_path / "pyproject.toml", """
        [tool.uv.workspace]
        members = ["packages/*", "apps/*"]
    """)
    _member(tmp_path, "packages", "dforce-core", ["torch>=2.4", "numpy>=1.24"])
    for name in LIBRARIES[1:]:
        package = _member(tmp_path, "packages", name, ["dforce-core==0.1.0", "torch>=2.4"])
        _write(package / "uses_core.py", "from dforce_core import __version__ as core_version\n")
    return tmp_path


def _src(root: Path, name: str) -> Path:
    folder = "apps" if (root / "apps" / name).exists() else "packages"
    return root / folder / name / "src" / name.replace("-", "_")


def _codes(root: Path) -> list[str]:
    return [v.code for v in check_deps.find_violations(root)]


# ------------------------------------------------------------------------------------------ real tree


def test_real_workspace_respects_the_dependency_graph():
    violations = check_deps.find_violations(REPO_ROOT)
    assert violations == [], "dependency-graph violations:\n" + "\n".join(map(str, violations))


def test_real_workspace_has_the_five_libraries():
    members = {m.name: m for m in check_deps.discover_members(REPO_ROOT)}
    for name in LIBRARIES:
        assert members[name].kind == "library"
        assert name.replace("-", "_") in members[name].import_names
    assert all(m.kind == "app" for m in members.values() if m.rel.startswith("apps/"))


def test_cli_passes_on_real_tree_and_lists_members():
    tool = str(REPO_ROOT / "tools" / "check_deps.py")
    ok = subprocess.run([sys.executable, tool], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    listed = subprocess.run([sys.executable, tool, "--list-members", "--kind", "library"],
                            capture_output=True, text=True, check=True)
    members = json.loads(listed.stdout)
    assert sorted(m["name"] for m in members) == sorted(LIBRARIES)
    assert {m["path"] for m in members} == {f"packages/{name}" for name in LIBRARIES}


# ------------------------------------------------------------------------------------ synthetic trees


def test_clean_synthetic_tree_passes(tree: Path):
    assert check_deps.find_violations(tree) == []
    assert check_deps.analyze(tree).edges[("dforce-sampling", "dforce-core")] == 1


def test_upward_edge_is_caught(tree: Path):
    _write(_src(tree, "dforce-core") / "bad.py", "from dforce_sampling import __version__\n")
    violations = check_deps.find_violations(tree)
    upward = [v for v in violations if v.code == "upward-edge"]
    assert len(upward) == 1
    assert upward[0].path == "packages/dforce-core/src/dforce_core/bad.py"
    assert upward[0].line == 1
    assert "dforce_sampling" in upward[0].message
    assert "undeclared-dependency" in _codes(tree)


def test_sideways_edge_is_caught(tree: Path):
    _write(_src(tree, "dforce-sampling") / "rollout.py", """
        import torch

        import dforce_backbones.transformer
    """)
    violations = [v for v in check_deps.find_violations(tree) if v.code == "sideways-edge"]
    assert len(violations) == 1
    assert violations[0].line == 3
    assert "dforce_backbones.transformer" in violations[0].message


def test_sideways_edge_is_caught_even_when_lazy_or_declared(tree: Path):
    _write(tree / "packages" / "dforce-sampling" / "pyproject.toml", """
        [project]
        name = "dforce-sampling"
        version = "0.1.0"
        dependencies = ["dforce-core==0.1.0", "dforce-backbones==0.1.0"]
    """)
    _write(_src(tree, "dforce-sampling") / "lazy.py", """
        def build():
            from dforce_backbones import __version__
            return __version__
    """)
    assert sorted(_codes(tree)) == ["forbidden-dependency", "sideways-edge"]


def test_top_level_wandb_in_a_library_is_caught(tree: Path):
    _write(_src(tree, "dforce-train") / "logging.py", """
        import json

        import wandb
    """)
    violations = check_deps.find_violations(tree)
    assert [(v.code, v.line) for v in violations] == [("top-level-import", 3)]
    assert "wandb" in violations[0].message


@pytest.mark.parametrize("source", [
    "import gymnasium as gym\n",
    "from mujoco import MjModel\n",
    "import gym.spaces\n",
    "try:\n    import wandb\nexcept ImportError:\n    wandb = None\n",
    "class Logger:\n    import wandb\n",
    "import importlib\n\nrun = importlib.import_module('wandb')\n",
    "from typing import TYPE_CHECKING\n\nif TYPE_CHECKING:\n    pass\nelse:\n    import ale_py\n",
])
def test_other_top_level_simulator_imports_are_caught(tree: Path, source: str):
    _write(_src(tree, "dforce-datasets") / "env.py", source)
    assert _codes(tree) == ["top-level-import"]


def test_lazy_import_inside_a_function_is_allowed(tree: Path):
    _write(_src(tree, "dforce-train") / "logging.py", """
        from __future__ import annotations

        from typing import TYPE_CHECKING

        if TYPE_CHECKING:
            import wandb


        def init_run(project: str) -> wandb.sdk.wandb_run.Run:
            import wandb

            return wandb.init(project=project)


        class Env:
            def make(self):
                import gymnasium

                return gymnasium.make("CartPole-v1")

            handler = staticmethod(lambda: __import__("mujoco"))
    """)
    assert check_deps.find_violations(tree) == []


def test_undeclared_internal_dependency_is_caught(tree: Path):
    _write(tree / "packages" / "dforce-sampling" / "pyproject.toml", """
        [project]
        name = "dforce-sampling"
        version = "0.1.0"
        dependencies = ["torch>=2.4"]
    """)
    violations = check_deps.find_violations(tree)
    assert [v.code for v in violations] == ["undeclared-dependency"]
    assert "dforce-core" in violations[0].message


def test_pin_to_a_stale_sibling_version_is_caught(tree: Path):
    _write(tree / "packages" / "dforce-core" / "pyproject.toml", """
        [project]
        name = "dforce-core"
        version = "0.2.0"
        dependencies = []
    """)
    assert set(_codes(tree)) == {"pin-mismatch"}


def test_relative_imports_stay_inside_the_package(tree: Path):
    package = _src(tree, "dforce-sampling")
    _write(package / "schedules" / "__init__.py", "from .matrix import pyramid\nfrom .. import uses_core\n")
    _write(package / "schedules" / "matrix.py", "from ..uses_core import core_version\n\ndef pyramid(): ...\n")
    assert check_deps.find_violations(tree) == []


def test_apps_may_import_anything_but_nothing_imports_an_app(tree: Path):
    app = _member(tree, "apps", "dforce-maze", ["dforce-core", "dforce-sampling", "dforce-backbones"])
    _write(app / "cli.py", """
        import gymnasium
        import wandb

        from dforce_backbones import __version__
        from dforce_core import __version__ as core
        from dforce_sampling import __version__ as sampling
    """)
    assert check_deps.find_violations(tree) == []

    _write(_src(tree, "dforce-train") / "bad.py", "import dforce_maze.cli\n")
    assert "imports-app" in _codes(tree)


def test_app_must_declare_what_it_imports(tree: Path):
    app = _member(tree, "apps", "dforce-maze", ["dforce-core"])
    _write(app / "cli.py", "from dforce_train import __version__\n")
    assert _codes(tree) == ["undeclared-dependency"]


def test_unparsable_source_is_reported(tree: Path):
    _write(_src(tree, "dforce-core") / "broken.py", "def f(:\n")
    assert _codes(tree) == ["syntax-error"]


def test_cli_prints_violations_and_exits_1(tree: Path):
    _write(_src(tree, "dforce-core") / "bad.py", "import dforce_sampling\n")
    proc = subprocess.run([sys.executable, str(REPO_ROOT / "tools" / "check_deps.py"), "--root", str(tree)],
                          capture_output=True, text=True)
    assert proc.returncode == 1
    assert "packages/dforce-core/src/dforce_core/bad.py:1: [upward-edge]" in proc.stdout


def test_empty_apps_folder_is_fine(tree: Path):
    (tree / "apps").mkdir(exist_ok=True)
    members = check_deps.discover_members(tree)
    assert sorted(m.name for m in members) == sorted(LIBRARIES)
