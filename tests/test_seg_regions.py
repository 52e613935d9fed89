"""Reference masks from hand-drawn blade regions, and `edge eval seg-regions` on a generated photo."""
import json

import cv2
import numpy as np
import pytest
import torch

from edge.cli import main
from edge.errors import InputError
from edge.segment.metrics import frame_scores
from edge.segment.reference import BladeRegions, paint_cut_off, reference_mask
from edge.segment.unet import BUNetV2, UNetConfig, save_weights

HEIGHT, WIDTH = 240, 400
BLADE = (slice(100, 140), slice(60, 380))     # a white blade lying across the grass
ROOF = (slice(20, 70), slice(300, 380))       # a grey roof: paint-like, but not blade


def field_photo() -> np.ndarray:
    """Textured green grass, a white blade shaded on its lower half, a grey roof and brown soil."""
    rng = np.random.default_rng(0)
    image = np.empty((HEIGHT, WIDTH, 3), np.int16)
    image[:] = (70, 140, 50)
    image[180:] = (120, 85, 60)                          # soil
    image += rng.integers(-20, 20, size=image.shape, dtype=np.int16)
    image[BLADE] = (235, 238, 242)
    image[120:140, 60:380] = (150, 155, 165)             # the blade's shaded half
    image[ROOF] = (160, 162, 166)
    return np.clip(image, 0, 255).astype(np.uint8)


def regions_file(path, photos) -> BladeRegions:
    path.write_text(json.dumps({"frame": [200, 120], "photos": photos}))
    return BladeRegions.read(path)


def blade_truth() -> np.ndarray:
    truth = np.zeros((HEIGHT, WIDTH), bool)
    truth[BLADE] = True
    return truth


def test_reference_keeps_the_blade_inside_its_region_and_leaves_the_roof_out(tmp_path):
    # A generous polygon around the blade (frame 200x120 = half the photo), grass included.
    regions = regions_file(tmp_path / "r.json", {"field": [[[20, 40], [195, 40], [195, 80], [20, 80]]]})
    reference = reference_mask(field_photo(), regions, "field")
    scores = frame_scores(reference, blade_truth())
    assert scores.recall > 0.97 and scores.precision > 0.97     # shaded half kept, grass beside it left out
    assert not reference[ROOF].any()


def test_reference_keeps_sky_lit_shade_and_repair_tape_but_not_soil(tmp_path):
    # The shaded side of a white blade turns blue-grey under the sky, and repair tape is a pale
    # warm band across it: both are blade. Soil showing inside the generous polygon is not.
    image = field_photo()
    image[120:140, 60:380] = (90, 120, 155)              # sky-lit shade instead of grey
    image[100:140, 200:215] = (176, 163, 150)            # a band of repair tape
    image[140:156, 60:380] = (133, 107, 88)              # soil just below the blade
    regions = regions_file(tmp_path / "r.json", {"field": [[[20, 40], [195, 40], [195, 80], [20, 80]]]})
    reference = reference_mask(image, regions, "field")
    scores = frame_scores(reference, blade_truth())
    assert scores.recall > 0.97 and scores.precision > 0.97
    assert reference[120:140, 200:215].all() and not reference[145:156, 60:380].any()


def test_regions_file_errors_name_the_file_and_the_key(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"frame": [200, 120], "photos": {"DJI_1": [[[0, 0], [5, 5]]]}}))
    with pytest.raises(InputError, match=r"photos\.DJI_1: each polygon needs at least three") as error:
        BladeRegions.read(bad)
    assert "bad.json" in str(error.value)
    bad.write_text(json.dumps({"frame": [0, 120], "photos": {}}))
    with pytest.raises(InputError, match="'frame'"):
        BladeRegions.read(bad)
    bad.write_text("{not json")
    with pytest.raises(InputError, match="cannot read blade regions"):
        BladeRegions.read(bad)
    regions = regions_file(tmp_path / "ok.json", {"field": [[[20, 40], [195, 40], [195, 80]]]})
    with pytest.raises(InputError, match="no blade regions"):
        reference_mask(field_photo(), regions, "other")


def test_eval_seg_regions_scores_each_photo_and_draws_its_picture(tmp_path, capsys):
    photos = tmp_path / "photos"
    photos.mkdir()
    cv2.imwrite(str(photos / "field.png"), cv2.cvtColor(field_photo(), cv2.COLOR_RGB2BGR))
    regions = tmp_path / "regions.json"
    regions.write_text(json.dumps({"frame": [200, 120], "photos": {"field": [[[20, 40], [195, 40], [195, 80], [20, 80]]]}}))
    torch.manual_seed(0)
    weights = tmp_path / "tiny.pt"
    save_weights(BUNetV2(UNetConfig(base_width=4, input_long_side=64)), weights)
    out = tmp_path / "scores.json"
    assert main(["eval", "seg-regions", str(photos), "--regions", str(regions), "--weights", str(weights),
                 "--json", str(out), "--pictures", str(tmp_path / "pictures")]) == 0
    evaluation = json.loads(out.read_text())
    row = evaluation["photos"]["field"]
    assert row["photo"] == "field.png" and 0.0 <= row["f1"] <= 1.0
    assert row["reference_fraction"] == pytest.approx(blade_truth().mean(), abs=0.01)
    assert evaluation["f1_median"] == row["f1"] and evaluation["weights"] == "tiny.pt"
    assert cv2.imread(str(tmp_path / "pictures" / "field.jpg")).shape[1] == 1056
    assert "field" in capsys.readouterr().out


def test_eval_seg_regions_names_a_missing_photo(tmp_path, capsys):
    regions = tmp_path / "regions.json"
    regions.write_text(json.dumps({"frame": [200, 120], "photos": {"DJI_0404": [[[1, 1], [9, 1], [9, 9]]]}}))
    (tmp_path / "photos").mkdir()
    assert main(["eval", "seg-regions", str(tmp_path / "photos"), "--regions", str(regions)]) != 0
    assert "DJI_0404" in capsys.readouterr().err


def test_paint_cut_off_finds_a_region_drawn_inside_the_blade(tmp_path):
    generous = regions_file(tmp_path / "g.json", {"field": [[[20, 40], [195, 40], [195, 80], [20, 80]]]})
    # The blade spans rows 50-70 of the 200x120 frame; this polygon stops 4 rows short of its top.
    tight = regions_file(tmp_path / "t.json", {"field": [[[20, 54], [195, 54], [195, 80], [20, 80]]]})
    photo = field_photo()
    assert paint_cut_off(photo, generous, "field") < 0.01
    assert paint_cut_off(photo, tight, "field") > 0.1
