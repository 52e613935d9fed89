"""What ships names no path of one machine: data folders are arguments or environment variables.

Scans every text file of edge/, docs/, deploy/ and README.md for absolute home or work paths,
the data folder beside the repository (``../shared``) and the design notes kept outside it.
"""
from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCANNED = ("edge", "docs", "deploy", "README.md")
FORBIDDEN = re.compile(r"(?<![\w.$])/(?:work|root|home|Users)/|\.\./shared\b|shared/DESIGN")
BINARY_SUFFIXES = {".png", ".jpg", ".jpeg", ".pt", ".pth", ".onnx", ".engine", ".edgb", ".npz", ".gz", ".pyc"}


def scanned_files() -> list[Path]:
    files = []
    for name in SCANNED:
        path = ROOT / name
        files += [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    return [p for p in files if p.suffix.lower() not in BINARY_SUFFIXES and "__pycache__" not in p.parts]


def machine_paths(path: Path) -> list[str]:
    """``file:line: text`` for each line of ``path`` that names a forbidden path."""
    data = path.read_bytes()
    if b"\0" in data[:8192]:
        return []                    # a binary file
    text = data.decode("utf-8", errors="replace")
    return [f"{path.relative_to(ROOT)}:{number}: {line.strip()[:160]}"
            for number, line in enumerate(text.splitlines(), 1) if FORBIDDEN.search(line)]


def test_the_pattern_catches_machine_paths_and_spares_placeholders():
    caught = ["edge train lossy /work/shared/data/wta-train/images", "see ../shared/DESIGN.md",
              '"image": "/root/data/x.JPG"', "--ckpt-dir /home/someone/runs", "shared/DESIGN.md section 3"]
    spared = ["edge train lossy $WTA/images", '"path": "dtu-dev/DJI_0057.JPG"', "--json /tmp/rerun.json",
              "deploy/edge.yaml", "WTA=path/to/wta-train", "https://example.org/home/page"]
    assert all(FORBIDDEN.search(line) for line in caught)
    assert not any(FORBIDDEN.search(line) for line in spared)


def test_no_machine_paths_in_what_ships():
    files = scanned_files()
    assert any(p.name == "README.md" for p in files) and len(files) > 50
    found = [hit for path in files for hit in machine_paths(path)]
    assert not found, "paths of one machine (use an argument, $EDGE_WTA_TRAIN or a placeholder):\n" + "\n".join(found)


def test_training_data_comes_from_the_argument_or_the_environment(tmp_path, monkeypatch, capsys):
    from edge.cli import main
    from edge.train.data import WTA_TRAIN_ENV, wta_train_folder

    monkeypatch.delenv(WTA_TRAIN_ENV, raising=False)
    for command in (["train", "promote", str(tmp_path)], ["train", "lossless", "--ckpt-dir", str(tmp_path / "run")]):
        assert main(command) == 1
        assert f"set {WTA_TRAIN_ENV}=DIR" in capsys.readouterr().err, command
    assert not (tmp_path / "run").exists()
    monkeypatch.setenv(WTA_TRAIN_ENV, str(tmp_path / "wta"))
    assert wta_train_folder() == tmp_path / "wta"
    assert wta_train_folder(tmp_path / "given") == tmp_path / "given"
