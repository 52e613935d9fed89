"""Train the Bit-swap lossless coder (``edge train lossless``): negative ELBO in bits per sub-pixel, resumable.

Data: random 64x64 crops of the wta-train training frames (the held-out scenes of
:mod:`edge.segment.dataset` are used for validation only), plus, with ``--synth-fraction``,
crops of synthetic inspection images from :mod:`edge.synth`. Crops start on multiples of 16
pixels, like the coder's patch grid, so the network sees JPEG block boundaries where coding will.

Each step draws a batch, flips it at random and minimizes the negative ELBO (networks under
bfloat16 autocast, every likelihood in float32, gradients clipped). Validation bits per
sub-pixel on fixed crops of the held-out frames (fixed sampling noise) are logged every
``--eval-every`` steps to ``CKPT/train.log``. ``CKPT/last.pt`` holds model, optimizer, step and
random state, ``CKPT/best.pt`` the best validation; running again resumes, on either device
(``--device``). A loss that turns non-finite or a validation far above the best reloads the best
checkpoint and halves the rate. ``--init-from`` starts a new run from the shipped weights
(edge/weights/bitswap.pt) or from a training checkpoint.
"""
from __future__ import annotations

import argparse
import contextlib
import functools
import json
import logging
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch
from tqdm import tqdm

from edge.codec.bitswap.model import PIXEL_STAGES, BitswapConfig, BitswapVAE, bits_per_subpixel
from edge.errors import ConfigError, InputError
from edge.registry import float_state
from edge.segment.dataset import is_held_out
from edge.synth import render_frame
from edge.train.common import (add_device_arguments, autocast, batch_on_device, batches, exclusive_run,
                               loader_workers, logged_to_file, on_device, resolve_device)
from edge.train.data import WTA_TRAIN_ENV, wta_train_folder

log = logging.getLogger(__name__)

CROP_ALIGN = 16


@dataclass
class LosslessTrainConfig:
    data: list[str] = field(default_factory=list)     # empty: $EDGE_WTA_TRAIN (edge.train.data)
    ckpt_dir: str = ""
    steps: int = 200000
    batch: int = 16
    lr: float = 5e-4
    lr_min: float = 5e-5
    warmup: int = 500
    clip: float = 1.0
    width: int = 64
    depth: int = 2
    levels: int = 2
    latent_channels: int = 8
    pixel_stages: int = 1
    synth_fraction: float = 0.0
    eval_every: int = 500
    ckpt_every: int = 100
    val_crops: int = 256
    threads: int = 1
    seed: int = 0
    bf16: bool = True
    init_from: str = ""           # shipped weights or a checkpoint to start a new run from (other pixel stages allowed)
    minutes: float = 0.0          # stop after this many minutes of training (0: no limit)
    device: str = "auto"          # auto, cpu or cuda
    workers: int = -1             # batch-preparing processes (-1: 0 on the CPU, 6 on a GPU)


