"""The import contracts of pyproject.toml ([tool.importlinter]) hold, and the tool catches a breach."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")   # installed by the dev extra


def lint_imports(folder: Path) -> subprocess.CompletedProcess:
    """Run lint-imports in ``folder``: its pyproject.toml, and the ``edge`` package inside it
    (lint-imports puts the working folder first on the import path)."""
    assert LINT_IMPORTS.exists(), f"{LINT_IMPORTS} is missing: install the dev extra (pip install -e '.[dev]')"
    return subprocess.run([str(LINT_IMPORTS), "--no-cache"], cwd=folder, capture_output=True, text=True,
                          timeout=300)


def test_the_repository_keeps_every_import_contract():
    result = lint_imports(REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


# An upward import of each kind: a library module reaching a service, the runtime reaching the codec
# (the coder is passed to it), the registry reaching a loader's module (it names them instead).
PLANTED = [
    ("codec/container.py", "import edge.daemon.pipeline", "edge.codec.container -> edge.daemon.pipeline"),
    ("runtime/networks.py", "from edge.codec.lossy.coder import BATCH",
     "edge.runtime.networks -> edge.codec.lossy.coder"),
    ("registry.py", "import edge.segment.unet", "edge.registry -> edge.segment.unet"),
]


@pytest.mark.parametrize("module, line, reported", PLANTED, ids=[p[0] for p in PLANTED])
def test_an_upward_import_breaks_a_contract(tmp_path, module, line, reported):
    shutil.copytree(REPO / "edge", tmp_path / "edge", ignore=shutil.ignore_patterns("weights", "__pycache__"))
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    planted = tmp_path / "edge" / module
    planted.write_text(planted.read_text() + f"\n{line}  # planted\n")

    result = lint_imports(tmp_path)
    assert result.returncode != 0, result.stdout
    assert "BROKEN" in result.stdout
    # The report names the planted import, so it linted the copy, not the installed package.
    assert reported in result.stdout, result.stdout
