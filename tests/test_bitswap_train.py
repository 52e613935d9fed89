"""Bit-swap training: a few steps on a tiny data set, resume, export, and code with the export."""
from __future__ import annotations

import argparse

import cv2
import numpy as np
import pytest
import torch

from edge.codec.bitswap.coder import BitswapCoder, load_weights
from edge.codec.bitswap.model import BitswapConfig, BitswapVAE, bits_per_subpixel
from edge.errors import ConfigError
from edge.train import lossless
from edge.train.common import exclusive_run


@pytest.fixture(autouse=True)
def one_torch_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture()
def data_dir(tmp_path):
    images = tmp_path / "data" / "images"
    images.mkdir(parents=True)
    rng = np.random.default_rng(0)
    # envA_70 falls in the held-out scene range, the others are training frames.
    for name in ("envA_01", "envA_02", "envA_70"):
        base = cv2.GaussianBlur(rng.integers(0, 256, (128, 160, 3), dtype=np.uint8), (9, 9), 3)
        cv2.imwrite(str(images / f"{name}.png"), base)
    return tmp_path / "data"


def train_args(data_dir, ckpt_dir, steps: int) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    lossless.add_arguments(parser)
    return parser.parse_args(["--data", str(data_dir), "--ckpt-dir", str(ckpt_dir), "--steps", str(steps),
                              "--batch", "2", "--width", "4", "--depth", "1", "--pixel-stages", "7",
                              "--eval-every", "2", "--ckpt-every", "1", "--val-crops", "4", "--warmup", "1"])


def test_train_resume_export_and_code(data_dir, tmp_path):
    ckpt = tmp_path / "ckpt"
    assert lossless.run(train_args(data_dir, ckpt, 2)) == 0
    assert (ckpt / "last.pt").exists() and (ckpt / "best.pt").exists()
    assert "val" in (ckpt / "train.log").read_text()
    assert lossless.run(train_args(data_dir, ckpt, 3)) == 0
    assert torch.load(ckpt / "last.pt", weights_only=False)["step"] == 3
    assert "resumed at step 2" in (ckpt / "train.log").read_text()

    weights = tmp_path / "bitswap.pt"
    lossless.export_weights(ckpt / "best.pt", weights)
    model = load_weights(weights)
    assert model.config.width == 4 and model.config.pixel_stages == 7
    assert all(p.dtype == torch.float16 for p in torch.load(weights, weights_only=True)["state_dict"].values())
    patches = np.random.default_rng(1).integers(0, 256, (1, 3, 64, 64), dtype=np.uint8)
    coder = BitswapCoder(model, latent_bins=256)
    assert np.array_equal(coder.decompress(coder.compress(patches)), patches)


def test_resume_refuses_another_model(data_dir, tmp_path):
    ckpt = tmp_path / "ckpt"
    assert lossless.run(train_args(data_dir, ckpt, 1)) == 0
    args = train_args(data_dir, ckpt, 2)
    args.width = 8
    with pytest.raises(ConfigError, match="ckpt-dir|ckpt_dir"):
        lossless.run(args)


def test_a_second_run_on_the_same_folder_is_refused(data_dir, tmp_path):
    ckpt = tmp_path / "ckpt"
    with exclusive_run(ckpt, "--ckpt-dir"):          # a first run holds the folder
        with pytest.raises(ConfigError, match="another training run uses"):
            lossless.run(train_args(data_dir, ckpt, 1))
    assert not (ckpt / "last.pt").exists()


def test_elbo_is_finite_and_trains_down():
    torch.manual_seed(0)
    model = BitswapVAE(BitswapConfig(width=8, depth=1, pixel_stages=7))
    x = torch.from_numpy(cv2.GaussianBlur(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8),
                                          (7, 7), 2).transpose(2, 0, 1).copy())[None].repeat(4, 1, 1, 1)
    optimizer = torch.optim.Adam(model.parameters(), lr=5e-3)
    losses = []
    for _ in range(15):
        loss = bits_per_subpixel(model(x), 64)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert np.isfinite(losses).all() and losses[-1] < losses[0] - 0.5


def test_warm_start_maps_pixel_stage_heads():
    torch.manual_seed(1)
    old = BitswapVAE(BitswapConfig(width=8, depth=1, pixel_stages=7))
    state = {"model": old.state_dict(), "model_config": old.config.to_dict()}
    new = BitswapVAE(BitswapConfig(width=8, depth=1, pixel_stages=10))
    assert lossless.warm_start(new, state) == []
    # New stage 0 (stride 8, no neighbours) from old stage 0; new stage 1 (stride-8 diagonal)
    # from the stride-4 diagonal stage; the last stage from the old last stage.
    assert torch.equal(new.px_stage[0].head.weight, old.px_stage[0].head.weight)
    assert torch.equal(new.px_stage[1].head.weight, old.px_stage[1].head.weight)
    assert torch.equal(new.px_stage[9].head.weight, old.px_stage[6].head.weight)
    assert torch.equal(new.q[0].stem.weight, old.q[0].stem.weight)


def test_starts_from_shipped_weights_on_the_cpu_with_loader_processes_and_resumes(data_dir, tmp_path):
    torch.manual_seed(2)
    shipped = BitswapVAE(BitswapConfig(width=4, depth=1, pixel_stages=7))
    weights = tmp_path / "shipped.pt"
    torch.save({"config": shipped.config.to_dict(), "latent_bins": 256, "step": 9,
                "state_dict": {k: v.half() for k, v in shipped.state_dict().items()}}, weights)
    ckpt = tmp_path / "ckpt"
    args = train_args(data_dir, ckpt, 1)
    args.init_from, args.device, args.workers, args.lr, args.eval_every = str(weights), "cpu", 2, 1e-9, 1
    assert lossless.run(args) == 0
    log = (ckpt / "train.log").read_text()
    assert "left at their initial values: none" in log and "on cpu with 2 loader processes" in log
    started = torch.load(ckpt / "last.pt", weights_only=False)
    name = "px_stage.0.head.weight"
    assert torch.allclose(started["model"][name], shipped.state_dict()[name].half().float(), atol=1e-6)
    args.steps = 2
    assert lossless.run(args) == 0
    assert torch.load(ckpt / "last.pt", weights_only=False)["step"] == 2
    assert "resumed at step 1" in (ckpt / "train.log").read_text()


def test_minutes_stop_a_run_and_save_it(data_dir, tmp_path):
    args = train_args(data_dir, tmp_path / "ckpt", 1_000_000)
    args.minutes, args.ckpt_every, args.eval_every = 0.01, 1_000_000, 1_000_000
    assert lossless.run(args) == 0
    assert 1 <= torch.load(tmp_path / "ckpt" / "last.pt", weights_only=False)["step"] < 1_000_000


def test_init_from_something_else_is_a_clear_error(tmp_path):
    from edge.errors import InputError
    torch.save({"weights": 1}, tmp_path / "other.pt")
    with pytest.raises(InputError, match="neither Bit-swap weights nor a Bit-swap training checkpoint"):
        lossless.init_state(tmp_path / "other.pt")
