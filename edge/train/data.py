"""Training images: folder listing, the wta-train scene split, random crops, colour jitter.

wta-train frames are numbered along each flight, and neighbouring frames are near-duplicates,
so validation holds out whole scenes, never random frames: the same held-out scenes for every
model (:data:`edge.segment.dataset.WTA_HELD_OUT`), so that no model is measured on frames
another model of the pipeline was trained on.
"""
from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from edge.errors import ConfigError, InputError
from edge.segment.dataset import IMAGE_SUFFIXES, is_held_out

WTA_TRAIN_ENV = "EDGE_WTA_TRAIN"      # the wta-train folder when a command is not given one


def wta_train_folder(given: Path | str | None = None) -> Path:
    """The wta-train folder: ``given`` (a ``--data`` argument) or else $EDGE_WTA_TRAIN."""
    if given:
        return Path(given)
    folder = os.environ.get(WTA_TRAIN_ENV, "")
    if not folder:
        raise ConfigError(f"no wta-train folder: give --data DIR or set {WTA_TRAIN_ENV}=DIR "
                          "(DIR holds images/ and masks/)", "data")
    return Path(folder)


def list_images(folder: Path) -> list[Path]:
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError("not a folder of images", str(folder))
    paths = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    # Masks stored beside images are not training images.
    return [p for p in paths if "masks" not in p.parts]


def is_wta_validation(path: Path) -> bool:
    """True when a wta-train frame belongs to one of the held-out scenes."""
    return is_held_out(Path(path).name)


def split_paths(paths: list[Path]) -> tuple[list[Path], list[Path]]:
    train = [p for p in paths if not is_wta_validation(p)]
    val = [p for p in paths if is_wta_validation(p)]
    return train, val


def read_rgb(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise InputError("cannot be read as an image", str(path))
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def random_crop(image: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """A random size x size crop with random flips; small images are mirror-padded first."""
    h, w = image.shape[:2]
    if h < size or w < size:
        image = np.pad(image, ((0, max(0, size - h)), (0, max(0, size - w)), (0, 0)), mode="reflect")
        h, w = image.shape[:2]
    top = int(rng.integers(0, h - size + 1))
    left = int(rng.integers(0, w - size + 1))
    crop = image[top: top + size, left: left + size]
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    if rng.random() < 0.5:
        crop = crop[::-1]
    return np.ascontiguousarray(crop)


def colour_jitter(crop: np.ndarray, rng: np.random.Generator,
                  saturation: tuple[float, float] = (0.6, 1.8)) -> np.ndarray:
    """Half the time the RGB channels in a random order, half the time a random saturation.

    A codec must reproduce every colour, but inspection photos are mostly sky, sea and white
    paint: without this, a coder trained on them desaturates green grass by 30 levels.
    Permuting channels keeps every texture and edge and moves its colours to other hues;
    saturation scales each pixel's distance from its own grey.
    """
    out = crop
    if rng.random() < 0.5:
        out = out[..., rng.permutation(3)]
    if rng.random() < 0.5:
        grey = out.mean(axis=-1, keepdims=True, dtype=np.float32)
        factor = rng.uniform(*saturation)
        out = np.clip(grey + factor * (out - grey), 0, 255).round().astype(np.uint8)
    return np.ascontiguousarray(out)


def recoloured(crops: np.ndarray) -> np.ndarray:
    """Validation crops (uint8 NHWC) in other colours, the same ones every run (fixed seed):
    how well a coder keeps colours it rarely sees."""
    rng = np.random.default_rng(4321)
    jittered = []
    for crop in crops:
        crop = crop[..., rng.permutation(3)]
        jittered.append(colour_jitter(crop, rng) if rng.random() < 0.5 else crop)
    return np.stack(jittered)
