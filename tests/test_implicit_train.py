"""`edge train implicit`: a few steps on a tiny model, checkpoints, resume, export."""
from __future__ import annotations

import json

import cv2
import numpy as np
import torch

from edge.codec.implicit.model import ImplicitConfig, ImplicitROI
from edge.codec.implicit.weights import load_coder
from edge.synth import render_frame
from edge.train.implicit import (CropSampler, RandomFeatures, export_checkpoint, loss_terms, to_tensors,
                                 train_implicit, validation_crops)

TINY = ImplicitConfig(n=8, m=16, nz=8)


def _dataset(folder):
    (folder / "images").mkdir(parents=True)
    (folder / "masks").mkdir()
    # envA_01..02 train, envA_70 is in a held-out scene.
    for seed, name in enumerate(["envA_01", "envA_02", "envA_70"]):
        image, mask = render_frame((160, 128), seed=seed)
        cv2.imwrite(str(folder / "images" / f"{name}.png"), image[:, :, ::-1])
        cv2.imwrite(str(folder / "masks" / f"{name}.png"), mask.astype(np.uint8) * 255)
    return folder


def test_gradients_reach_the_mask_branches():
    torch.manual_seed(0)
    torch.set_num_threads(1)
    model = ImplicitROI(TINY)
    image, mask = render_frame((64, 64), seed=3)
    x, m = to_tensors(image[None], mask[None])
    bpp, distortion, _ = loss_terms(model, RandomFeatures(), x, m, torch.tensor([1]), 0.1, bf16=False)
    (bpp + 100 * distortion).sum().backward()
    raa_fg = model.g_s_fg.mgfe[0].raa.net[0].weight.grad
    raa_bg = model.g_s_bg.mgfe[0].raa.net[0].weight.grad
    assert raa_fg is not None and raa_fg.abs().sum() > 0
    assert raa_bg is not None and raa_bg.abs().sum() > 0


def test_training_resumes_and_exports(tmp_path):
    data = _dataset(tmp_path / "data")
    run_dir = tmp_path / "run"
    options = dict(minutes=0, crop=64, batch=2, lr=1e-4, threads=1, bf16=False, scale=1.0, synthetic=0,
                   bg_weight=0.1, val_every=2, save_minutes=10.0, seed=0)
    train_implicit(data, run_dir, TINY, steps=2, **options)
    assert torch.load(run_dir / "last.pt", weights_only=False)["state"]["step"] == 2
    train_implicit(data, run_dir, TINY, steps=4, **options)
    assert torch.load(run_dir / "last.pt", weights_only=False)["state"]["step"] == 4
    records = [json.loads(line) for line in (run_dir / "train.log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [2, 4]
    assert set(records[-1]["val"]["0"]) == {"bpp", "roi_psnr", "bg_psnr", "psnr"}
    assert set(records[-1]["val_colour"]) == set(records[-1]["val"])
    digest = export_checkpoint(run_dir, tmp_path / "w.pt")
    assert load_coder(tmp_path / "w.pt").weights_sha256 == digest


def test_training_crops_are_recoloured_and_keep_their_masks():
    # One brown image: without colour jitter every crop is that brown; with it, the channels
    # move (other hues, other saturation; none clips) while the grey level and the mask stay.
    image = np.empty((96, 96, 3), np.uint8)
    image[:] = (150, 110, 80)
    mask = np.zeros((96, 96), bool)
    mask[:, 40:60] = True
    plain = CropSampler([(image, mask)], 64, seed=3)
    jittered = CropSampler([(image, mask)], 64, seed=3, colour=True)
    plain_crops = [plain.one(0) for _ in range(20)]
    jittered_crops = [jittered.one(0) for _ in range(20)]
    assert all((crop == (150, 110, 80)).all() for crop, _ in plain_crops)
    assert any(not (crop == (150, 110, 80)).all() for crop, _ in jittered_crops)
    for crop, crop_mask in jittered_crops:
        assert abs(crop.mean() - image.mean()) <= 1
        assert crop_mask.any() and not crop_mask.all()


def test_recoloured_validation_crops_are_fixed_and_masks_unchanged():
    pairs = [render_frame((160, 128), seed=seed) for seed in range(3)]
    x, mask = validation_crops(pairs, crop=64, count=3)
    x_colour, mask_colour = validation_crops(pairs, crop=64, count=3, recolour=True)
    again, _ = validation_crops(pairs, crop=64, count=3, recolour=True)
    assert torch.equal(mask, mask_colour)
    assert not torch.equal(x, x_colour)
    assert torch.equal(x_colour, again)


def test_cli_starts_from_shipped_weights_on_the_cpu_with_loader_processes_and_resumes(tmp_path):
    from edge.cli import main
    from edge.codec.implicit.weights import export_weights

    data = _dataset(tmp_path / "data")
    run_dir = tmp_path / "run"
    torch.manual_seed(1)
    shipped = ImplicitROI(TINY)
    export_weights(shipped, tmp_path / "shipped.pt", {"step": 30})
    args = ["train", "implicit", str(data), "--run-dir", str(run_dir), "--init-from", str(tmp_path / "shipped.pt"),
            "--crop", "64", "--batch", "2", "--scale", "1", "--synthetic", "0", "--val-every", "1",
            "--lr", "1e-9", "--device", "cpu", "--workers", "2"]
    assert main([*args, "--steps", "31"]) == 0
    started = torch.load(run_dir / "last.pt", weights_only=False)
    assert started["state"]["step"] == 31 and started["config"] == TINY.__dict__   # the shipped shape
    name = "g_a.layers.0.weight" if "g_a.layers.0.weight" in started["model"] else next(iter(started["model"]))
    assert torch.allclose(started["model"][name], shipped.state_dict()[name].half().float(), atol=1e-6)
    assert main([*args, "--steps", "32"]) == 0
    records = [json.loads(line) for line in (run_dir / "train.log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [31, 32] and records[-1]["device"] == "cpu"
