"""The command line: every command has help, errors become one line and exit status 1."""
from __future__ import annotations

import subprocess
import sys

import pytest

from edge.cli import COMMANDS, build_parser, main
from edge.registry import MODELS


def test_every_command_has_help_text():
    listing = next(a for a in build_parser()._actions if a.dest == "command")
    for name in COMMANDS:
        assert listing.choices[name].description, f"command {name} has no help text"
        # The line `edge --help` reads from the source is the one the command's own parser shows.
        own = next(a for a in build_parser(name)._actions if a.dest == "command")
        assert own.choices[name].description == listing.choices[name].description


def test_the_list_of_commands_imports_no_command_module():
    code = ("import sys\nfrom edge.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in sys.modules if m.startswith('edge.commands.') or m == 'torch'))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "usage: edge" in result.stdout and "compress" in result.stdout
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_an_input_error_is_one_line_and_exit_status_1(tmp_path, capsys):
    missing = tmp_path / "nope.jpg"
    assert main(["compress", str(missing), "-o", str(tmp_path / "b.edgb"), "--mode", "lossy"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "nope.jpg" in err


def test_a_damaged_bundle_is_refused_by_decompress(tmp_path, capsys):
    bundle = tmp_path / "bad.edgb"
    bundle.write_bytes(b"\x89EDG\r\n\x1a\n" + b"\x00" * 40)
    assert main(["decompress", str(bundle), "-o", str(tmp_path / "out.png")]) == 1
    assert "bad.edgb" in capsys.readouterr().err
    assert not (tmp_path / "out.png").exists()


def test_registry_names_are_unique_and_loaders_importable():
    import importlib
    files = [spec.weights_file for spec in MODELS.values()]
    assert len(files) == len(set(files))
    for name, spec in MODELS.items():
        assert spec.name == name
        module, function = spec.loader.split(":")
        assert callable(getattr(importlib.import_module(module), function))


@pytest.mark.parametrize("name", sorted(MODELS))
def test_shipped_weights_exist_for_every_registered_model(name):
    assert MODELS[name].weights_path.exists(), f"{name}: {MODELS[name].weights_path} missing"
