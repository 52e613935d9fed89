"""`edge train lossy`: a few steps on a tiny model, resume, new quality levels, export."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch

from edge.codec.lossy.model import HyperpriorEASN, LossyConfig
from edge.codec.lossy.weights import export_weights, load_coder
from edge.errors import ConfigError, InputError
from edge.synth import render_frame
from edge.train.common import exclusive_run, save_checkpoint
from edge.train.data import colour_jitter
from edge.train.lossy import export_checkpoint, train_lossy, update_average

TINY = {"n": 8, "m": 16}


def _images(folder):
    folder.mkdir()
    # envA_01..02 train, envA_70 is in a held-out scene.
    for seed, name in enumerate(["envA_01", "envA_02", "envA_70"]):
        image, _ = render_frame((96, 80), seed=seed)
        cv2.imwrite(str(folder / f"{name}.png"), image[:, :, ::-1])
    return folder


def _train(data, run, steps, levels=None):
    config = LossyConfig(**TINY, **({"levels": levels} if levels else {}))
    return train_lossy(data_dirs=[data], run_dir=run, steps=steps, minutes=0, crop=64, batch=2, lr=1e-3,
                       threads=1, bf16=False, config=config, val_every=2, save_minutes=60, seed=0)


def test_trains_checkpoints_and_resumes(tmp_path):
    data, run = _images(tmp_path / "images"), tmp_path / "run"
    _train(data, run, steps=2)
    first = torch.load(run / "last.pt", weights_only=False)
    assert first["state"]["step"] == 2
    assert (run / "best.pt").exists()

    _train(data, run, steps=4)
    resumed = torch.load(run / "last.pt", weights_only=False)
    assert resumed["state"]["step"] == 4
    assert not torch.equal(first["model"]["g_s.layers.6.weight"], resumed["model"]["g_s.layers.6.weight"])
    records = [json.loads(line) for line in (run / "train.log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [2, 4]
    assert set(records[-1]["val"]) == {str(level) for level in range(LossyConfig().levels)}
    assert set(records[-1]["val_colour"]) == set(records[-1]["val"])


def test_a_second_run_on_the_same_folder_is_refused(tmp_path):
    """Two runs on one folder would overwrite each other's checkpoints."""
    data, run = _images(tmp_path / "images"), tmp_path / "run"
    with exclusive_run(run):                       # a first run holds the folder
        with pytest.raises(ConfigError, match="another training run uses"):
            _train(data, run, steps=2)
    assert not (run / "last.pt").exists()
    _train(data, run, steps=2)                     # free again once the first run ends
    assert (run / "last.pt").exists()


def test_the_weight_average_is_checkpointed_validated_and_exported(tmp_path):
    data, run = _images(tmp_path / "images"), tmp_path / "run"
    _train(data, run, steps=3)
    last = torch.load(run / "last.pt", weights_only=False)
    assert last["state"]["averaged_steps"] == 3
    name = "g_s.layers.6.weight"
    # The average lags the raw weights: it is neither them nor the initial weights.
    assert not torch.equal(last["average"][name], last["model"][name])
    _train(data, run, steps=5)                      # resumes the average too
    resumed = torch.load(run / "last.pt", weights_only=False)
    assert resumed["state"]["averaged_steps"] == 5
    best = torch.load(run / "best.pt", weights_only=False)
    assert best["state"]["step"] in (2, 4)
    export_checkpoint(run, tmp_path / "w.pt")
    coder = load_coder(tmp_path / "w.pt")
    exported = coder.model.state_dict()[name].float()
    assert torch.allclose(exported, best["model"][name].half().float())

    # --export-from last (or a kept copy of a checkpoint) writes that checkpoint's average.
    kept = tmp_path / "kept-step5.pt"
    kept.write_bytes((run / "last.pt").read_bytes())
    for source in ("last", str(kept)):
        export_checkpoint(run, tmp_path / "from-last.pt", source)
        exported = load_coder(tmp_path / "from-last.pt").model.state_dict()[name].float()
        assert torch.allclose(exported, resumed["average"][name].half().float())
    with pytest.raises(InputError, match="--export-from nowhere.pt"):
        export_checkpoint(run, tmp_path / "x.pt", "nowhere.pt")


def test_update_average_moves_a_fraction_of_the_way():
    model, average = HyperpriorEASN(LossyConfig(**TINY)), HyperpriorEASN(LossyConfig(**TINY))
    for parameter in average.parameters():
        torch.nn.init.zeros_(parameter)
    state = {"averaged_steps": 10_000}            # past the warm-up: decay 0.999
    update_average(average, model, state)
    first_model, first_average = next(model.parameters()), next(average.parameters())
    assert torch.allclose(first_average, 0.001 * first_model)
    assert state["averaged_steps"] == 10_001


