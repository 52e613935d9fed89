"""The lossless benchmark runs end to end on a small image and writes its JSON."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch

from edge.bench import lossless as bench
from edge.codec.bitswap.model import BitswapConfig, BitswapVAE


@pytest.mark.slow
def test_benchmark_writes_json(tmp_path):
    torch.manual_seed(0)
    model = BitswapVAE(BitswapConfig(width=4, depth=1, pixel_stages=10))
    checkpoint = tmp_path / "tiny.pt"
    torch.save({"model": model.state_dict(), "model_config": model.config.to_dict()}, checkpoint)
    folder = tmp_path / "set"
    folder.mkdir()
    image = cv2.GaussianBlur(np.random.default_rng(0).integers(0, 256, (80, 150, 3), dtype=np.uint8), (5, 5), 2)
    cv2.imwrite(str(folder / "a.png"), image)
    out = tmp_path / "result.json"
    assert bench.main([str(folder), "--crop", "128", "--sequential", "1", "--workers", "1", "--threads", "1",
                       "--checkpoint", str(checkpoint), "--latent-bins", "256", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    row = result["rows"][0]
    assert row["width"] == row["height"] == 64      # square, on the 64-pixel grid, inside the image
    assert row["bitswap"]["exact"] and row["bitswap_sequential"]["exact"]
    assert all(row[codec]["exact"] for codec in ("png", "webp", "jpegxl", "jpeg2000"))
    summary = result["summary"]["set"]
    assert summary["bitswap_to_png"] == pytest.approx(summary["bitswap_bpp"] / summary["png_bpp"])
    assert result["summary"]["speed"]["images"] == 1
