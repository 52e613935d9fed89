"""Writing what arrived: the image (metadata restored), its blade mask, a JSON sidecar, and
the camera's original file when the bundle carries it; refused bundles kept aside.

Layout under the output folder::

    DEVICE/STEM-SHA12.png (or .tif)       the decoded photo, EXIF/XMP/ICC of the original
    DEVICE/STEM-SHA12.mask.png            blade mask (255 = blade)
    DEVICE/STEM-SHA12.jpg                 jpeg-exact bundles: a JPEG with the camera's own blade blocks
    DEVICE/STEM-SHA12.json                sidecar: bundle, regions, rates, decode report
    DEVICE/STEM-SHA12.source.EXT          the original file (source-file bundles)
    arrivals.jsonl                        one line per photo written, in arrival order
    rejected/BUNDLE_ID.edgb + .json       bundles refused, with the reason
    rejected/BUNDLE_ID.chunkN + .json     chunks that failed their checksum

Files are named after the source photo (name and SHA-256), so a photo that arrives twice,
even as two different bundles, is written once.
"""
from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

import cv2
import numpy as np

from edge.codec import jpegwrite
from edge.codec.container import Bundle, write_file_atomically
from edge.codec.metadata import save_image
from edge.config import OutputConfig
from edge.offshore.decode import DecodedImage

_UNSAFE = re.compile(r"[^A-Za-z0-9_.+-]")


class OutputFolder:
    def __init__(self, config: OutputConfig):
        self.config = config
        self.folder = Path(config.folder)
        self.rejected = self.folder / "rejected"
        self.sources = self.folder / ".state" / "sources"
        for sub in (self.rejected, self.sources):
            sub.mkdir(parents=True, exist_ok=True)

    def stem(self, device: str, bundle: Bundle) -> Path:
        name = _UNSAFE.sub("_", Path(bundle.source.filename).stem) or "photo"
        return self.folder / _UNSAFE.sub("_", device) / f"{name}-{bundle.source.sha256[:12]}"

    def has_photo(self, bundle: Bundle) -> bool:
        """Was this photo (by source SHA-256) already written, from whatever bundle?"""
        return (self.sources / f"{bundle.source.sha256}.json").exists()

    def write(self, device: str, bundle: Bundle, data: bytes, decoded: DecodedImage, extra: dict) -> dict:
        """Write every file of one photo; the arrival record last. Returns the sidecar."""
        stem = self.stem(device, bundle)
        stem.parent.mkdir(parents=True, exist_ok=True)
        suffix = ".png" if self.config.image_format == "png" else ".tif"
        image_path = stem.with_name(stem.name + suffix)
        save_image(image_path, decoded.image, bundle.source)
        mask_path = None
        if self.config.write_mask:
            mask_path = stem.with_name(stem.name + ".mask.png")
            ok, encoded = cv2.imencode(".png", np.asarray(decoded.mask, dtype=np.uint8) * 255)
            if not ok:
                raise OSError(f"cannot encode the mask of {image_path}")
            write_file_atomically(mask_path, encoded.tobytes())
        jpeg_path = None
        if self.config.write_jpeg and jpegwrite.holds_jpeg_exact(bundle) and bundle.region("blade").coded.count:
            jpeg_path = stem.with_name(stem.name + ".jpg")
            write_file_atomically(jpeg_path, jpegwrite.jpeg_bytes(bundle, background=decoded.image))
        source_path = None
        if decoded.source_file is not None and self.config.keep_source_files:
            extension = Path(bundle.source.filename).suffix.lower() or ".bin"
            source_path = stem.with_name(stem.name + ".source" + extension)
            write_file_atomically(source_path, decoded.source_file)
        pixels = bundle.width * bundle.height
        sidecar = {
            "bundle_id": bundle.bundle_id,
            "device": device,
            "source": {"filename": bundle.source.filename, "size": bundle.source.size,
                       "sha256": bundle.source.sha256, "format": bundle.source.format},
            "width": bundle.width, "height": bundle.height,
            "image": image_path.name,
            "mask": mask_path.name if mask_path else None,
            "source_file": source_path.name if source_path else None,
            "jpeg": jpeg_path.name if jpeg_path else None,
            "bundle_bytes": len(data),
            "bpp": 8 * len(data) / pixels,
            "regions": [{"name": r.name, "coder": r.coded.coder, "model": r.coded.model,
                         "weights_sha256": r.coded.weights_sha256, "bytes": r.coded.bits // 8,
                         "bpp": r.coded.bits / pixels, "lossless_checked": r.pixel_sha256 is not None,
                         "params": r.coded.params}
                        for r in bundle.regions],
            "report": _plain(decoded.report),
            **extra,
        }
        sidecar_path = stem.with_name(stem.name + ".json")
        write_file_atomically(sidecar_path, json.dumps(sidecar, indent=2, sort_keys=True).encode("utf-8"))
        write_file_atomically(self.sources / f"{bundle.source.sha256}.json",
                              json.dumps({"bundle_id": bundle.bundle_id, "image": str(image_path)}).encode())
        self._append_arrival({"time": time.time(), "device": device, "bundle_id": bundle.bundle_id,
                              "source": bundle.source.filename, "sha256": bundle.source.sha256,
                              "image": str(image_path.relative_to(self.folder))})
        return sidecar

    def _append_arrival(self, record: dict) -> None:
        line = (json.dumps(record, sort_keys=True) + "\n").encode("utf-8")
        fd = os.open(self.folder / "arrivals.jsonl", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)          # one write with O_APPEND: lines of several processes never mix
            os.fsync(fd)
        finally:
            os.close(fd)

    def reject_bundle(self, bundle_id: str, data: bytes, reason: str, section: str, device: str) -> Path:
        """Keep a refused bundle aside with its reason."""
        path = self.rejected / f"{bundle_id}.edgb"
        write_file_atomically(path, data)
        self._reason(path, reason, section, device)
        return path

    def reject_chunk(self, bundle_id: str, index: int, payload: bytes, reason: str, device: str) -> Path:
        path = self.rejected / f"{bundle_id}.chunk{index}"
        write_file_atomically(path, payload)
        self._reason(path, reason, "transport", device)
        return path

    @staticmethod
    def _reason(path: Path, reason: str, section: str, device: str) -> None:
        record = {"reason": reason, "section": section, "device": device, "time": time.time()}
        write_file_atomically(path.with_name(path.name + ".json"), json.dumps(record, indent=2).encode("utf-8"))


def _plain(value):
    """A report as plain JSON (numpy numbers and arrays made Python values)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist() if value.size <= 64 else f"array{list(value.shape)}"
    if isinstance(value, (bytes, bytearray)):
        return f"{len(value)} bytes"
    return value
