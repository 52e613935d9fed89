"""Training, resuming, segmenting and evaluating through the ``edge`` command line, on tiny data."""
import json
import re

import cv2
import numpy as np
import pytest
import torch

from edge.cli import main
from edge.segment.unet import BUNetV2, UNetConfig, load_weights, save_weights
from edge.train.seg import SegTrainConfig, crop_shape

torch.set_num_threads(1)


def write_tiny_dataset(root, names, seed=0):
    """Photos of 48x80 with a light diagonal-ish bar on textured ground, plus masks and index."""
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    rows = ["image,blade_frac,view"]
    for i, name in enumerate(names):
        rgb = np.clip(rng.normal(70, 20, (48, 80, 3)), 0, 255)
        mask = np.zeros((48, 80), np.uint8)
        top = 10 + 3 * (i % 4)
        mask[top:top + 14] = 255
        rgb[mask > 0] = rng.normal(220, 6, (int((mask > 0).sum()), 3))
        cv2.imwrite(str(root / "images" / f"{name}.png"), rgb.astype(np.uint8))
        cv2.imwrite(str(root / "masks" / f"{name}.png"), mask)
        rows.append(f"{name}.png,{(mask > 0).mean():.4f},closeup")
    (root / "index.csv").write_text("\n".join(rows) + "\n")
    return root


@pytest.fixture
def tiny_data(tmp_path):
    # envA_66.. are held-out scenes (validation), envA_01.. training scenes.
    names = [f"envA_{n:02d}" for n in (1, 2, 3, 4, 66, 67)]
    return write_tiny_dataset(tmp_path / "data", names)


TINY_TRAIN = ["--base-width", "4", "--long-side", "64", "--crop", "32", "--batch", "2",
              "--eval-every", "2", "--ckpt-every", "1"]


@pytest.mark.slow
def test_train_seg_runs_and_resumes(tiny_data, tmp_path):
    ckpt = tmp_path / "ckpt"
    assert main(["train", "seg", "--data", str(tiny_data), "--ckpt-dir", str(ckpt), "--steps", "2", *TINY_TRAIN]) == 0
    first = torch.load(ckpt / "last.pt", weights_only=False)
    assert first["step"] == 2 and (ckpt / "best.pt").exists()
    assert main(["train", "seg", "--data", str(tiny_data), "--ckpt-dir", str(ckpt), "--steps", "4", *TINY_TRAIN]) == 0
    second = torch.load(ckpt / "last.pt", weights_only=False)
    assert second["step"] == 4
    log = (ckpt / "train.log").read_text()
    assert "resumed from" in log and "f1_all" in log
    # The resumed run continued from the saved weights: they changed since step 2.
    changed = any(not torch.equal(first["model"][k], second["model"][k]) for k in first["model"]
                  if first["model"][k].is_floating_point())
    assert changed
    weights = tmp_path / "w.pt"
    assert main(["train", "seg", "--ckpt-dir", str(ckpt), "--export", str(weights)]) == 0
    exported = torch.load(weights, weights_only=True)["state_dict"]
    assert all(v.dtype == torch.float16 for v in exported.values() if v.is_floating_point())
    assert load_weights(weights).config.base_width == 4


@pytest.mark.slow
def test_train_seg_minutes_ends_on_time_with_a_last_validation_and_resumes_no_further(tiny_data, tmp_path):
    ckpt = tmp_path / "ckpt"
    timed = ["--data", str(tiny_data), "--ckpt-dir", str(ckpt), "--steps", "1000000", "--minutes", "0.03",
             "--warmup", "1", *TINY_TRAIN[:-4], "--eval-every", "1000000", "--ckpt-every", "1000000"]
    assert main(["train", "seg", *timed]) == 0
    state = torch.load(ckpt / "last.pt", weights_only=False)
    assert 1 <= state["step"] < 1000000 and state["seconds"] >= 0.03 * 60
    validations = re.findall(r"step (\d+) lr (\S+) .* val ", (ckpt / "train.log").read_text())
    # The one validation is at the end of the time, where the cosine has reached its floor (2 % of lr).
    assert validations == [(str(state["step"]), f"{0.02 * 1e-3:.2e}")], validations
    assert main(["train", "seg", *timed]) == 0      # the time is spent: no further step
    assert torch.load(ckpt / "last.pt", weights_only=False)["step"] == state["step"]