def test_colour_jitter_moves_colours_and_keeps_structure():
    rng = np.random.default_rng(0)
    crop = np.zeros((8, 8, 3), np.uint8)
    crop[..., 0], crop[..., 1], crop[..., 2] = 40, 200, 90           # saturated green
    crop[4:] += 20                                                     # an edge
    seen = set()
    for _ in range(200):
        out = colour_jitter(crop, rng)
        assert out.shape == crop.shape and out.dtype == np.uint8
        # The edge stays where it was: rows 0-3 are one colour, rows 4-7 another.
        for half in (out[:4], out[4:]):
            assert len({tuple(pixel) for pixel in half.reshape(-1, 3)}) == 1
        seen.add(tuple(out[0, 0]))
    green = tuple(crop[0, 0])
    assert green in seen                                               # sometimes untouched
    assert any(np.argmax(c) != 1 for c in seen)                        # permuted: green is not always the top channel
    assert any(np.ptp(c) > np.ptp(green) for c in seen) and any(np.ptp(c) < np.ptp(green) for c in seen)


def test_a_resumed_run_resets_the_best_score_when_the_validation_sets_change(tmp_path):
    data, run = _images(tmp_path / "images"), tmp_path / "run"
    _train(data, run, steps=2)
    checkpoint = torch.load(run / "last.pt", weights_only=False)
    checkpoint["state"].update(best_score=-1e9, validation="an older set")   # unbeatable on the old set
    torch.save(checkpoint, run / "last.pt")
    (run / "best.pt").unlink()
    _train(data, run, steps=4)
    assert torch.load(run / "best.pt", weights_only=False)["state"]["step"] == 4


def test_resume_adds_quality_levels_to_an_older_checkpoint(tmp_path):
    data, run = _images(tmp_path / "images"), tmp_path / "run"
    _train(data, run, steps=2, levels=3)
    old = torch.load(run / "last.pt", weights_only=False)

    _train(data, run, steps=3, levels=5)
    new = torch.load(run / "last.pt", weights_only=False)
    assert new["config"]["levels"] == 5 and new["model"]["log_gain"].shape[0] == 5
    gains = new["model"]["log_gain"].mean(dim=1)
    assert torch.all(gains[1:] > gains[:-1]), "each new level quantises more finely than the one below"
    # The old levels carried over (one step of training moves them only a little).
    assert torch.allclose(new["model"]["log_gain"][:3], old["model"]["log_gain"], atol=0.05)


