"""Training runs where the entropy coder is not installed (a GPU machine: scripts/gpu_burst.sh).

The trainers import the codec's weights modules, which need constriction, only in their export
functions; a fresh interpreter without constriction must still import every trainer.
"""
import subprocess
import sys

from edge.commands.train import TRAINERS

WITHOUT_CONSTRICTION = "import sys; sys.modules['constriction'] = None\n"   # `import constriction` now fails


def run_python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", WITHOUT_CONSTRICTION + code], capture_output=True, text=True,
                          timeout=300)


def test_every_trainer_imports_without_the_entropy_coder():
    modules = [*TRAINERS.values(), "edge.train.heldout"]
    result = run_python(f"import importlib\nfor name in {modules!r}: importlib.import_module(name)\n"
                        "print('constriction' in sys.modules and sys.modules['constriction'] is not None)")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


def test_the_exports_do_need_it():
    """The check above means something: the weights modules the exports use cannot load here."""
    for module in ("edge.codec.lossy.weights", "edge.codec.implicit.weights", "edge.codec.bitswap.coding"):
        result = run_python(f"import {module}")
        assert result.returncode != 0 and "constriction" in result.stderr, module