def test_train_seg_refuses_a_negative_time_budget(tiny_data, tmp_path, capsys):
    """A budget computed below zero (a lease's minutes less its overheads) must not mean "no limit"."""
    ckpt = tmp_path / "ckpt"
    assert main(["train", "seg", "--data", str(tiny_data), "--ckpt-dir", str(ckpt), "--minutes", "-0.1",
                 *TINY_TRAIN]) == 1
    assert "--minutes must be positive" in capsys.readouterr().err
    assert not (ckpt / "last.pt").exists()


@pytest.mark.slow
def test_train_seg_crop_width_makes_wider_crops(tiny_data, tmp_path):
    ckpt = tmp_path / "ckpt"
    assert main(["train", "seg", "--data", str(tiny_data), "--ckpt-dir", str(ckpt), "--steps", "1",
                 *TINY_TRAIN, "--crop-width", "64"]) == 0
    assert "in crops of 32x64," in (ckpt / "train.log").read_text()
    mixed = tmp_path / "mixed"
    assert main(["train", "seg", "--data", str(tiny_data), "--ckpt-dir", str(mixed), "--steps", "1",
                 *TINY_TRAIN, "--crop-width", "64", "--wide-share", "0.5"]) == 0
    assert "in crops of 32x64 (50% of the batches, the rest square)," in (mixed / "train.log").read_text()


def test_wide_share_mixes_wide_and_square_batches():
    config = SegTrainConfig(crop=32, crop_width=64, wide_share=0.3)
    rng = np.random.default_rng(5)
    shapes = [crop_shape(config, rng) for _ in range(400)]
    assert set(shapes) == {(32, 64), (32, 32)}
    assert 0.24 < shapes.count((32, 64)) / len(shapes) < 0.36


def test_all_wide_batches_leave_the_random_stream_as_it_was():
    rng = np.random.default_rng(5)
    assert crop_shape(SegTrainConfig(crop=32, crop_width=64), rng) == (32, 64)
    assert crop_shape(SegTrainConfig(crop=32, crop_width=64, wide_share=0.0), rng) == (32, 32)
    assert rng.random() == np.random.default_rng(5).random()


def test_train_seg_refuses_a_negative_crop_width(tiny_data, tmp_path, capsys):
    ckpt = tmp_path / "ckpt"
    assert main(["train", "seg", "--data", str(tiny_data), "--ckpt-dir", str(ckpt), "--crop-width", "-32",
                 *TINY_TRAIN]) == 1
    assert "--crop-width is a width in pixels (0 = square crops), not -32" in capsys.readouterr().err
    assert not (ckpt / "last.pt").exists()


def test_train_seg_refuses_an_augmentation_share_above_one(tiny_data, tmp_path, capsys):
    ckpt = tmp_path / "ckpt"
    assert main(["train", "seg", "--data", str(tiny_data), "--ckpt-dir", str(ckpt), "--decoys", "1.5",
                 *TINY_TRAIN]) == 1
    assert "--decoys is a share of the crops, from 0 to 1, not 1.5" in capsys.readouterr().err
    assert not (ckpt / "last.pt").exists()
    assert main(["train", "seg", "--data", str(tiny_data), "--ckpt-dir", str(ckpt), "--decoy-kinds", "road,tower",
                 *TINY_TRAIN]) == 1
    assert "--decoy-kinds: unknown tower" in capsys.readouterr().err


@pytest.mark.slow
def test_train_seg_augmenting_in_threads_is_reproducible(tiny_data, tmp_path):
    weights = []
    for run in ("a", "b"):
        ckpt = tmp_path / run
        assert main(["train", "seg", "--data", str(tiny_data), "--ckpt-dir", str(ckpt), "--steps", "3",
                     "--workers", "2", *TINY_TRAIN]) == 0
        weights.append(torch.load(ckpt / "last.pt", weights_only=False)["model"])
    assert all(torch.equal(weights[0][key], weights[1][key]) for key in weights[0])