def test_exported_weights_code_every_level(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    torch.manual_seed(0)
    model = HyperpriorEASN(LossyConfig(**TINY, levels=2))
    optimizer = torch.optim.Adam(model.parameters())
    save_checkpoint(run / "last.pt", model, optimizer, {"step": 7}, model.config)
    digest = export_checkpoint(run, tmp_path / "tiny.pt")
    # The hash (which bundles record) depends on the weights only, not on the file's name.
    assert export_checkpoint(run, tmp_path / "other-name.pt") == digest

    coder = load_coder(tmp_path / "tiny.pt")
    assert coder.levels == 2
    patch = render_frame((256, 256), seed=5)[0].transpose(2, 0, 1)[None].copy()
    for level in range(2):
        coded = coder.compress(patch, level)
        assert coder.decompress(coded).shape == patch.shape


def test_a_new_run_starts_from_shipped_weights_with_more_levels(tmp_path):
    data, run = _images(tmp_path / "images"), tmp_path / "run"
    torch.manual_seed(0)
    shipped = HyperpriorEASN(LossyConfig(**TINY, levels=2))
    export_weights(shipped, tmp_path / "shipped.pt", {"step": 40})

    config = LossyConfig(**TINY, levels=3)
    train_lossy(data_dirs=[data], run_dir=run, steps=41, minutes=0, crop=64, batch=2, lr=1e-6, threads=1,
                bf16=False, config=config, val_every=100, save_minutes=60, seed=0,
                init_from=tmp_path / "shipped.pt")
    started = torch.load(run / "last.pt", weights_only=False)
    assert started["state"]["step"] == 41                         # continues the weights' count
    assert started["model"]["log_gain"].shape[0] == 3
    reference = shipped.g_s.layers[6].weight.half().float()       # shipped weights are fp16
    assert torch.allclose(started["model"]["g_s.layers.6.weight"], reference, atol=1e-3)


def test_weights_of_another_shape_are_refused(tmp_path):
    data, run = _images(tmp_path / "images"), tmp_path / "run"
    export_weights(HyperpriorEASN(LossyConfig(n=8, m=24, levels=2)), tmp_path / "other.pt")
    with pytest.raises(InputError, match="different shape"):
        train_lossy(data_dirs=[data], run_dir=run, steps=1, minutes=0, crop=64, batch=2, lr=1e-3, threads=1,
                    bf16=False, config=LossyConfig(**TINY), val_every=100, save_minutes=60, seed=0,
                    init_from=tmp_path / "other.pt")


def test_cli_trains_on_the_cpu_with_loader_processes_resumes_and_starts_from_shipped_weights(tmp_path):
    """`--device cpu --workers 2`: batches from two loader processes (the GPU path's data loading)."""
    from edge.cli import main

    data, run = _images(tmp_path / "images"), tmp_path / "run"
    torch.manual_seed(0)
    shipped = HyperpriorEASN(LossyConfig(**TINY))
    export_weights(shipped, tmp_path / "shipped.pt", {"step": 40})
    args = ["train", "lossy", str(data), "--run-dir", str(run), "--n", "8", "--m", "16", "--crop", "64",
            "--batch", "2", "--val-every", "2", "--device", "cpu", "--workers", "2",
            "--init-from", str(tmp_path / "shipped.pt")]
    assert main([*args, "--steps", "42"]) == 0
    first = torch.load(run / "last.pt", weights_only=False)
    assert first["state"]["step"] == 42
    assert main([*args, "--steps", "43"]) == 0            # resumes (--init-from only starts new runs)
    resumed = torch.load(run / "last.pt", weights_only=False)
    assert resumed["state"]["step"] == 43
    assert not torch.equal(first["model"]["g_s.layers.6.weight"], resumed["model"]["g_s.layers.6.weight"])
    records = [json.loads(line) for line in (run / "train.log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [42] and records[0]["device"] == "cpu"


def test_shipped_weights_are_read_without_the_entropy_coder(tmp_path, monkeypatch):
    """A GPU machine may lack constriction: --init-from must not import the coders."""
    import sys

    from edge.train.common import read_shipped

    export_weights(HyperpriorEASN(LossyConfig(**TINY)), tmp_path / "w.pt", {"step": 3})
    monkeypatch.setitem(sys.modules, "constriction", None)        # import constriction now fails
    model = HyperpriorEASN(LossyConfig(**TINY))
    from edge.train.lossy import initialise_from_weights
    assert initialise_from_weights(model, tmp_path / "w.pt") == 3
    with pytest.raises(InputError, match="is not a weights file of format edge-implicit-weights-v1"):
        read_shipped(tmp_path / "w.pt", "edge-implicit-weights-v1")


def test_format_names_match_the_coders():
    from edge.codec.implicit.weights import FORMAT as IMPLICIT
    from edge.codec.lossy.weights import FORMAT as LOSSY
    from edge.train.common import IMPLICIT_FORMAT, LOSSY_FORMAT
    assert (LOSSY_FORMAT, IMPLICIT_FORMAT) == (LOSSY, IMPLICIT)


def test_a_run_from_weights_warms_its_learning_rate_up_and_a_resumed_run_goes_on(tmp_path):
    """Adam's moments start at zero: at the full rate its first step moves every weight by the rate."""
    data, run = _images(tmp_path / "images"), tmp_path / "run"
    export_weights(HyperpriorEASN(LossyConfig(**TINY)), tmp_path / "shipped.pt", {"step": 40})
    options = dict(data_dirs=[data], run_dir=run, minutes=0, crop=64, batch=2, lr=1e-3, threads=1, bf16=False,
                   config=LossyConfig(**TINY), val_every=100, save_minutes=60, seed=0,
                   init_from=tmp_path / "shipped.pt", warmup=4)
    train_lossy(steps=41, **options)
    first = torch.load(run / "last.pt", weights_only=False)
    assert first["optimizer"]["param_groups"][0]["lr"] == pytest.approx(1e-3 / 4)
    train_lossy(steps=43, **options)                 # resumed: the ramp goes on, then the full rate
    assert torch.load(run / "last.pt", weights_only=False)["optimizer"]["param_groups"][0]["lr"] == \
        pytest.approx(1e-3 * 3 / 4)
    train_lossy(steps=45, **options)
    assert torch.load(run / "last.pt", weights_only=False)["optimizer"]["param_groups"][0]["lr"] == pytest.approx(1e-3)
