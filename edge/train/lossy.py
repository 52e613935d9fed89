"""`edge train lossy`: train the variable-rate HP+EASN-deep model on any folders of images.

Each step draws random crops (flipped, and by default recoloured: :func:`colour_jitter`) and a
random quality level per crop; the loss is bits per pixel + lambda[level] * 255^2 * MSE.

Validation codes 12 held-out crops at every level, as they are and recoloured, with an
exponential moving average of the weights (:func:`update_average`): with batches of two crops
the raw weights swing from step to step (the decoded colour drifts by several levels), so the
average is what is validated, kept as best.pt and exported.

Checkpoints (model, average, optimiser, step, best validation) go to ``--run-dir`` every few
minutes and training resumes from them, on either device (``--device``: a checkpoint written on a
GPU resumes on the CPU and the other way round). A blow-up (non-finite or exploding loss) reloads the
last good checkpoint and halves the learning rate.
"""
from __future__ import annotations

import argparse
import functools
import json
import logging
import math
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from edge.codec.lossy.model import LAMBDAS, LIKELIHOOD_MIN, HyperpriorEASN, LossyConfig, gaussian_likelihood
from edge.errors import EdgeError, InputError
from edge.registry import float_state
from edge.train.common import (LOSSY_FORMAT, add_device_arguments, add_run_arguments, adopt_validation,
                               autocast, batch_on_device, batches, checkpoint_to_export, exclusive_run,
                               loader_workers, on_device, read_shipped, resolve_device, save_checkpoint,
                               start_warmup, warmup_factor)
from edge.train.data import colour_jitter, list_images, random_crop, read_rgb, recoloured, split_paths

log = logging.getLogger(__name__)


# Which validation sets and weights the best score is over; a resumed run with others resets its best.
VALIDATION = "wta-heldout-12x256 + recoloured, averaged weights"
AVERAGE_DECAY = 0.999   # after its warm-up the average spans about the last thousand steps