@pytest.fixture
def tiny_weights(tmp_path):
    torch.manual_seed(0)
    path = tmp_path / "tiny.pt"
    save_weights(BUNetV2(UNetConfig(base_width=4, input_long_side=64)), path)
    return path


def test_segment_command_writes_one_mask_per_photo(tiny_data, tiny_weights, tmp_path):
    images = sorted((tiny_data / "images").iterdir())[:3]
    out = tmp_path / "masks"
    assert main(["segment", *map(str, images), "-o", str(out), "--weights", str(tiny_weights)]) == 0
    for image in images:
        mask = cv2.imread(str(out / f"{image.stem}.png"), cv2.IMREAD_GRAYSCALE)
        assert mask.shape == (48, 80) and set(np.unique(mask)) <= {0, 255}


def test_segment_command_reports_unreadable_photo(tiny_weights, tmp_path, capsys):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff not a jpeg")
    assert main(["segment", str(bad), "-o", str(tmp_path / "m"), "--weights", str(tiny_weights)]) == 1
    assert "broken.jpg" in capsys.readouterr().err


def test_eval_seg_prints_table_and_writes_plot(tiny_data, tiny_weights, tmp_path, capsys):
    plot, report = tmp_path / "curves.png", tmp_path / "eval.json"
    assert main(["eval", "seg", str(tiny_data), "--split", "all", "--weights", str(tiny_weights),
                 "--plot", str(plot), "--json", str(report)]) == 0
    out = capsys.readouterr().out
    assert "BU-Netv2" in out and "+ forest vote" in out
    assert plot.stat().st_size > 0
    evaluation = json.loads(report.read_text())
    assert len(evaluation["frames"]) == 6
    assert set(evaluation["tables"]["all"]) == {"unet", "fill", "forest", "final"}


def test_eval_seg_speed_reports_every_step(tiny_data, tiny_weights, capsys):
    images = sorted((tiny_data / "images").iterdir())[:2]
    assert main(["eval", "seg-speed", *map(str, images), "--weights", str(tiny_weights)]) == 0
    out = capsys.readouterr().out
    for step in ("unet", "fill", "forest", "final", "total"):
        assert step in out


