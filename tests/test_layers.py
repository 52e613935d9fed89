"""The import contracts of pyproject.toml ([tool.importlinter]) hold, and the tool catches a breach."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

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


def test_a_codec_module_importing_the_daemon_breaks_a_contract(tmp_path):
    shutil.copytree(REPO / "edge", tmp_path / "edge", ignore=shutil.ignore_patterns("weights", "__pycache__"))
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    planted = tmp_path / "edge" / "codec" / "container.py"
    planted.write_text(planted.read_text() + "\nimport edge.daemon.pipeline  # planted\n")

    result = lint_imports(tmp_path)
    assert result.returncode != 0, result.stdout
    assert "BROKEN" in result.stdout
    # The report names the planted import, so it linted the copy, not the installed package.
    assert "edge.codec.container -> edge.daemon.pipeline" in result.stdout, result.stdout
