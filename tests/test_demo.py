"""`edge demo` end to end: a tiny generated inspection through broker, daemon and subscriber."""
from __future__ import annotations

import pytest

from edge.comms.broker import find_mosquitto
from edge.demo import DemoSettings, run_demo


@pytest.mark.slow
@pytest.mark.skipif(find_mosquitto() is None, reason="Mosquitto is not installed (scripts/install.sh installs it)")
def test_demo_delivers_every_photo_with_an_exact_blade(tmp_path):
    lines = []
    rows = run_demo(DemoSettings(workdir=tmp_path, images_per_surface=2, surfaces=("PS",), size=(320, 213),
                                 segmentation="mask-files", timeout_s=600), echo=lines.append)
    assert len(rows) == 2
    for row in rows:   # every generated photo shows a blade: the default keeps it exact, the background at 25 dB
        assert row["bundle_bytes"] < row["source_bytes"]
        assert row["blade_exact"] is True, row
        assert row["background_psnr"] >= 25.0, row
        assert row["regions"]["blade"][0] == "jpeg-exact", row
    assert any("photos in" in line for line in lines)