def test_train_seg_refuses_a_second_run_on_the_same_checkpoints(tiny_data, tmp_path, capsys):
    import fcntl

    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    with open(ckpt / "train.lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        assert main(["train", "seg", "--data", str(tiny_data), "--ckpt-dir", str(ckpt), "--steps", "1", *TINY_TRAIN]) == 1
    assert "another training run" in capsys.readouterr().err
    assert not (ckpt / "last.pt").exists()


@pytest.mark.slow
def test_train_seg_init_from_starts_a_new_run_from_given_weights(tiny_data, tmp_path):
    first = tmp_path / "first"
    assert main(["train", "seg", "--data", str(tiny_data), "--ckpt-dir", str(first), "--steps", "2", *TINY_TRAIN]) == 0
    second = tmp_path / "second"
    # A learning rate this small leaves the convolution weights where the first run left them.
    assert main(["train", "seg", "--data", str(tiny_data), "--ckpt-dir", str(second), "--steps", "1",
                 "--init-from", str(first / "last.pt"), "--lr", "1e-12", *TINY_TRAIN]) == 0
    start, new = torch.load(first / "last.pt", weights_only=False), torch.load(second / "last.pt", weights_only=False)
    assert new["step"] == 1
    # The second run's validation curve continues the first one's: step 2, then 2 + 1.
    from edge.train.seg import training_curve
    assert [point["step"] for point in training_curve(second)] == [2, 3]
    # A run started from that one continues after both: step 2 + 1 + 1.
    third = tmp_path / "third"
    assert main(["train", "seg", "--data", str(tiny_data), "--ckpt-dir", str(third), "--steps", "1",
                 "--init-from", str(second / "last.pt"), *TINY_TRAIN]) == 0
    assert [point["step"] for point in training_curve(third)] == [2, 3, 4]
    curve = tmp_path / "curve.png"
    assert main(["train", "seg", "--ckpt-dir", str(second), "--plot-curve", str(curve)]) == 0
    assert curve.stat().st_size > 0
    conv_keys = [k for k in start["model"] if k.endswith("weight") and start["model"][k].dim() == 4]
    assert conv_keys and all(torch.allclose(start["model"][k], new["model"][k], atol=1e-6) for k in conv_keys)
    weights = tmp_path / "w.pt"
    assert main(["train", "seg", "--ckpt-dir", str(second), "--export", str(weights), "--export-from", "last",
                 "--tau", "0.42"]) == 0
    assert load_weights(weights).config.threshold == 0.42
    exported = load_weights(weights).state_dict()
    assert all(torch.allclose(exported[k], new["model"][k].float(), atol=1e-2) for k in conv_keys)
    # A run started from weights in the shipped format starts a new curve (they hold no step).
    fourth = tmp_path / "fourth"
    assert main(["train", "seg", "--data", str(tiny_data), "--ckpt-dir", str(fourth), "--steps", "1",
                 "--init-from", str(weights), *TINY_TRAIN]) == 0
    assert [point["step"] for point in training_curve(fourth)] == [1]
    assert main(["train", "seg", "--ckpt-dir", str(fourth), "--plot-curve", str(curve)]) == 0


def test_eval_seg_tau_sweep_scores_each_threshold(tiny_data, tiny_weights, tmp_path, capsys):
    report = tmp_path / "sweep.json"
    assert main(["eval", "seg", str(tiny_data), "--split", "train", "--weights", str(tiny_weights),
                 "--tau-sweep", "0,1.01", "--json", str(report)]) == 0
    assert "| tau_BU |" in capsys.readouterr().out
    f1 = json.loads(report.read_text())["f1"]
    # tau 0 marks every pixel blade, tau above 1 none: the U-Net step's F1 follows from the masks.
    masks = [cv2.imread(str(tiny_data / "masks" / f"envA_{n:02d}.png"), cv2.IMREAD_GRAYSCALE) > 0 for n in (1, 2, 3, 4)]
    all_blade = np.mean([2 * m.sum() / (m.sum() + m.size) for m in masks])
    assert abs(f1["0.0"]["all"]["unet"] - all_blade) < 1e-9
    assert f1["1.01"]["all"]["unet"] == 0.0


def test_train_seg_is_float32_by_default_and_bf16_on_request(tiny_data, tmp_path):
    from edge.train.seg import autocast

    model = BUNetV2(UNetConfig(base_width=4, input_long_side=64))
    x = torch.rand(1, 3, 32, 32)
    with autocast(False):
        assert model(x).dtype == torch.float32
    with autocast(True):
        assert model(x).dtype == torch.bfloat16
    ckpt = tmp_path / "bf16"
    assert main(["train", "seg", "--data", str(tiny_data), "--ckpt-dir", str(ckpt), "--steps", "1", "--bf16",
                 *TINY_TRAIN]) == 0
    state = torch.load(ckpt / "last.pt", weights_only=False)
    assert state["config"]["bf16"] is True and state["step"] == 1
    default = tmp_path / "fp32"
    assert main(["train", "seg", "--data", str(tiny_data), "--ckpt-dir", str(default), "--steps", "1",
                 *TINY_TRAIN]) == 0
    assert torch.load(default / "last.pt", weights_only=False)["config"]["bf16"] is False


def test_train_seg_weights_the_classes_by_the_blade_area_that_pasting_adds(tiny_data, tmp_path):
    fractions = {}
    for paste in ("0", "0.5"):
        ckpt = tmp_path / f"paste{paste}"
        assert main(["train", "seg", "--data", str(tiny_data), "--ckpt-dir", str(ckpt), "--steps", "1",
                     "--blade-paste", paste, *TINY_TRAIN]) == 0
        logged = re.search(r"blade fraction ([0-9.]+)", (ckpt / "train.log").read_text())
        fractions[paste] = float(logged.group(1))
    assert fractions["0.5"] > fractions["0"] + 0.005
