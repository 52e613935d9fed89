"""BU-Netv2+P on one blade surface: U-Net -> hole fill -> per-surface forest -> hole fill.

::

    photo --downscale--> BU-Netv2 x 4 flips --average--> p_unet (network size)
      p_unet --upscale to work size--> >= tau_BU --> mask "unet"
      "unet" --hole_fill--> "fill"                (labels for the forest)
      forest(photos of the surface, "fill") --> p_forest; vote(p_unet, p_forest) >= 0.37 --> "forest"
      "forest" --hole_fill--> "final" --upscale--> photo size
      p_unet --mean over the "unet" mask--> confidence; < min_confidence --> unsure (edge.segment.confidence)

Post-processing runs at a *work size* (long side ``work_long_side``), between the network size
and the photo size, and the masks are scaled to the photo size at the end, so a 15.7 MP photo
costs little more than a small one.
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from edge.errors import InputError
from edge.registry import load_model
from edge.runtime.select import accelerate_segmenter
from edge.segment.confidence import is_unsure, mask_confidence
from edge.segment.dataset import read_rgb
from edge.segment.forest import ForestSettings, soft_vote, surface_forest_probabilities
from edge.segment.holefill import hole_fill
from edge.segment.unet import BUNetV2, load_weights, predict_probability

STEPS = ("unet", "fill", "forest", "final")
# The registry's segmentation model used when no weights file is given. bunetv2-lite0 is better
# on real photos (held-out wta-train scenes, dtu-dev) but finds less of the blade on generated
# inspections (recall 0.83 against 0.96; docs/segmentation.md), and a missed blade is coded as
# background: not the default until its recall holds there.
DEFAULT_SEGMENTER = "bunetv2"


@dataclass(frozen=True)
class SegmentSettings:
    tau_bu: float | None = None    # threshold on the flip-averaged U-Net probability;
                                   # None: the one stored with the weights (UNetConfig.threshold)
    flips: bool = True             # 4-flip test-time augmentation
    work_long_side: int = 1024
    use_forest: bool | None = None     # per-surface forest vote; None: as stored with the weights (on
                                       # unless the weights say the vote lowers their F1)
    min_confidence: float | None = None  # photos less sure than this are unsure; None: the weights'
    forest: ForestSettings = ForestSettings()


@dataclass
class SurfaceSegmentation:
    masks: list[np.ndarray]                                  # final masks, photo size, bool
    steps: dict[str, list[np.ndarray]] = field(default_factory=dict)  # per-step masks, photo size
    seconds: dict[str, float] = field(default_factory=dict)  # wall time of each step, all photos
    cpu_seconds: dict[str, float] = field(default_factory=dict)  # process CPU time of each step
    confidence: list[float] = field(default_factory=list)    # mean U-Net probability inside its mask
    unsure: list[bool] = field(default_factory=list)         # confidence below min_confidence


class _StepClock:
    """Wall and CPU time of the pipeline's steps (CPU time is what a busy machine cannot inflate)."""

    def __init__(self):
        self.seconds = dict.fromkeys(STEPS + ("upscale",), 0.0)
        self.cpu_seconds = dict.fromkeys(STEPS + ("upscale",), 0.0)
        self._step = ""

    def start(self, step: str) -> None:
        self._step, self._wall, self._cpu = step, time.perf_counter(), time.process_time()

    def stop(self) -> None:
        self.seconds[self._step] += time.perf_counter() - self._wall
        self.cpu_seconds[self._step] += time.process_time() - self._cpu


