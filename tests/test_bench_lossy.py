"""python -m edge.bench.lossy: real coded streams of a tiny coder next to JPEG 2000, one run."""
from __future__ import annotations

import json

import cv2
import numpy as np

from edge.bench.lossy import main
from edge.synth import render_frame
from tests.tiny_models import tiny_lossy_coder


def test_reports_rates_psnr_colour_cast_and_bd_rate(tmp_path):
    image, _ = render_frame((300, 280), seed=4)
    cv2.imwrite(str(tmp_path / "a.png"), image[:, :, ::-1])
    tiny_lossy_coder(tmp_path, seed=0)
    out = tmp_path / "rd.json"
    assert main([str(tmp_path / "a.png"), "--crop", "256", "--codecs", "jpeg2000", "--levels", "0,3",
                 "--weights", str(tmp_path / "tiny-lossy-0.pt"), "--threads", "1", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    row = result["rows"][0]
    assert row["size"] == [256, 256] and [p["parameter"] for p in row["ours"]] == [0, 3]
    for point in row["ours"]:
        assert point["bpp"] > 0 and np.isfinite(point["psnr"])
        assert len(point["colour_cast"]) == 3 and all(abs(v) <= 255 for v in point["colour_cast"])
    assert len(row["jpeg2000"]) == 8 and "bd_rate_vs_jpeg2000" in row
    # The summary counts the photo exactly when its curves overlap and gave a BD-rate.
    expected = 0 if row["bd_rate_vs_jpeg2000"] is None else 1
    assert result["summary"]["jpeg2000"]["images"] == expected
