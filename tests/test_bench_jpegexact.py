"""`python -m edge.bench.jpegexact`: per-photo numbers, then the Bit-swap column filled in later."""
from __future__ import annotations

import json

import cv2
import numpy as np
from PIL import Image

from edge.bench import jpegexact as bench
from edge.synth import render_frame


def test_numbers_per_photo_then_the_bitswap_column(tmp_path):
    photos, masks = tmp_path / "photos", tmp_path / "masks"
    photos.mkdir()
    masks.mkdir()
    for seed in (3, 4):
        image, mask = render_frame((300, 200), seed=seed)
        Image.fromarray(image).save(photos / f"p{seed}.jpg", quality=90)
        cv2.imwrite(str(masks / f"p{seed}.png"), mask.astype(np.uint8) * 255)
    result = tmp_path / "run.json"

    assert bench.main([str(photos), "--masks", str(masks), "--no-bitswap", "--json", str(result)]) == 0
    first = json.loads(result.read_text())
    assert [row["image"] for row in first["images"]] == ["p3.jpg", "p4.jpg"]
    for row in first["images"]:
        assert row["blade_pixels_identical"] and row["blade_container"] in ("jxl", "jpeg")
        assert row["bitswap_blade_bytes"] is None
        assert row["bundle_bytes"] == row["blade_bytes"] + row["background_bytes"] + row["other_bytes"]
    assert first["settings"]["bitswap_weights"] is False

    assert bench.main([str(photos), "--masks", str(masks), "--add-bitswap", "--json", str(result)]) == 0
    second = json.loads(result.read_text())
    for before, after in zip(first["images"], second["images"]):
        assert after["bitswap_blade_bytes"] > after["blade_bytes"]    # pixel-lossless costs more
        assert {k: v for k, v in after.items() if k != "bitswap_blade_bytes"} == \
               {k: v for k, v in before.items() if k != "bitswap_blade_bytes"}
    assert second["settings"]["bitswap_weights"] is True