def _read_rgb(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise InputError("cannot read image", str(path))
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def load_frames(data_dirs: list[str], held_out: bool) -> list[np.ndarray]:
    """RGB frames of each data directory's ``images/``; ``held_out`` picks the validation scenes."""
    frames = []
    for data_dir in data_dirs:
        image_dir = Path(data_dir) / "images"
        if not image_dir.is_dir():
            raise ConfigError(f"no images/ directory in {data_dir}", key_path="data")
        for path in sorted(image_dir.iterdir()):
            if path.suffix.lower() in (".jpg", ".jpeg", ".png") and is_held_out(path.stem) == held_out:
                frames.append(_read_rgb(path))
    if not frames:
        raise ConfigError(f"no {'held-out' if held_out else 'training'} frames in {data_dirs}", key_path="data")
    return frames


def training_batch(frames: list[np.ndarray], count: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` aligned crops with a random flip of the whole batch (a loader process's batch)."""
    batch = random_crops(frames, count, size, rng)
    flips = rng.random(2)
    if flips[0] < 0.5:
        batch = batch[..., ::-1]
    if flips[1] < 0.5:
        batch = batch[..., ::-1, :]
    return torch.from_numpy(np.ascontiguousarray(batch))


def random_crops(frames: list[np.ndarray], count: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` aligned size x size crops, uint8 (count, 3, size, size)."""
    out = np.empty((count, 3, size, size), dtype=np.uint8)
    for i in range(count):
        frame = frames[rng.integers(len(frames))]
        top = rng.integers((frame.shape[0] - size) // CROP_ALIGN + 1) * CROP_ALIGN
        left = rng.integers((frame.shape[1] - size) // CROP_ALIGN + 1) * CROP_ALIGN
        out[i] = frame[top:top + size, left:left + size].transpose(2, 0, 1)
    return out


class SynthSource:
    """Crops of synthetic inspection frames (:func:`edge.synth.render_frame`), passed through JPEG
    like the camera's photos; a small pool of frames is renewed one frame at a time."""

    FRAME_SIZE = (1024, 768)

    def __init__(self, size: int, seed: int, pool: int = 8):
        self.render_frame, self.size, self.pool_size = render_frame, size, pool
        self.rng = np.random.default_rng(seed)
        self.pool: list[np.ndarray] = []
        self.draws = 0

    def _make(self) -> np.ndarray:
        kind = "far" if self.rng.random() < 0.25 else "closeup"
        rgb, _ = self.render_frame(self.FRAME_SIZE, int(self.rng.integers(2**31)), kind=kind)
        quality = int(self.rng.integers(80, 96))
        ok, data = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
        return cv2.cvtColor(cv2.imdecode(data, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB) if ok else rgb

    def crops(self, count: int) -> np.ndarray:
        if len(self.pool) < self.pool_size or self.draws > 64 * self.pool_size:
            self.pool = (self.pool + [self._make()])[-self.pool_size:]
            self.draws = 0
        self.draws += count
        return random_crops(self.pool, count, self.size, self.rng)


def init_state(path: str | Path) -> dict:
    """A checkpoint-shaped dict (``model``, ``model_config``) of shipped weights (fp16 state dict
    and config, edge/weights/bitswap.pt) or of a training checkpoint, loaded on the CPU."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except (OSError, RuntimeError, ValueError, EOFError) as error:
        raise InputError(f"--init-from: cannot be read: {error}", str(path)) from None
    if isinstance(state, dict) and "state_dict" in state and "config" in state:      # shipped weights
        return {"model": float_state(state["state_dict"]), "model_config": state["config"],
                "step": int(state.get("step", 0))}
    if not isinstance(state, dict) or "model" not in state or "model_config" not in state:
        raise InputError("--init-from: neither Bit-swap weights nor a Bit-swap training checkpoint", str(path))
    return state


def warm_start(model: BitswapVAE, state: dict) -> list[str]:
    """Copy a checkpoint's weights into ``model``: same names and shapes, and each pixel-stage head
    from the old stage that is most alike (same neighbours, same relative position, nearest
    stride). Returns the names of parameters left at their initial values."""
    old_config = BitswapConfig(**state["model_config"])
    old_plans, new_plans = PIXEL_STAGES[old_config.pixel_stages], PIXEL_STAGES[model.config.pixel_stages]
    source = {}
    for new_index, plan in enumerate(new_plans):
        alike = [(abs(old.stride - plan.stride), -old.stride, old_index) for old_index, old in enumerate(old_plans)
                 if old.neighbours == plan.neighbours and old.dy * plan.stride == plan.dy * old.stride
                 and old.dx * plan.stride == plan.dx * old.stride]
        if alike:
            source[f"px_stage.{new_index}."] = f"px_stage.{min(alike)[2]}."
    own = model.state_dict()
    loaded, missing = {}, []
    for name, tensor in own.items():
        old_name = name
        for new_prefix, old_prefix in source.items():
            if name.startswith(new_prefix):
                old_name = old_prefix + name[len(new_prefix):]
        old = state["model"].get(old_name)
        if old is not None and old.shape == tensor.shape:
            loaded[name] = old
        else:
            missing.append(name)
    model.load_state_dict({**own, **loaded})
    return missing


def learning_rate(step: int, config: LosslessTrainConfig) -> float:
    if step < config.warmup:
        return config.lr * (step + 1) / config.warmup
    progress = min(1.0, (step - config.warmup) / max(1, config.steps - config.warmup))
    return config.lr_min + 0.5 * (config.lr - config.lr_min) * (1 + math.cos(math.pi * progress))


def model_device(device: torch.device):
    """Where the model's own new tensors go: the Bit-swap model makes its sampling noise and sums
    with factory functions (torch.rand, torch.zeros) on the default device, so on a GPU the
    default device is the GPU while it runs."""
    return torch.device(device) if device.type == "cuda" else contextlib.nullcontext()


@torch.no_grad()
def validate(model: BitswapVAE, crops: np.ndarray, batch: int = 64) -> dict[str, float]:
    """Negative ELBO in bits per sub-pixel (float32, fixed noise), total and per term.

    On a GPU the fixed noise comes from a GPU generator with the same seed: other draws than
    the CPU's, so the numbers differ from a CPU validation by the noise alone."""
    model.eval()
    device = next(model.parameters()).device
    generator = torch.Generator(device=device).manual_seed(1234)
    sums: dict[str, float] = {}
    for start in range(0, len(crops), batch):
        with model_device(device):
            terms = model(batch_on_device(torch.from_numpy(crops[start:start + batch]), device), generator=generator)
        for name, value in terms.items():
            sums[name] = sums.get(name, 0.0) + float(value.sum())
    model.train()
    scale = len(crops) * 3 * model.config.patch_size ** 2 * math.log(2.0)
    result = {name: value / scale for name, value in sums.items()}
    result["bpsp"] = sum(result.values())
    return result


def _model_config(config: LosslessTrainConfig) -> BitswapConfig:
    return BitswapConfig(levels=config.levels, latent_channels=config.latent_channels,
                         width=config.width, depth=config.depth, pixel_stages=config.pixel_stages)


def train(config: LosslessTrainConfig) -> dict[str, float]:
    torch.set_num_threads(config.threads)
    device = resolve_device(config.device)
    ckpt_dir = Path(config.ckpt_dir)
    with exclusive_run(ckpt_dir, "--ckpt-dir"), logged_to_file(log, ckpt_dir / "train.log"):
        return _train(config, ckpt_dir, device)


def _train(config: LosslessTrainConfig, ckpt_dir: Path, device: torch.device) -> dict[str, float]:
    last_path, best_path = ckpt_dir / "last.pt", ckpt_dir / "best.pt"
    model_config = _model_config(config)
    model = on_device(BitswapVAE(model_config), device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    step, best, lr_scale = 0, math.inf, 1.0
    rng = np.random.default_rng(config.seed)
    if last_path.exists():
        state = torch.load(last_path, map_location="cpu", weights_only=False)   # written on either device
        if BitswapConfig(**state["model_config"]) != model_config:
            raise ConfigError(f"{last_path} holds a model {state['model_config']}, not {model_config.to_dict()}; "
                              f"use another --ckpt-dir", key_path="ckpt_dir")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        step, best, lr_scale = state["step"], state["best"], state.get("lr_scale", 1.0)
        rng.bit_generator.state = state["rng"]
        torch.set_rng_state(state["torch_rng"])
        log.info("resumed at step %d (best val %.4f bpsp, lr scale %.3g)", step, best, lr_scale)
    else:
        torch.manual_seed(config.seed)
        model = BitswapVAE(model_config)
        log.info("new run: %s", json.dumps(asdict(config)))
        if config.init_from:
            missing = warm_start(model, init_state(config.init_from))
            log.info("started from %s; left at their initial values: %s", config.init_from, missing or "none")
        model = on_device(model, device)
        optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)

    frames = load_frames(config.data, held_out=False)
    val_frames = load_frames(config.data, held_out=True)
    val_crops = random_crops(val_frames, config.val_crops, model_config.patch_size, np.random.default_rng(99))
    log.info("%d training frames, %d held-out frames (%d validation crops)", len(frames), len(val_frames),
             len(val_crops))
    synth = None
    if config.synth_fraction > 0:
        try:
            synth = SynthSource(model_config.patch_size, config.seed + step)
            synth.crops(1)
        except Exception as error:  # optional source: train on real frames alone
            log.warning("synthetic images unavailable (%s); training on real frames only", error)
            synth = None

    def save(path: Path) -> None:
        tmp = path.with_suffix(".tmp")
        torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": step,
                    "best": best, "lr_scale": lr_scale, "rng": rng.bit_generator.state,
                    "torch_rng": torch.get_rng_state(), "model_config": model_config.to_dict(),
                    "train_config": asdict(config)}, tmp)
        tmp.replace(path)

    def recover(reason: str) -> None:
        nonlocal lr_scale
        lr_scale *= 0.5
        log.warning("%s at step %d: reloading the best checkpoint, lr scale now %.3g", reason, step, lr_scale)
        if best_path.exists():
            state = torch.load(best_path, map_location="cpu", weights_only=False)
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])

    workers = loader_workers(config.workers, device)
    # Loader processes draw real crops only (synthetic frames are rendered in this process).
    stream = batches(functools.partial(training_batch, frames, config.batch, model_config.patch_size),
                     config.seed + step, workers) if synth is None else None
    log.info("training on %s with %d loader processes", device, workers if stream is not None else 0)
    bar = tqdm(total=config.steps, initial=step, mininterval=30, desc="lossless", dynamic_ncols=True)
    running, bad_steps, started = None, 0, time.time()
    while step < config.steps and not (config.minutes and time.time() - started > config.minutes * 60):
        if stream is not None:
            x = next(stream)
        else:
            n_synth = int(round(config.batch * config.synth_fraction)) if synth is not None else 0
            batch = random_crops(frames, config.batch - n_synth, model_config.patch_size, rng)
            if n_synth:
                batch = np.concatenate([batch, synth.crops(n_synth)])
            flips = rng.random(2)
            if flips[0] < 0.5:
                batch = batch[..., ::-1]
            if flips[1] < 0.5:
                batch = batch[..., ::-1, :]
            x = torch.from_numpy(np.ascontiguousarray(batch))
        x = batch_on_device(x, device)
        lr = learning_rate(step, config) * lr_scale
        for group in optimizer.param_groups:
            group["lr"] = lr
        with autocast(device, config.bf16 or device.type == "cuda"), model_device(device):
            terms = model(x)
        loss = bits_per_subpixel(terms, model_config.patch_size)
        if not torch.isfinite(loss) or (running is not None and loss.item() > running + 2.0):
            bad_steps += 1
            if bad_steps >= 5:
                recover(f"loss {loss.item():.3g} vs running {running}")
                bad_steps, running = 0, None
            continue
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), config.clip)
        if not torch.isfinite(grad_norm):
            bad_steps += 1
            continue
        optimizer.step()
        bad_steps = 0
        running = loss.item() if running is None else 0.98 * running + 0.02 * loss.item()
        step += 1
        bar.update(1)
        bar.set_postfix(bpsp=f"{running:.3f}", lr=f"{lr:.2g}", refresh=False)
        if step % config.eval_every == 0 or step == config.steps:
            val = validate(model, val_crops)
            improved = val["bpsp"] < best
            if val["bpsp"] > best + 0.5 or not math.isfinite(val["bpsp"]):
                recover(f"validation {val['bpsp']:.4f} bpsp vs best {best:.4f}")
            elif improved:
                best = val["bpsp"]
                save(best_path)
            log.info("step %d train %.4f val %.4f (%s) lr %.3g %.0fs%s", step, running, val["bpsp"],
                     " ".join(f"{k}={v:.4f}" for k, v in val.items() if k != "bpsp"), lr,
                     time.time() - started, " *" if improved else "")
        if step % config.ckpt_every == 0 or step == config.steps:
            save(last_path)
    save(last_path)                     # also when stopped by --minutes
    bar.close()
    return {"step": step, "best_val_bpsp": best}