def _resize(array: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    if array.shape[:2] == hw:
        return array
    return cv2.resize(array, (hw[1], hw[0]), interpolation=cv2.INTER_LINEAR)


def to_photo_size(mask: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """Upscale a bool mask smoothly (linear interpolation, then threshold at one half)."""
    if mask.shape == hw:
        return mask.copy()
    return _resize(mask.astype(np.float32), hw) >= 0.5


def work_size(height: int, width: int, long_side: int) -> tuple[int, int]:
    scale = min(1.0, long_side / max(height, width))
    return max(1, round(height * scale)), max(1, round(width * scale))


def unet_probabilities(images: list[np.ndarray], model: BUNetV2,
                       settings: SegmentSettings = SegmentSettings()) -> list[np.ndarray]:
    """Flip-averaged U-Net blade probabilities of each photo, at its work size."""
    return [_resize(predict_probability(model, rgb, settings.flips),
                    work_size(*rgb.shape[:2], settings.work_long_side)) for rgb in images]


def with_model_defaults(settings: SegmentSettings, model) -> SegmentSettings:
    """``settings`` with the forest vote decided by the weights where the settings leave it open."""
    if settings.use_forest is None:
        settings = dataclasses.replace(settings, use_forest=getattr(model.config, "use_forest", True))
    return settings


def segment_surface(images: list[np.ndarray], model: BUNetV2,
                    settings: SegmentSettings = SegmentSettings(),
                    keep_steps: bool = False) -> SurfaceSegmentation:
    """Blade masks for the uint8 RGB photos of one surface (same camera, same blade side).

    With ``keep_steps`` the masks after every step (:data:`STEPS`) are returned at photo size
    too, for evaluation.
    """
    clock = _StepClock()
    settings = with_model_defaults(settings, model)
    clock.start("unet")
    probabilities = unet_probabilities(images, model, settings)
    clock.stop()
    tau_bu = model.config.threshold if settings.tau_bu is None else settings.tau_bu
    result = postprocess(images, probabilities, tau_bu, settings, keep_steps, clock)
    min_confidence = (getattr(model.config, "min_confidence", 0.0) if settings.min_confidence is None
                      else settings.min_confidence)
    result.confidence = [mask_confidence(p, tau_bu) for p in probabilities]
    result.unsure = [is_unsure(c, min_confidence) for c in result.confidence]
    return result


def postprocess(images: list[np.ndarray], unet_probs: list[np.ndarray], tau_bu: float,
                settings: SegmentSettings = SegmentSettings(), keep_steps: bool = False,
                clock: _StepClock | None = None) -> SurfaceSegmentation:
    """The steps after the U-Net: threshold at ``tau_bu``, hole fill, forest vote, hole fill.

    ``unet_probs`` are the work-size probabilities of :func:`unet_probabilities`.
    """
    clock = clock or _StepClock()
    photo_sizes = [rgb.shape[:2] for rgb in images]
    clock.start("unet")
    unet_masks = [p >= tau_bu for p in unet_probs]
    clock.stop()

    clock.start("fill")
    filled = [hole_fill(mask) for mask in unet_masks]
    clock.stop()

    clock.start("forest")
    forest_masks = filled
    if settings.use_forest is not False:
        forest_probabilities = surface_forest_probabilities(images, filled, settings.forest)
        if forest_probabilities is not None:
            forest_masks = [soft_vote(p_unet, _resize(p_forest, p_unet.shape), settings.forest)
                            for p_unet, p_forest in zip(unet_probs, forest_probabilities)]
    clock.stop()

    clock.start("final")
    final = [hole_fill(mask) for mask in forest_masks]
    clock.stop()

    clock.start("upscale")
    result = SurfaceSegmentation([to_photo_size(m, hw) for m, hw in zip(final, photo_sizes)],
                                 seconds=clock.seconds, cpu_seconds=clock.cpu_seconds)
    clock.stop()
    if keep_steps:
        per_step = {"unet": unet_masks, "fill": filled, "forest": forest_masks}
        result.steps = {name: [to_photo_size(m, hw) for m, hw in zip(masks, photo_sizes)]
                        for name, masks in per_step.items()}
        result.steps["final"] = result.masks
    return result


def load_segmenter(weights: Path | str | None = None, runtime=None) -> BUNetV2:
    """The shipped default segmenter (:data:`DEFAULT_SEGMENTER`), or the weights file given.

    With ``runtime`` (edge.runtime.RuntimeSettings or the config's runtime section) the U-Net
    runs on the backend it selects (TensorRT, ONNX Runtime or PyTorch).
    """
    if weights is None:
        model = load_model(DEFAULT_SEGMENTER)
    else:
        model = load_weights(Path(weights))
    if runtime is not None:
        model = accelerate_segmenter(model, runtime, getattr(model, "registry_name", "bunetv2"))
    return model


def segment_files(image_paths: list[Path], out_dir: Path, weights: Path | str | None = None,
                  settings: SegmentSettings = SegmentSettings()) -> list[Path]:
    """Segment the photos as one surface and write ``out_dir/STEM.png`` masks (blade = 255)."""
    model = load_segmenter(weights)
    images = [read_rgb(Path(p)) for p in image_paths]
    result = segment_surface(images, model, settings)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for path, mask in zip(image_paths, result.masks):
        target = out_dir / (Path(path).stem + ".png")
        if not cv2.imwrite(str(target), mask.astype(np.uint8) * 255):
            raise InputError("cannot write mask", str(target))
        written.append(target)
    return written
