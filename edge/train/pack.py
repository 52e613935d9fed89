"""A compact copy of wta-train for a short lease of a GPU machine (`scripts/gpu_burst.sh pack`).

Such a machine takes the repository and a few tens of MB of ignored folders, so the set is cut
down to what each trainer reads (:class:`edge.train.heldout.DataFolders`):

- ``frames/``: every frame with its mask, the long side reduced to ``--long-side`` (the
  segmentation trainer caches frames at 1.25 x its 512-pixel network size, 640, anyway);
- ``crops/``: ``--crops`` full-resolution crops per frame with their masks, for the coders,
  which must learn full-resolution photos. Crops start on multiples of 16 pixels (Bit-swap's
  patch grid and the camera's JPEG blocks stay aligned) and one of them is centred on the
  blade outline when there is one (where the implicit coder's two decoders meet);
- ``pack.json``: the layout.

Frame names are kept (``envA_70-1.jpg``), so the held-out scenes stay held out.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np

from edge.errors import InputError
from edge.segment.dataset import list_frames, read_mask, read_rgb

ALIGN = 16


def crop_origins(mask: np.ndarray, size: int, count: int, rng: np.random.Generator) -> list[tuple[int, int]]:
    """``count`` (top, left) origins of size x size crops, aligned to 16 pixels; the first centred
    on a random point of the blade outline when the frame has one, the others anywhere."""
    h, w = mask.shape
    origins = []
    eroded = cv2.erode(mask.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    outline = np.argwhere(mask & ~eroded)
    for index in range(count):
        if index == 0 and len(outline):
            cy, cx = outline[rng.integers(len(outline))]
            top, left = cy - size // 2, cx - size // 2
        else:
            top, left = rng.integers(0, h - size + 1), rng.integers(0, w - size + 1)
        top = int(np.clip(top, 0, h - size)) // ALIGN * ALIGN
        left = int(np.clip(left, 0, w - size)) // ALIGN * ALIGN
        origins.append((top, left))
    return origins


def _write_jpeg(path: Path, rgb: np.ndarray, quality: int) -> None:
    if not cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality]):
        raise InputError("cannot write", str(path))


def pack(data: Path, out: Path, long_side: int = 640, crop: int = 384, crops: int = 1,
         frame_quality: int = 85, crop_quality: int = 95, seed: int = 0) -> dict:
    """Write the packed set of ``data`` (a wta-train folder) to ``out``; its pack.json contents."""
    data, out = Path(data), Path(out)
    frames = list_frames(data)
    if not frames:
        raise InputError("no frames with masks (images/, masks/)", str(data))
    for sub in ("frames/images", "frames/masks", "crops/images", "crops/masks"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    rows = ["image,view"]
    for frame in frames:
        rgb = read_rgb(frame.image_path)
        mask = read_mask(frame.mask_path, rgb.shape[:2])
        h, w = mask.shape
        scale = min(1.0, long_side / max(h, w))
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        _write_jpeg(out / "frames/images" / f"{frame.name}.jpg",
                    cv2.resize(rgb, size, interpolation=cv2.INTER_AREA), frame_quality)
        small_mask = cv2.resize(mask.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST)
        cv2.imwrite(str(out / "frames/masks" / f"{frame.name}.png"), small_mask * 255)
        rows.append(f"{frame.name}.jpg,{frame.view}")
        side = min(crop, h, w) // ALIGN * ALIGN
        for index, (top, left) in enumerate(crop_origins(mask, side, crops, rng)):
            name = f"{frame.name}-{index}"
            _write_jpeg(out / "crops/images" / f"{name}.jpg", rgb[top:top + side, left:left + side], crop_quality)
            cv2.imwrite(str(out / "crops/masks" / f"{name}.png"),
                        mask[top:top + side, left:left + side].astype(np.uint8) * 255)
    (out / "frames/index.csv").write_text("\n".join(rows) + "\n")
    layout = {"frames": "frames", "crops": "crops", "implicit_scale": 1.0, "source": str(data),
              "frames_long_side": long_side, "crop": crop, "crops_per_frame": crops, "count": len(frames)}
    (out / "pack.json").write_text(json.dumps(layout, indent=1) + "\n")
    return layout


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m edge.train.pack", description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path, help="a wta-train folder (images/, masks/, index.csv)")
    parser.add_argument("out", type=Path, help="the packed set's folder")
    parser.add_argument("--long-side", type=int, default=640)
    parser.add_argument("--crop", type=int, default=384)
    parser.add_argument("--crops", type=int, default=1, help="full-resolution crops per frame")
    parser.add_argument("--frame-quality", type=int, default=85)
    parser.add_argument("--crop-quality", type=int, default=95)
    args = parser.parse_args(argv)
    try:
        layout = pack(args.data, args.out, args.long_side, args.crop, args.crops, args.frame_quality,
                      args.crop_quality)
    except InputError as error:
        print(f"pack: error: {error}")
        return 1
    print(f"packed {layout['count']} frames into {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
