"""scripts/gpu_burst.sh end to end on the CPU, as on a fresh clone: pack the shipped wta-train
sample, train two models from the shipped weights for a minute (and beside them two runs of the
pretrained-encoder network), unpack the candidates and let `edge train promote --dry-run` judge
them against a copy of the shipped weights; soup the two lite0 runs that came back.

The two are the models whose held-out scoring is quick (Bit-swap, segmentation): scoring comes
after the training budget, in `run` and again in `promote`, and for all four models it takes ~7
minutes on 2 busy cores. tests/test_train_all.py trains and scores all four."""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

import torch

from edge.cli import main
from edge.segment.unet import load_weights
from edge.train.heldout import load_model
from tests.wta_sample import SAMPLE

ROOT = Path(__file__).resolve().parents[1]
WEIGHTS = ROOT / "edge" / "weights"
MIB = 1 << 20
MODELS = ("lossless", "seg")     # the two whose held-out scoring takes seconds, not a minute


def burst(*args: str, cwd: Path, timeout: float) -> str:
    """Run the script from ``cwd`` (relative paths are the caller's); its output, after checking it succeeded."""
    env = {k: v for k, v in os.environ.items() if k != "EDGE_WTA_TRAIN"}    # a fresh clone has none
    done = subprocess.run(["bash", str(ROOT / "scripts" / "gpu_burst.sh"), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"gpu_burst.sh {' '.join(args)}: exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done.stdout


def digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


def tree_bytes() -> int:
    """What a lease copies of the repository, counted as the script counts it."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, check=True).stdout.decode().split("\0")
    return sum((ROOT / name).stat().st_size for name in listed if name and (ROOT / name).is_file())


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_pack_run_unpack_and_promote_on_the_cpu_with_the_wta_sample(tmp_path, capsys):
    shipped = digests(WEIGHTS)
    sample = os.path.relpath(SAMPLE, tmp_path)

    # pack: the 7 frames, each whole at a reduced size and as one full-resolution crop
    printed = burst("pack", "--data", sample, "--pack", "pack", cwd=tmp_path, timeout=120)
    pack = tmp_path / "pack"
    assert (pack / "pack.json").is_file(), printed
    assert len(list((pack / "frames/images").glob("*.jpg"))) == len(list((pack / "crops/images").glob("*.jpg"))) == 7
    fit = re.search(r"packed set .*: ([\d.]+) MiB; repository working tree ([\d.]+) MiB; "
                    r"together ([\d.]+) MiB of 64 MiB", printed)
    assert fit, printed
    pack_bytes = sum(p.stat().st_size for p in pack.rglob("*") if p.is_file())
    assert abs(float(fit[1]) - pack_bytes / MIB) < 0.1, printed
    assert float(fit[3]) < 64 and tree_bytes() + pack_bytes < 64 * MIB, printed

    # run: every model trains and is scored; what comes back fits the lease's 8 files of 16 MiB
    started = time.monotonic()
    printed = burst("run", "--out", "out", "--minutes", "1", "--device", "cpu", "--pack", "pack", "--work", "work",
                    "--models", ",".join(MODELS), "--lite0", "2",
                    cwd=tmp_path, timeout=1200)
    run_seconds = time.monotonic() - started
    out, work = tmp_path / "out", tmp_path / "work"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["device"] == "cpu" and set(summary["models"]) == set(MODELS), printed
    for kind in MODELS:
        entry = summary["models"][kind]
        assert entry.get("candidate") == str(work / "train" / kind / "candidate.pt"), entry.get("verdict")
        assert isinstance(entry["score"], float) and isinstance(entry["shipped"]["score"], float), entry
        assert entry["steps_trained"] >= 1, entry
    parts = sorted(out.glob("candidates.tar.*")) + sorted(out.glob("lite0.tar.*"))
    assert parts and all(0 < p.stat().st_size < 16 * MIB for p in parts), [(p.name, p.stat().st_size) for p in parts]
    assert (out / "logs.tar.gz").is_file() and len(list(out.iterdir())) <= 8, sorted(out.iterdir())

    # unpack: the parts join back into one candidate per model, byte for byte what the run wrote
    printed = burst("unpack", "out", "dest", cwd=tmp_path, timeout=120)
    train = tmp_path / "dest" / "train"
    assert sorted(p.parent.name for p in train.glob("*/candidate.pt")) == sorted(MODELS), printed
    for kind in MODELS:
        candidate = train / kind / "candidate.pt"
        assert candidate.read_bytes() == (work / "train" / kind / "candidate.pt").read_bytes()
        assert load_model(kind, candidate)[1] == summary["models"][kind]["step"]

    # the lite0 runs: slimmed last checkpoints (fp16, no optimiser) that soup and export
    runs = sorted((tmp_path / "dest" / "lite0").glob("*/last.pt"))
    assert [p.parent.name for p in runs] == ["field", "paste"], printed
    for run in runs:
        state = torch.load(run, weights_only=False)
        assert "optimiser" not in state and state["step"] >= 1 and state["config"]["arch"] == "bunetv2-lite0"
        assert run.stat().st_size < 8 * MIB
    assert main(["train", "soup", str(tmp_path / "soup" / "last.pt"), *map(str, runs)]) == 0
    assert main(["train", "seg", "--ckpt-dir", str(tmp_path / "soup"), "--export", str(tmp_path / "soup.pt"),
                 "--export-from", "last"]) == 0
    assert load_weights(tmp_path / "soup.pt").config.threshold == 0.5

    # promote --dry-run: a verdict per model; neither the copy nor edge/weights changes
    weights = tmp_path / "weights"
    shutil.copytree(WEIGHTS, weights)
    capsys.readouterr()
    started = time.monotonic()
    status = main(["train", "promote", str(train), "--data", str(SAMPLE), "--weights-dir", str(weights),
                   "--models", ",".join(MODELS), "--device", "cpu", "--dry-run"])
    promote_seconds = time.monotonic() - started
    verdicts = capsys.readouterr().out
    assert status == 0, verdicts
    for kind in MODELS:
        assert re.search(rf"^{kind}: (refused: held-out score|would ship: held-out score) ", verdicts, re.M), verdicts
    assert digests(weights) == shipped and digests(WEIGHTS) == shipped
    print(f"gpu_burst.sh run --minutes 1: {run_seconds:.0f} s; promote --dry-run: {promote_seconds:.0f} s")
