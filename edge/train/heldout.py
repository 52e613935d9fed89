"""Each model's held-out score, with its own trainer's validation code, for any weights file.

A weights file is either shipped weights (edge/weights/*.pt: fp16 state dict and config) or a
training checkpoint of that model's trainer (``model`` and its config). Every score is lower-is-
better, so that `edge train all` and `edge train promote` compare models of every kind alike:

- lossy (HP+EASN-deep): the lossy trainer's score over 12 held-out crops, as they are and
  recoloured, every quality level: mean of 10 * bpp - PSNR (dB);
- implicit (implicit-roi): the implicit trainer's score, the same with ROI PSNR;
- lossless (Bit-swap): negative ELBO in bits per sub-pixel over fixed held-out 64x64 crops;
- seg (BU-Netv2): minus the mean F1 over the held-out frames with a blade.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from edge.codec.bitswap.model import BitswapConfig, BitswapVAE
from edge.codec.implicit.model import ImplicitConfig, ImplicitROI
from edge.codec.lossy.model import HyperpriorEASN, LossyConfig
from edge.errors import InputError
from edge.registry import float_state
from edge.segment.unet import load_weights
from edge.train import implicit, lossless, lossy, seg
from edge.train.common import IMPLICIT_FORMAT, LOSSY_FORMAT, on_device, read_shipped

KINDS = ("lossy", "lossless", "implicit", "seg")
# The shipped weights and model card of each kind, under edge/weights/.
SHIPPED = {"lossy": "hp_easn", "lossless": "bitswap", "implicit": "implicit_roi", "seg": "bunetv2"}


@dataclass
class DataFolders:
    """Where each model's images are: a wta-train folder (images/, masks/) serves every model;
    a packed set (scripts/gpu_burst.sh pack) has whole frames at a reduced size for the
    segmentation network and full-resolution crops for the coders."""
    frames: Path            # whole frames with masks (seg)
    crops: Path             # images/ (+ masks/) at full resolution (lossy, lossless, implicit)
    implicit_scale: float   # the implicit trainer's --scale for ``crops``
    synth: Path | None = None   # an `edge synth` inspection, extra training frames (lossy, seg)

    @classmethod
    def of(cls, data: Path, synth: Path | None = None) -> "DataFolders":
        data = Path(data)
        if not data.is_dir():
            raise InputError("no such data folder", str(data))
        pack = data / "pack.json"
        if pack.exists():
            layout = json.loads(pack.read_text())
            synth = synth or (data / layout["synth"] if layout.get("synth") and (data / layout["synth"]).is_dir()
                              else None)
            return cls(data / layout["frames"], data / layout["crops"], float(layout.get("implicit_scale", 1.0)),
                       synth)
        if not (data / "images").is_dir():
            raise InputError("neither a wta-train folder (images/, masks/) nor a packed set (pack.json)", str(data))
        return cls(data, data, 0.5, synth)


@dataclass
class Score:
    value: float            # lower is better
    metrics: dict           # the trainer's own validation numbers
    step: int               # of the weights' run


def load_model(kind: str, path: Path) -> tuple[torch.nn.Module, int, dict]:
    """(float32 model on the CPU in eval mode, its run's step, its config) from shipped weights or a
    training checkpoint of ``kind``."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"no {kind} weights here", str(path))
    payload = torch.load(path, map_location="cpu", weights_only=False)
    shipped = isinstance(payload, dict) and "state_dict" in payload
    if kind == "lossy":
        if shipped:
            payload = read_shipped(path, LOSSY_FORMAT)
            config, state, step = payload["config"], payload["state_dict"], payload.get("info", {}).get("step", 0)
        else:   # a checkpoint: its weight average is what the trainer validates and exports
            config, state, step = payload["config"], payload.get("average", payload["model"]), payload["state"]["step"]
        model = HyperpriorEASN(LossyConfig(**config))
    elif kind == "implicit":
        if shipped:
            payload = read_shipped(path, IMPLICIT_FORMAT)
            config, state, step = payload["config"], payload["state_dict"], payload.get("info", {}).get("step", 0)
        else:
            config, state, step = payload["config"], payload["model"], payload["state"]["step"]
        model = ImplicitROI(ImplicitConfig(**config))
    elif kind == "lossless":
        loaded = lossless.init_state(path)
        config, state, step = loaded["model_config"], loaded["model"], loaded.get("step", 0)
        model = BitswapVAE(BitswapConfig(**config))
    elif kind == "seg":
        if shipped:         # the registry's loader knows every segmentation network's file
            config = {**payload["config"], "arch": payload.get("arch", "bunetv2")}
            return load_weights(path).eval(), int(payload.get("step", 0)), config
        model, step, config = _seg_model(payload)
        state = payload["model"]
    else:
        raise InputError(f"unknown model kind {kind!r} (known: {', '.join(KINDS)})", str(path))
    model.load_state_dict(float_state(state))
    return model.eval(), int(step or 0), dict(config)


def _seg_model(payload: dict):
    """(network, step, config) of a segmentation training checkpoint."""
    config = payload["config"]          # the segmentation trainer's config
    fields = {k: v for k, v in config.items() if k in seg.SegTrainConfig.__dataclass_fields__}
    return seg.build_model(seg.SegTrainConfig(**fields)), int(payload.get("step", 0)), config


def score(kind: str, model: torch.nn.Module, data: DataFolders, device: torch.device,
          val_crops: int = 256) -> Score:
    """``model``'s held-out score on ``data`` with ``kind``'s trainer's validation code, on ``device``.
    ``val_crops``: Bit-swap's validation crops (its trainer's default 256)."""
    model = on_device(model, device).eval()
    if kind == "lossy":
        _, crops, colour = lossy.validation_sets(_lossy_dirs(data, with_synth=False))
        metrics, colour_metrics = lossy.validate(model, crops), lossy.validate(model, colour)
        result = Score(lossy.validation_score(metrics, colour_metrics),
                       {"val": metrics, "val_colour": colour_metrics}, 0)
    elif kind == "implicit":
        _, val_pairs = implicit.load_pairs(data.crops, data.implicit_scale)
        x, mask = implicit.validation_crops(val_pairs)
        colour_x, _ = implicit.validation_crops(val_pairs, recolour=True)
        metrics, colour_metrics = implicit.validate(model, x, mask), implicit.validate(model, colour_x, mask)
        result = Score(implicit.validation_score(metrics, colour_metrics),
                       {"val": metrics, "val_colour": colour_metrics}, 0)
    elif kind == "lossless":
        frames = lossless.load_frames([str(data.crops)], held_out=True)
        crops = lossless.random_crops(frames, val_crops, model.config.patch_size, np.random.default_rng(99))
        metrics = lossless.validate(model, crops)
        result = Score(metrics["bpsp"], metrics, 0)
    elif kind == "seg":
        config = seg.SegTrainConfig(data=[str(data.frames)], long_side=model.config.input_long_side)
        samples = seg.load_samples(config, held_out=True)
        if not samples:
            raise InputError("no held-out frames for the segmentation network", str(data.frames))
        metrics = seg.validate(model, samples, config.long_side)
        result = Score(-metrics["f1_all"], metrics, 0)
    else:
        raise InputError(f"unknown model kind {kind!r} (known: {', '.join(KINDS)})", str(data.crops))
    model.cpu()
    return result


def score_file(kind: str, path: Path, data: DataFolders, device: torch.device, val_crops: int = 256) -> Score:
    model, step, _ = load_model(kind, path)
    result = score(kind, model, data, device, val_crops)
    result.step = step
    return result


def _lossy_dirs(data: DataFolders, with_synth: bool = True) -> list[Path]:
    dirs = [data.crops / "images"]
    return dirs + [data.synth] if with_synth and data.synth is not None else dirs
