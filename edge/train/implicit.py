"""`edge train implicit`: train the mask-conditioned implicit ROI codec (or its explicit baseline).

Data: a wta-train style folder (images/ + masks/) and synthetic frames with their blade masks
(edge.synth). wta-train validation holds out the scenes of edge.segment.dataset.WTA_HELD_OUT.
Images are kept at ``--scale`` of their size in memory; crops are drawn around the blade
outline more often than at random, since the outline is where the two decoders meet, and by
default recoloured (channel order, saturation: photos are mostly sky, sea and white paint, and
a coder trained on them alone shifts every other colour). Validation codes the held-out crops
as they are and recoloured.

Loss per crop, at a random quality level q (variable rate through gain units)::

    bpp + LAMBDAS[q] * 255^2 * (D_fg + bg_weight * D_bg + k1 * P_bg + k2 * S_bg)

D_fg, D_bg: squared error over blade / background pixels, divided by all pixels (so a crop's
terms add up to its MSE when bg_weight = 1). P_bg, S_bg: perceptual and style (Gram) terms
on the background decoder's output, computed on the features of a fixed random-weight
convolution network (no pretrained VGG can be downloaded here; see :class:`RandomFeatures`).
Checkpoints go to ``--run-dir`` every few minutes and training resumes from them, on either
device (``--device``); the best validation checkpoint is kept apart; a blow-up reloads the last
checkpoint at half the lr. ``--init-from`` starts a new run from shipped weights
(edge/weights/implicit_roi.pt).
"""
from __future__ import annotations

import argparse
import functools
import json
import logging
import math
import time
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from edge.codec.implicit.model import LAMBDAS, ImplicitConfig, ImplicitROI, gaussian_likelihood
from edge.codec.lossy.model import LIKELIHOOD_MIN
from edge.errors import EdgeError, InputError
from edge.registry import float_state
from edge.segment.dataset import is_held_out, list_frames, read_mask, read_rgb
from edge.synth import render_frame
from edge.train.common import (IMPLICIT_FORMAT, add_device_arguments, add_run_arguments, adopt_validation,
                               autocast, batch_on_device, batches, checkpoint_to_export, exclusive_run,
                               loader_workers, on_device, read_shipped, resolve_device, save_checkpoint,
                               start_warmup, warmup_factor)
from edge.train.data import colour_jitter, recoloured

log = logging.getLogger(__name__)

K_PERCEPTUAL = 0.1   # k1 of the paper
K_STYLE = 0.02       # k2 of the paper
MASK_CELL = 16       # the coded mask's cell size (edge.codec.implicit.coder.MASK_CELL)
# Which validation sets the best score is over; a resumed run with others resets its best.
VALIDATION = "wta-heldout-8x256 + recoloured"


