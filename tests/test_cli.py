"""The command line: every command has help, errors become one line and exit status 1."""
from __future__ import annotations

import pytest

from edge.cli import COMMANDS, build_parser, main
from edge.registry import MODELS


def test_every_command_has_help_text():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    for name in COMMANDS:
        assert sub.choices[name].description, f"command {name} has no help text"


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
