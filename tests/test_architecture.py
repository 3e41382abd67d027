"""The declared layering holds (pyproject.toml [tool.importlinter], docs/architecture.md), and breaking it fails.

    .venv/bin/lint-imports                      # what .ci/run runs before pytest
    .venv/bin/python -m pytest -q tests/test_architecture.py

The second test copies the package's modules into a temporary folder, adds one forbidden import and
checks that `lint-imports` then fails and names it: the contracts are live, not just declared.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

importlinter = pytest.importorskip("importlinter", reason="import-linter is a dev tool: pip install -e '.[dev]'")

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "prompt_recovery"
LINT = "import sys; from importlinter.cli import lint_imports_command; sys.exit(lint_imports_command())"


def lint(src: Path, cwd: Path) -> subprocess.CompletedProcess:
    """`lint-imports --no-cache` on the package under `src`, with the contracts of this repository."""
    path = os.pathsep.join([str(src), str(Path(importlinter.__file__).parents[1])])  # the copy first
    return subprocess.run([sys.executable, "-c", LINT, "--no-cache", "--no-logo", str(ROOT / "pyproject.toml")],
                          cwd=cwd, env={**os.environ, "PYTHONPATH": path}, capture_output=True, text=True, timeout=300)


def copy_package(tmp_path: Path) -> Path:
    """The package's Python modules (no adapters or data files) under tmp_path/src."""
    dest = tmp_path / "src" / "prompt_recovery"
    for f in PACKAGE.rglob("*.py"):
        target = dest / f.relative_to(PACKAGE)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(f, target)
    return dest.parent


def test_the_package_keeps_every_contract(tmp_path):
    res = lint(copy_package(tmp_path), tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "Contracts: 3 kept, 0 broken." in res.stdout


@pytest.mark.parametrize("module,line,contract", [
    ("scoring/metrics.py", "from prompt_recovery.search import search", "is not allowed to import"),  # up a layer
    ("models.py", "from prompt_recovery.serving import app", "Nothing imports the serving stage or the CLI"),
    ("search/replay.py", "from prompt_recovery.search import search", "No import cycles"),  # replay <-> search
])
def test_a_violation_fails(tmp_path, module, line, contract):
    src = copy_package(tmp_path)
    path = src / "prompt_recovery" / module
    path.write_text(path.read_text() + f"\n\ndef _late():\n    {line}  # inside a function: still counted\n")
    res = lint(src, tmp_path)
    assert res.returncode == 1, res.stdout + res.stderr
    assert "Broken contracts" in res.stdout and contract in res.stdout.replace("\n", " "), res.stdout