def export_weights(ckpt_path: Path, out_path: Path, latent_bins: int = 1024) -> dict:
    """Write the shipped weights file: fp16 state dict, model config and the latent bin count.

    fp16 -> float64 is exact, so the coder's canonical float64 copy is the same everywhere.
    """
    # Imported here: it needs the entropy coder (constriction), which a training
    # machine need not have (scripts/gpu_burst.sh); only the export uses it.
    from edge.codec.bitswap.coding import DEFAULT_LATENT_BINS

    state = torch.load(ckpt_path, map_location="cpu", weights_only=False)
    weights = {name: tensor.half() for name, tensor in state["model"].items()}
    torch.save({"config": BitswapConfig(**state["model_config"]).to_dict(), "state_dict": weights,
                "latent_bins": latent_bins or DEFAULT_LATENT_BINS, "step": int(state["step"])}, out_path)
    return {"step": state["step"], "best": state["best"]}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = LosslessTrainConfig()
    parser.add_argument("--data", nargs="+", default=defaults.data,
                        help=f"data directories with images/ (default: ${WTA_TRAIN_ENV})")
    parser.add_argument("--ckpt-dir", required=True, help="checkpoint directory (resumes from it)")
    helps = {
        "steps": "total optimizer steps (also the length of the cosine schedule)",
        "batch": "64x64 crops per step", "warmup": "steps of linear learning-rate warm-up",
        "width": "channels inside every network", "depth": "residual blocks per network",
        "levels": "latent levels L", "latent_channels": "channels per latent",
        "pixel_stages": "pixel coding stages: 1 (the reference), 4, 7 or 10",
        "eval_every": "steps between validations", "ckpt_every": "steps between checkpoints",
        "val_crops": "validation crops", "threads": "torch threads", "seed": "random seed",
        "lr": "peak learning rate", "lr_min": "final learning rate", "clip": "gradient norm clip",
        "synth_fraction": "share of each batch taken from synthetic frames",
    }
    for name in ("steps", "batch", "warmup", "width", "depth", "levels", "latent_channels", "pixel_stages",
                 "eval_every", "ckpt_every", "val_crops", "threads", "seed"):
        parser.add_argument(f"--{name.replace('_', '-')}", type=int, default=getattr(defaults, name),
                            help=f"{helps[name]} (default {getattr(defaults, name)})")
    for name in ("lr", "lr_min", "clip", "synth_fraction"):
        parser.add_argument(f"--{name.replace('_', '-')}", type=float, default=getattr(defaults, name),
                            help=f"{helps[name]} (default {getattr(defaults, name)})")
    parser.add_argument("--no-bf16", dest="bf16", action="store_false", help="train in float32 (CPU only)")
    parser.add_argument("--minutes", type=float, default=0.0, help="stop after this many minutes (0: no limit)")
    parser.add_argument("--init-from", default="", metavar="WEIGHTS",
                        help="start a new run from shipped weights (edge/weights/bitswap.pt) or a checkpoint")
    add_device_arguments(parser)
    parser.add_argument("--export", metavar="OUT", help="only export CKPT/best.pt as fp16 weights to OUT")
    parser.add_argument("--latent-bins", type=int, default=256, help="with --export: latent bins the coder uses")


def run(args: argparse.Namespace) -> int:
    if args.export:
        info = export_weights(Path(args.ckpt_dir) / "best.pt", Path(args.export), args.latent_bins)
        print(f"exported step {info['step']} (val {info['best']:.4f} bits/sub-pixel) to {args.export}")
        return 0
    fields = {name: getattr(args, name) for name in LosslessTrainConfig.__dataclass_fields__}
    fields["data"] = fields["data"] or [str(wta_train_folder())]
    result = train(LosslessTrainConfig(**fields))
    print(json.dumps(result))
    return 0