class TrainingError(EdgeError):
    """Training cannot go on (it diverges whatever the learning rate)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("data", nargs="+", type=Path, help="folders of training images")
    add_run_arguments(parser, run_dir="runs/lossy", crop=192, lr=2e-4)
    parser.add_argument("--n", type=int, default=LossyConfig.n, help="filters of the transforms")
    parser.add_argument("--m", type=int, default=LossyConfig.m, help="channels of the first latent")
    parser.add_argument("--init-from", type=Path, metavar="WEIGHTS",
                        help="start a new run (no RUN_DIR/last.pt yet) from shipped weights, e.g. "
                             "edge/weights/hp_easn.pt; levels they lack are added")
    parser.add_argument("--no-colour-jitter", action="store_true",
                        help="train on the crops' own colours (default: permuted channels and saturation)")
    add_device_arguments(parser)


def run(args: argparse.Namespace) -> int:
    if args.export:
        digest = export_checkpoint(args.run_dir, args.export, args.export_from)
        print(f"{args.export}: sha256 {digest}")
        return 0
    train_lossy(
        data_dirs=args.data, run_dir=args.run_dir, steps=args.steps, minutes=args.minutes,
        crop=args.crop, batch=args.batch, lr=args.lr, threads=args.threads, bf16=args.bf16,
        config=LossyConfig(n=args.n, m=args.m), val_every=args.val_every,
        save_minutes=args.save_minutes, seed=args.seed, init_from=args.init_from,
        colour=not args.no_colour_jitter, device=args.device, workers=args.workers, warmup=args.warmup,
    )
    return 0


class CropSampler:
    """Holds decoded training images in memory and draws random crops from them."""

    def __init__(self, paths: list[Path], crop: int, seed: int, colour: bool = True):
        if not paths:
            raise InputError("no training images found")
        self.images = [read_rgb(p) for p in paths]
        self.crop = crop
        self.colour = colour
        self.rng = np.random.default_rng(seed)

    def batch(self, size: int, rng: np.random.Generator | None = None) -> torch.Tensor:
        """``size`` crops drawn with ``rng`` (a loader process's), else with the sampler's own."""
        rng = self.rng if rng is None else rng
        picks = rng.integers(0, len(self.images), size)
        crops = [random_crop(self.images[i], self.crop, rng) for i in picks]
        if self.colour:
            crops = [colour_jitter(crop, rng) for crop in crops]
        return to_tensor(np.stack(crops))


def to_tensor(crops: np.ndarray) -> torch.Tensor:
    """uint8 NHWC -> float NCHW in [0, 1], contiguous (see :func:`rate_distortion`)."""
    return torch.from_numpy(crops).permute(0, 3, 1, 2).contiguous().float() / 255.0


def fixed_validation_crops(paths: list[Path], crop: int, count: int = 12) -> torch.Tensor:
    rng = np.random.default_rng(1234)
    images = [read_rgb(p) for p in paths[:: max(1, len(paths) // count)][:count]]
    return to_tensor(np.stack([random_crop(image, crop, rng) for image in images]))


def recoloured_tensor(crops: torch.Tensor) -> torch.Tensor:
    """The validation crops in other colours (:func:`edge.train.data.recoloured`)."""
    return to_tensor(recoloured((crops.permute(0, 2, 3, 1) * 255).round().to(torch.uint8).numpy()))


# On the CPU inputs must be contiguous NCHW: torch 2.13's CPU bf16 convolution backward corrupts
# the heap on channels-last tensors (which a permuted HWC batch is). On a GPU they are channels-last.
def rate_distortion(model: HyperpriorEASN, x: torch.Tensor, levels: torch.Tensor, bf16: bool):
    with autocast(x.device, bf16):
        out = model(x, levels)
    pixels = x.shape[2] * x.shape[3]
    bits = -(torch.log2(out["y_likelihood"]).sum(dim=(1, 2, 3)) + torch.log2(out["z_likelihood"]).sum(dim=(1, 2, 3)))
    bpp = bits / pixels
    mse = (out["x_hat"].float().clamp(0, 1) - x).pow(2).mean(dim=(1, 2, 3))
    mse_train = (out["x_hat"].float() - x).pow(2).mean(dim=(1, 2, 3))
    return bpp, mse, mse_train


@torch.no_grad()
def validate(model: HyperpriorEASN, crops: torch.Tensor) -> dict:
    """Estimated bpp and PSNR per level, with rounding instead of noise (the coding path), in
    float32 on the model's device."""
    model.eval()
    crops = batch_on_device(crops, next(model.parameters()).device)
    result = {}
    y = model.g_a(crops)        # the analysis does not depend on the level: once for all of them
    for level in range(model.config.levels):
        gain, inv_gain = model.gains(level)
        y_hat = torch.round(y * gain)
        z_hat = torch.round(model.h_a(y_hat))
        scales = torch.exp(model.h_s(z_hat))
        # The coder sends far-out values as escapes; the same floor as in training stands in for them.
        y_likelihood = gaussian_likelihood(y_hat, scales).clamp_min(LIKELIHOOD_MIN)
        z_likelihood = model.prior_z.likelihood(z_hat).clamp_min(LIKELIHOOD_MIN)
        bits = -(torch.log2(y_likelihood).sum() + torch.log2(z_likelihood).sum())
        x_hat = model.g_s(y_hat * inv_gain).clamp(0, 1)
        x_hat = torch.round(x_hat * 255) / 255
        mse = (x_hat - crops).pow(2).mean().item()
        result[level] = {
            "bpp": round(bits.item() / (crops.shape[0] * crops.shape[2] * crops.shape[3]), 4),
            "psnr": round(10 * math.log10(1 / max(mse, 1e-12)), 3),
        }
    model.train()
    return result


def validation_sets(data_dirs) -> tuple[list[Path], torch.Tensor, torch.Tensor]:
    """(training paths, held-out crops, the same recoloured) of the images under ``data_dirs``."""
    paths = [p for folder in data_dirs for p in list_images(folder)]
    train_paths, val_paths = split_paths(paths)
    if not val_paths:  # folders without a known scene split: hold out every 10th image
        train_paths, val_paths = [p for i, p in enumerate(paths) if i % 10], paths[::10]
    val_crops = fixed_validation_crops(val_paths, 256)
    return train_paths, val_crops, recoloured_tensor(val_crops)


def validation_score(metrics: dict, colour_metrics: dict) -> float:
    """One score across levels and both sets (lower is better): mean PSNR minus a rate penalty
    keeps the whole curve honest."""
    both = [*metrics.values(), *colour_metrics.values()]
    return sum(m["bpp"] * 10 - m["psnr"] for m in both) / len(both)


def train_lossy(data_dirs, run_dir: Path, steps: int, minutes: float, crop: int, batch: int, lr: float,
                threads: int, bf16: bool, config: LossyConfig, val_every: int, save_minutes: float,
                seed: int, init_from: Path | None = None, colour: bool = True, device: str = "cpu",
                workers: int = -1, warmup: int = 500) -> Path:
    torch.set_num_threads(threads)
    device = resolve_device(device)
    bf16 = bf16 or device.type == "cuda"     # a GPU always trains under bf16 autocast
    workers = loader_workers(workers, device)
    torch.manual_seed(seed)
    with exclusive_run(run_dir):
        train_paths, val_crops, val_colour = validation_sets(data_dirs)
        log.info("lossy training on %s: %d training images, %d held-out crops", device, len(train_paths),
                 len(val_crops))
        sampler = CropSampler(train_paths, crop, seed, colour)
        stream = batches(functools.partial(sampler.batch, batch), seed, workers)

        model = on_device(HyperpriorEASN(config), device)
        average = on_device(HyperpriorEASN(config), device).eval()
        optimizer = torch.optim.Adam(model.parameters(), lr=lr)
        state = {"step": 0, "best_score": float("inf"), "lr": lr, "history": []}
        last = run_dir / "last.pt"
        if last.exists():
            state, added = load_checkpoint(last, model, optimizer, average)
            if added:   # scores over other levels do not compare
                state["best_score"] = float("inf")
            log.info("resumed from %s at step %d%s", last, state["step"], f" with {added} new levels" if added else "")
        elif init_from is not None:
            state["step"] = initialise_from_weights(model, init_from)
            start_warmup(state, warmup)
            log.info("started from the weights %s (step %d of their run), learning rate warmed up over %d steps",
                     init_from, state["step"], warmup)
        if not last.exists():   # a new average starts at the model (load_checkpoint restores or restarts it)
            average.load_state_dict(model.state_dict())
            state["averaged_steps"] = 0
        adopt_validation(state, VALIDATION)
        for group in optimizer.param_groups:
            group["lr"] = state["lr"]

        lambdas = torch.tensor(LAMBDAS, device=device)
        log_file = (run_dir / "train.log.jsonl").open("a")
        started = time.monotonic()
        last_save = started
        running = torch.full((config.levels,), float("nan"))  # running loss of each level
        bar = tqdm(total=steps, initial=state["step"], desc="lossy", mininterval=30, smoothing=0.05)
        while state["step"] < steps and not (minutes and time.monotonic() - started > minutes * 60):
            x = batch_on_device(next(stream) if stream is not None else sampler.batch(batch), device)
            levels = torch.randint(0, config.levels, (batch,))
            bpp, _, mse_train = rate_distortion(model, x, levels.to(device), bf16)
            sample_losses = bpp + lambdas[levels.to(device)] * 255**2 * mse_train
            loss = sample_losses.mean()
            # Levels' losses differ a hundredfold, so a blow-up is judged against the same level's past.
            if not torch.isfinite(loss) or bool((sample_losses.detach().cpu() > 50 * running[levels]).any()):
                log.warning("step %d: loss %.3g blew up; reloading the last checkpoint, halving the lr",
                            state["step"], loss.item())
                if last.exists():
                    load_checkpoint(last, model, optimizer, average)
                state["lr"] /= 2
                if state["lr"] < lr / 1000:
                    raise TrainingError(f"training keeps blowing up (lr now {state['lr']:.2g}); "
                                        f"inspect {run_dir} and restart with a lower --lr")
                for group in optimizer.param_groups:
                    group["lr"] = state["lr"]
                running[:] = float("nan")
                continue
            for group in optimizer.param_groups:
                group["lr"] = state["lr"] * warmup_factor(state)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            update_average(average, model, state)
            for level, value in zip(levels.tolist(), sample_losses.detach().cpu().tolist()):
                before = running[level]
                running[level] = value if torch.isnan(before) else 0.98 * before + 0.02 * value
            state["step"] += 1
            bar.update(1)
            bar.set_postfix(loss=f"{running.nanmean():.3f}", bpp=f"{bpp.mean().item():.3f}", refresh=False)

            if state["step"] % val_every == 0:
                metrics, colour_metrics = validate(average, val_crops), validate(average, val_colour)
                score = validation_score(metrics, colour_metrics)
                record = {"step": state["step"], "time": time.time(), "loss": running.nanmean().item(),
                          "lr": state["lr"], "device": device.type, "val": metrics, "val_colour": colour_metrics}
                log_file.write(json.dumps(record) + "\n")
                log_file.flush()
                log.info("step %d loss %.4f val %s", state["step"], running.nanmean().item(), metrics)
                if score < state["best_score"]:
                    state["best_score"] = score
                    torch.save({"model": average.state_dict(), "config": config.__dict__, "state": state,
                                "metrics": metrics, "colour_metrics": colour_metrics}, run_dir / "best.pt")
            if time.monotonic() - last_save > save_minutes * 60 or state["step"] == steps:
                save_checkpoint(last, model, optimizer, state, config, average=average.state_dict())
                last_save = time.monotonic()
        save_checkpoint(last, model, optimizer, state, config, average=average.state_dict())
        bar.close()
        return last


def load_checkpoint(path: Path, model: HyperpriorEASN, optimizer,
                    average: HyperpriorEASN) -> tuple[dict, int]:
    """Load ``path`` into model, optimiser and average, adding quality levels it lacks; (state, levels added).

    A checkpoint without an average, or with fewer levels, restarts the average at the model.
    """
    checkpoint = torch.load(path, map_location="cpu", weights_only=False)   # written on either device
    added = add_levels(checkpoint, model.config.levels, [name for name, _ in model.named_parameters()])
    model.load_state_dict(checkpoint["model"])
    optimizer.load_state_dict(checkpoint["optimizer"])
    state = checkpoint["state"]
    if "average" in checkpoint and not added:
        average.load_state_dict(checkpoint["average"])
    else:
        average.load_state_dict(model.state_dict())
        state["averaged_steps"] = 0
    return state, added


@torch.no_grad()
def update_average(average: HyperpriorEASN, model: HyperpriorEASN, state: dict) -> None:
    """One step of the exponential moving average; its first steps follow the model closely."""
    state["averaged_steps"] = state.get("averaged_steps", 0) + 1
    decay = min(AVERAGE_DECAY, (1 + state["averaged_steps"]) / (10 + state["averaged_steps"]))
    for kept, current in zip(average.parameters(), model.parameters()):
        kept.lerp_(current, 1 - decay)


def initialise_from_weights(model: HyperpriorEASN, path: Path) -> int:
    """Load shipped (fp16) weights into ``model``, adding levels they lack; their run's step."""
    payload = read_shipped(path, LOSSY_FORMAT)
    if {k: v for k, v in payload["config"].items() if k != "levels"} != \
            {k: v for k, v in model.config.__dict__.items() if k != "levels"}:
        raise InputError(f"weights of a different shape ({payload['config']}) than the model "
                         f"({model.config.__dict__})", str(path))
    checkpoint = {"model": float_state(payload["state_dict"]),
                  "optimizer": {"state": {}}, "config": dict(payload["config"])}
    add_levels(checkpoint, model.config.levels, [name for name, _ in model.named_parameters()])
    model.load_state_dict(checkpoint["model"])     # copies onto the model's device
    return int(payload.get("info", {}).get("step", 0) or 0)


def add_levels(checkpoint: dict, levels: int, parameter_names: list[str]) -> int:
    """Extend a checkpoint with fewer quality levels to ``levels``; returns how many were added.

    New gains continue the geometric progression of the top two levels, and their Adam moments
    start at zero, so training refines them from a sensible start instead of from scratch.
    """
    weights = checkpoint["model"]
    old = weights["log_gain"].shape[0]
    if old >= levels:
        return 0
    for name in ("log_gain", "log_inv_gain"):
        rows = weights[name]
        step = rows[-1] - rows[-2]
        weights[name] = torch.cat([rows, rows[-1] + step * torch.arange(1, levels - old + 1)[:, None]])
    # Adam keeps per-parameter moments keyed by the parameter's position; pad those of the gains.
    for index, moments in checkpoint["optimizer"]["state"].items():
        if parameter_names[index] in ("log_gain", "log_inv_gain"):
            for key in ("exp_avg", "exp_avg_sq"):
                extra = torch.zeros(levels - old, moments[key].shape[1])
                moments[key] = torch.cat([moments[key], extra])
    checkpoint["config"]["levels"] = levels
    return levels - old


def export_checkpoint(run_dir: Path, weights: Path, source: str = "best") -> str:
    """Shipped weights from the checkpoint ``source`` names (:func:`checkpoint_to_export`); their SHA-256."""
    # Imported here: it needs the entropy coder (constriction), which a training
    # machine need not have (scripts/gpu_burst.sh); only the export uses it.
    from edge.codec.lossy.weights import export_weights

    path, checkpoint = checkpoint_to_export(run_dir, source)
    model = HyperpriorEASN(LossyConfig(**checkpoint["config"]))
    model.load_state_dict(checkpoint.get("average", checkpoint["model"]))   # best.pt's model is the average
    info = {"checkpoint": path.name, "step": checkpoint["state"]["step"], "validation": checkpoint.get("metrics")}
    return export_weights(model, weights, info)