class TrainingError(EdgeError):
    """Training cannot go on (it diverges whatever the learning rate)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("data", type=Path, help="folder with images/ and masks/ (wta-train layout)")
    add_run_arguments(parser, run_dir="runs/implicit", crop=128, lr=1e-4)
    parser.add_argument("--explicit", action="store_true", help="train the explicit baseline (hard latent gate)")
    parser.add_argument("--synthetic", type=int, default=40, help="synthetic frames to add to the training set")
    parser.add_argument("--scale", type=float, default=0.5, help="resize training images by this factor")
    parser.add_argument("--n", type=int, default=ImplicitConfig.n, help="filters of the transforms")
    parser.add_argument("--m", type=int, default=ImplicitConfig.m, help="channels of the latent")
    parser.add_argument("--bg-weight", type=float, default=0.1, help="weight of background distortion")
    parser.add_argument("--no-colour-jitter", action="store_true",
                        help="train on the crops' own colours (default: permuted channels and saturation)")
    parser.add_argument("--init-from", type=Path, metavar="WEIGHTS",
                        help="start a new run (no RUN_DIR/last.pt yet) from shipped weights, e.g. "
                             "edge/weights/implicit_roi.pt; the model takes their shape (--n, --m, "
                             "--explicit are ignored)")
    add_device_arguments(parser)


def run(args: argparse.Namespace) -> int:
    if args.export:
        digest = export_checkpoint(args.run_dir, args.export, args.export_from)
        print(f"{args.export}: sha256 {digest}")
        return 0
    config = ImplicitConfig(n=args.n, m=args.m, explicit=args.explicit)
    if args.init_from is not None:      # the run has the shape of the weights it started from
        config = ImplicitConfig(**read_shipped(args.init_from, IMPLICIT_FORMAT)["config"])
    train_implicit(args.data, args.run_dir, config, steps=args.steps, minutes=args.minutes, crop=args.crop,
                   batch=args.batch, lr=args.lr, threads=args.threads, bf16=args.bf16,
                   scale=args.scale, synthetic=args.synthetic, bg_weight=args.bg_weight,
                   val_every=args.val_every, save_minutes=args.save_minutes, seed=args.seed,
                   colour=not args.no_colour_jitter, init_from=args.init_from, device=args.device,
                   workers=args.workers, warmup=args.warmup)
    return 0


# -- data --------------------------------------------------------------------------------------
def load_pairs(data_dir: Path, scale: float) -> tuple[list, list]:
    """(training, validation) lists of (RGB uint8, mask bool) at ``scale``."""
    train, val = [], []
    for frame in list_frames(data_dir):
        image = read_rgb(frame.image_path)
        mask = read_mask(frame.mask_path, image.shape[:2])
        if scale != 1:
            size = (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))
            image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
            mask = cv2.resize(mask.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST) > 0
        (val if is_held_out(frame.name) else train).append((image, mask))
    if not train or not val:
        raise InputError("need both training and held-out frames (wta-train names)", str(data_dir))
    return train, val


def synthetic_pairs(count: int, cache: Path) -> list:
    """``count`` synthetic frames (640x360) with masks, rendered once and cached in ``cache``."""
    if count <= 0:
        return []
    if cache.exists():
        data = np.load(cache)
        if len(data["images"]) >= count:
            return list(zip(data["images"][:count], data["masks"][:count]))
    pairs = [render_frame((640, 360), 10_000 + i, kind="far" if i % 4 == 3 else "closeup") for i in range(count)]
    np.savez(cache, images=np.stack([p[0] for p in pairs]), masks=np.stack([p[1] for p in pairs]))
    return pairs


def _outline(mask: np.ndarray) -> np.ndarray:
    """(k, 2) coordinates of blade pixels next to a background pixel."""
    eroded = cv2.erode(mask.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    return np.argwhere(mask & ~eroded)


class CropSampler:
    """Random crops of (image, mask); half of them centred near the blade outline; with
    ``colour``, recoloured as the lossy trainer's (:func:`edge.train.data.colour_jitter`)."""

    def __init__(self, pairs: list, crop: int, seed: int, colour: bool = False):
        self.pairs = [(_pad(image, crop), _pad(mask, crop)) for image, mask in pairs]
        self.outlines = [_outline(mask) for _, mask in self.pairs]
        self.crop = crop
        self.colour = colour
        self.rng = np.random.default_rng(seed)

    def one(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        image, mask = self.pairs[index]
        h, w = mask.shape
        outline = self.outlines[index]
        if len(outline) and self.rng.random() < 0.5:
            cy, cx = outline[self.rng.integers(len(outline))]
            top = int(np.clip(cy - self.crop // 2 + self.rng.integers(-16, 17), 0, h - self.crop))
            left = int(np.clip(cx - self.crop // 2 + self.rng.integers(-16, 17), 0, w - self.crop))
        else:
            top, left = int(self.rng.integers(0, h - self.crop + 1)), int(self.rng.integers(0, w - self.crop + 1))
        window = (slice(top, top + self.crop), slice(left, left + self.crop))
        image, mask = image[window], mask[window]
        if self.rng.random() < 0.5:
            image, mask = image[:, ::-1], mask[:, ::-1]
        if self.colour:
            image = colour_jitter(image, self.rng)
        return image, mask

    def batch(self, size: int, rng: np.random.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``size`` crops drawn with ``rng`` (a loader process's), else with the sampler's own."""
        if rng is not None:
            self.rng = rng           # a loader process's own copy of the sampler
        picks = [self.one(int(i)) for i in self.rng.integers(0, len(self.pairs), size)]
        return to_tensors(np.stack([p[0] for p in picks]), np.stack([p[1] for p in picks]))


def _pad(array: np.ndarray, size: int) -> np.ndarray:
    pad_h, pad_w = max(0, size - array.shape[0]), max(0, size - array.shape[1])
    if pad_h or pad_w:
        array = np.pad(array, ((0, pad_h), (0, pad_w)) + ((0, 0),) * (array.ndim - 2), mode="symmetric")
    return array


def to_tensors(images: np.ndarray, masks: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 (B, H, W, 3) + bool (B, H, W) -> contiguous float NCHW tensors in [0, 1].

    The mask becomes what a decoder gets from a bundle: cells of MASK_CELL pixels, blade when
    any of their pixels is (edge.codec.implicit.coder.MASK_CELL), aligned with the crop.
    """
    # Contiguous NCHW: torch's CPU bf16 convolution backward misbehaves on channels-last input.
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).contiguous().float() / 255.0
    m = torch.from_numpy(np.ascontiguousarray(masks)).float()[:, None].contiguous()
    cells = F.max_pool2d(m, MASK_CELL, ceil_mode=True)
    m = F.interpolate(cells, scale_factor=MASK_CELL, mode="nearest")[..., : m.shape[2], : m.shape[3]]
    return x, m.contiguous()


def validation_crops(pairs: list, crop: int = 256, count: int = 8,
                     recolour: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Fixed crops of held-out frames, each centred on the blade outline when there is one;
    with ``recolour``, the same crops in other colours (:func:`edge.train.data.recoloured`)."""
    sampler = CropSampler(pairs[:: max(1, len(pairs) // count)][:count], crop, seed=1234)
    sampler.rng = np.random.default_rng(1234)
    picks = []
    for index in range(len(sampler.pairs)):
        outline = sampler.outlines[index]
        image, mask = sampler.pairs[index]
        h, w = mask.shape
        cy, cx = outline[len(outline) // 2] if len(outline) else (h // 2, w // 2)
        top, left = int(np.clip(cy - crop // 2, 0, h - crop)), int(np.clip(cx - crop // 2, 0, w - crop))
        picks.append((image[top: top + crop, left: left + crop], mask[top: top + crop, left: left + crop]))
    images = np.stack([p[0] for p in picks])
    return to_tensors(recoloured(images) if recolour else images, np.stack([p[1] for p in picks]))


# -- the VGG substitute ------------------------------------------------------------------------
class RandomFeatures(nn.Module):
    """Fixed random-weight convolution features standing in for pretrained VGG.

    Pretrained VGG weights cannot be downloaded here. Random-weight convolution networks are
    known to capture texture statistics well enough for style losses (Ustyuzhaninov et al.,
    ICLR 2017; He, Wang and Hopcroft, NeurIPS 2016). The seed is fixed, so the loss is the
    same at every resume; the weights are not trained and not shipped.
    """

    def __init__(self, seed: int = 7, widths=(32, 64, 96)):
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        cin = 3
        for index, width in enumerate(widths):   # buffers: they move with .to(device), never train
            weight = torch.randn(width, cin, 3, 3, generator=generator) * math.sqrt(2.0 / (cin * 9))
            self.register_buffer(f"weight{index}", weight, persistent=False)
            cin = width
        self.count = len(widths)
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406])[None, :, None, None], persistent=False)

    @property
    def weights(self) -> list[torch.Tensor]:
        return [getattr(self, f"weight{index}") for index in range(self.count)]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        features, f = [], x - self.mean
        for index, weight in enumerate(self.weights):
            if index:
                f = F.avg_pool2d(f, 2)
            f = F.relu(F.conv2d(f, weight, padding=1))
            features.append(f)
        return features


def gram(f: torch.Tensor) -> torch.Tensor:
    b, c, h, w = f.shape
    flat = f.reshape(b, c, h * w)
    return flat @ flat.transpose(1, 2) / (h * w)


def background_terms(features: RandomFeatures, x_b: torch.Tensor, x: torch.Tensor, mask: torch.Tensor):
    """Per-image perceptual and style distances of the background decoder on background pixels."""
    background = 1 - mask
    ours, theirs = features(x_b * background), features(x * background)
    perceptual = sum((a - b).pow(2).mean(dim=(1, 2, 3)) for a, b in zip(ours, theirs))
    style = sum((gram(a) - gram(b)).pow(2).mean(dim=(1, 2)) for a, b in zip(ours, theirs))
    return perceptual, style


# -- loss and validation -----------------------------------------------------------------------
def loss_terms(model: ImplicitROI, features: RandomFeatures, x, mask, levels, bg_weight: float, bf16: bool):
    with autocast(x.device, bf16):
        out = model(x, mask, levels)
    pixels = x.shape[2] * x.shape[3]
    bpp = (out["y_bits"] + out["z_bits"]) / pixels
    error = (out["x_hat"].float() - x).pow(2).mean(dim=1, keepdim=True)
    d_fg = (error * mask).mean(dim=(1, 2, 3))
    d_bg = (error * (1 - mask)).mean(dim=(1, 2, 3))
    perceptual, style = background_terms(features, out["x_b"].float(), x, mask)
    distortion = d_fg + bg_weight * (d_bg + K_PERCEPTUAL * perceptual + K_STYLE * style)
    return bpp, distortion, {"d_fg": d_fg.mean().item(), "d_bg": d_bg.mean().item()}


def _psnr(mse: float) -> float:
    return round(10 * math.log10(1 / max(mse, 1e-12)), 3)


@torch.no_grad()
def validate(model: ImplicitROI, x: torch.Tensor, mask: torch.Tensor) -> dict:
    """Estimated bpp, ROI / background / whole PSNR per level, with rounding (the coding path), in
    float32 on the model's device."""
    model.eval()
    device = next(model.parameters()).device
    x, mask = batch_on_device(x, device), batch_on_device(mask, device)
    result = {}
    for level in range(model.config.levels):
        gain, inv_gain = model.gains(level)
        y_hat = torch.round(model.g_a(x, mask) * gain)
        gate = model.gate(mask, y_hat.shape)
        if gate is not None:
            y_hat = y_hat * gate
        z_hat = torch.round(model.h_a(y_hat))
        mean, log_scale = model.context(model.h_s(z_hat), y_hat)
        y_bits = -torch.log2(gaussian_likelihood(y_hat, torch.round(mean), torch.exp(log_scale.clamp(max=8.0)))
                             .clamp_min(LIKELIHOOD_MIN))
        if gate is not None:
            y_bits = y_bits * gate
        z_bits = -torch.log2(model.prior_z.likelihood(z_hat).clamp_min(LIKELIHOOD_MIN))
        x_hat = torch.round(model.synthesize(y_hat * inv_gain, mask)["x_hat"].clamp(0, 1) * 255) / 255
        error = (x_hat - x).pow(2).mean(dim=1, keepdim=True)
        roi = mask.sum().item()
        result[level] = {
            "bpp": round((y_bits.sum() + z_bits.sum()).item() / (x.shape[0] * x.shape[2] * x.shape[3]), 4),
            "roi_psnr": _psnr((error * mask).sum().item() / max(roi, 1)),
            "bg_psnr": _psnr((error * (1 - mask)).sum().item() / max(mask.numel() - roi, 1)),
            "psnr": _psnr(error.mean().item()),
        }
    model.train()
    return result


# -- the loop ----------------------------------------------------------------------------------
def validation_score(metrics: dict, colour_metrics: dict) -> float:
    """One score over both sets (lower is better): ROI PSNR is what we sell, bits are what it costs."""
    both = [*metrics.values(), *colour_metrics.values()]
    return sum(m["bpp"] * 10 - m["roi_psnr"] for m in both) / len(both)


def initialise_from_weights(model: ImplicitROI, path: Path) -> int:
    """Load shipped (fp16) weights into ``model``; their run's step. InputError on another shape."""
    payload = read_shipped(path, IMPLICIT_FORMAT)
    if payload["config"] != model.config.__dict__:
        raise InputError(f"weights of a different shape ({payload['config']}) than the model "
                         f"({model.config.__dict__})", str(path))
    model.load_state_dict(float_state(payload["state_dict"]))
    return int(payload.get("info", {}).get("step", 0) or 0)


def train_implicit(data_dir: Path, run_dir: Path, config: ImplicitConfig, steps: int, minutes: float, crop: int,
                   batch: int, lr: float, threads: int, bf16: bool, scale: float, synthetic: int,
                   bg_weight: float, val_every: int, save_minutes: float, seed: int, colour: bool = True,
                   init_from: Path | None = None, device: str = "cpu", workers: int = -1,
                   warmup: int = 500) -> Path:
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    device = resolve_device(device)
    bf16 = bf16 or device.type == "cuda"     # a GPU always trains under bf16 autocast
    workers = loader_workers(workers, device)
    with exclusive_run(run_dir):
        train_pairs, val_pairs = load_pairs(data_dir, scale)
        train_pairs += synthetic_pairs(synthetic, run_dir / "synthetic.npz")
        log.info("implicit training (%s) on %s: %d training and %d held-out frames",
                 "explicit" if config.explicit else "implicit", device, len(train_pairs), len(val_pairs))
        sampler = CropSampler(train_pairs, crop, seed, colour)
        stream = batches(functools.partial(sampler.batch, batch), seed, workers)
        val_x, val_mask = validation_crops(val_pairs)
        val_colour_x, _ = validation_crops(val_pairs, recolour=True)
        features = on_device(RandomFeatures(), device)

        model = on_device(ImplicitROI(config), device)
        optimizer = torch.optim.Adam(model.parameters(), lr=lr)
        state = {"step": 0, "best_score": float("inf"), "lr": lr, "seconds": 0.0}
        last = run_dir / "last.pt"
        if last.exists():
            checkpoint = torch.load(last, map_location="cpu", weights_only=False)   # written on either device
            if checkpoint["config"] != config.__dict__:
                raise InputError(f"checkpoint was trained with {checkpoint['config']}, not {config.__dict__}",
                                 str(last))
            model.load_state_dict(checkpoint["model"])
            optimizer.load_state_dict(checkpoint["optimizer"])
            state = checkpoint["state"]
            log.info("resumed from %s at step %d", last, state["step"])
        elif init_from is not None:
            state["step"] = initialise_from_weights(model, init_from)
            start_warmup(state, warmup)
            log.info("started from the weights %s (step %d of their run), learning rate warmed up over %d steps",
                     init_from, state["step"], warmup)
        adopt_validation(state, VALIDATION)
        for group in optimizer.param_groups:
            group["lr"] = state["lr"]

        lambdas = torch.tensor(LAMBDAS, device=device)
        log_file = (run_dir / "train.log.jsonl").open("a")
        started = time.monotonic()
        last_save = started
        running = None
        bar = tqdm(total=steps, initial=state["step"], desc="implicit", mininterval=30, smoothing=0.05)
        while state["step"] < steps and not (minutes and time.monotonic() - started > minutes * 60):
            step_started = time.monotonic()
            x, mask = next(stream) if stream is not None else sampler.batch(batch)
            x, mask = batch_on_device(x, device), batch_on_device(mask, device)
            levels = torch.randint(0, config.levels, (batch,)).to(device)
            bpp, distortion, parts = loss_terms(model, features, x, mask, levels, bg_weight, bf16)
            loss = (bpp + lambdas[levels] * 255**2 * distortion).mean()
            if not torch.isfinite(loss) or (running is not None and loss.item() > 50 * running):
                log.warning("step %d: loss %.3g blew up; reloading the last checkpoint, halving the lr",
                            state["step"], loss.item())
                if last.exists():
                    checkpoint = torch.load(last, map_location="cpu", weights_only=False)
                    model.load_state_dict(checkpoint["model"])
                    optimizer.load_state_dict(checkpoint["optimizer"])
                state["lr"] /= 2
                if state["lr"] < lr / 1000:
                    raise TrainingError(f"training keeps blowing up (lr now {state['lr']:.2g}); "
                                        f"inspect {run_dir} and restart with a lower --lr")
                for group in optimizer.param_groups:
                    group["lr"] = state["lr"]
                running = None
                continue
            for group in optimizer.param_groups:
                group["lr"] = state["lr"] * warmup_factor(state)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            running = loss.item() if running is None else 0.98 * running + 0.02 * loss.item()
            state["step"] += 1
            state["seconds"] += time.monotonic() - step_started
            bar.update(1)
            bar.set_postfix(loss=f"{running:.3f}", bpp=f"{bpp.mean().item():.3f}", refresh=False)

            if state["step"] % val_every == 0:
                metrics, colour_metrics = validate(model, val_x, val_mask), validate(model, val_colour_x, val_mask)
                score = validation_score(metrics, colour_metrics)
                record = {"step": state["step"], "time": time.time(), "train_seconds": round(state["seconds"]),
                          "loss": running, "lr": state["lr"], "device": device.type, **parts, "val": metrics, "val_colour": colour_metrics}
                log_file.write(json.dumps(record) + "\n")
                log_file.flush()
                log.info("step %d loss %.4f val %s", state["step"], running, metrics)
                if score < state["best_score"]:
                    state["best_score"] = score
                    torch.save({"model": model.state_dict(), "config": config.__dict__, "state": state,
                                "metrics": metrics}, run_dir / "best.pt")
            if time.monotonic() - last_save > save_minutes * 60 or state["step"] == steps:
                save_checkpoint(last, model, optimizer, state, config)
                last_save = time.monotonic()
        save_checkpoint(last, model, optimizer, state, config)
        bar.close()
        return last


def export_checkpoint(run_dir: Path, weights: Path, source: str = "best") -> str:
    """Shipped weights from the checkpoint ``source`` names (:func:`checkpoint_to_export`); their SHA-256."""
    # Imported here: it needs the entropy coder (constriction), which a training
    # machine need not have (scripts/gpu_burst.sh); only the export uses it.
    from edge.codec.implicit.weights import export_weights

    path, checkpoint = checkpoint_to_export(run_dir, source)
    model = ImplicitROI(ImplicitConfig(**checkpoint["config"]))
    model.load_state_dict(checkpoint["model"])
    state = checkpoint["state"]
    info = {"checkpoint": path.name, "step": state["step"], "train_seconds": round(state.get("seconds", 0)),
            "validation": checkpoint.get("metrics")}
    return export_weights(model, weights, info)
