"""`edge doctor`: one OK/WARN/FAIL line per check, exit 1 exactly when something FAILs."""
from __future__ import annotations

import re

import torch

from edge.cli import main
from edge.comms.broker import free_port
from edge.doctor import FAIL, OK, WARN, check_backends, check_constriction, check_folder, run_checks

torch.set_num_threads(1)
LINE = re.compile(r"^(OK|WARN|FAIL) +[\w .-]+: \S")


def _lines(output: str) -> list[str]:
    lines = output.strip().splitlines()
    assert re.match(r"^\d+ checks, \d+ failed$", lines[-1]), lines[-1]
    return lines[:-1]


def test_doctor_prints_one_line_per_check_and_exits_1_only_on_fail(capsys):
    status = main(["doctor"])
    lines = _lines(capsys.readouterr().out)
    for line in lines:
        assert LINE.match(line), line
    names = {line.split(":")[0].split(None, 1)[1] for line in lines}
    assert {"python", "torch", "gpu", "tensorrt", "torch2trt", "onnx", "onnxruntime", "constriction",
            "packages", "engines"} <= names
    assert status == (1 if any(line.startswith("FAIL") for line in lines) else 0)
    if not torch.cuda.is_available():
        assert any(line.startswith("WARN gpu") for line in lines)


def test_constriction_check_does_a_real_round_trip():
    check = check_constriction()
    assert check.status == OK and "round trip" in check.detail


def _edge_config(tmp_path, port: int, extra: str = "") -> str:
    (tmp_path / "card").mkdir(exist_ok=True)
    path = tmp_path / "edge.yaml"
    path.write_text(f"device: d1\nwatch: {{folders: [card, absent-card]}}\nspool: {{folder: spool}}\n"
                    f"mqtt: {{client_id: c1, host: 127.0.0.1, port: {port}}}\n{extra}")
    return str(path)


def test_doctor_with_a_config_checks_folders_and_a_live_broker(broker, tmp_path, capsys):
    main(["doctor", "--config", _edge_config(tmp_path, broker.port)])
    lines = _lines(capsys.readouterr().out)
    assert any(line.startswith("OK   config:") for line in lines)
    assert any(line.startswith("OK   broker:") and str(broker.port) in line for line in lines)
    assert any(line.startswith("OK   watch folder:") and "card" in line for line in lines)
    assert any(line.startswith("WARN watch folder:") and "absent-card" in line for line in lines)
    assert any(line.startswith("OK   spool:") for line in lines)


def test_doctor_fails_when_the_broker_is_unreachable(tmp_path, capsys):
    assert main(["doctor", "--config", _edge_config(tmp_path, free_port())]) == 1
    lines = _lines(capsys.readouterr().out)
    assert any(line.startswith("FAIL broker:") and "not reachable" in line for line in lines)


def test_doctor_names_the_bad_config_key(tmp_path, capsys):
    config = _edge_config(tmp_path, free_port(), extra="runtime: {backend: tpu}\n")
    assert main(["doctor", "--config", config]) == 1
    lines = _lines(capsys.readouterr().out)
    assert any(line.startswith("FAIL config:") and "runtime.backend" in line for line in lines)


def test_a_spool_that_cannot_be_created_fails(tmp_path):
    (tmp_path / "a-file").write_text("not a folder")
    assert check_folder("spool", tmp_path / "a-file" / "spool", writable=True).status == FAIL
    assert check_folder("spool", tmp_path / "new" / "spool", writable=True).status == OK


def test_stale_artifacts_in_the_engines_folder_are_reported(tmp_path):
    (tmp_path / "hp-easn.g_a.w000000000000.p256.onnx").write_bytes(b"old")
    checks = check_backends(engines_folder=tmp_path)
    (engines,) = [c for c in checks if c.name == "engines"]
    assert engines.status == WARN and "hp-easn.g_a.w000000000000.p256.onnx" in engines.detail
    (tmp_path / "hp-easn.g_a.w000000000000.p256.onnx").unlink()
    (engines,) = [c for c in check_backends(engines_folder=tmp_path) if c.name == "engines"]
    assert engines.status == OK


def test_run_checks_without_config_has_no_mount_or_broker_lines():
    names = [check.name for check in run_checks()]
    assert "broker" not in names and "spool" not in names
