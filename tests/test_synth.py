"""Synthetic inspections: determinism, masks, manifest, EXIF, sizes and the command line."""
from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import ExifTags, Image, JpegImagePlugin

from edge.cli import main
from edge.errors import InputError
from edge.synth import Manifest, frame_spec, generate_inspection, parse_size, plan_frame, render, render_frame
from edge.synth.blade import SURFACES

SMALL = (96, 64)


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def inspection(tmp_path_factory) -> tuple[Path, Manifest]:
    out = tmp_path_factory.mktemp("inspection")
    manifest = generate_inspection(out, turbines=1, blades=1, surfaces=("PS", "LE"), images_per_surface=3,
                                   size=SMALL, seed=11, quality=85)
    return out, manifest


def test_render_frame_is_deterministic_and_depends_on_the_seed():
    rgb, mask = render_frame((200, 150), seed=3)
    again, again_mask = render_frame((200, 150), seed=3)
    other, _ = render_frame((200, 150), seed=4)
    assert rgb.shape == (150, 200, 3) and rgb.dtype == np.uint8
    assert mask.shape == (150, 200) and mask.dtype == bool
    assert np.array_equal(rgb, again) and np.array_equal(mask, again_mask)
    assert np.mean(rgb != other) > 0.5


@pytest.mark.parametrize("size", [(201, 149), (37, 53), (333, 17), (1283, 721)])
def test_odd_sizes_render_with_matching_shapes(size):
    rgb, mask = render_frame(size, seed=5, surface="SS")
    assert rgb.shape == (size[1], size[0], 3)
    assert mask.shape == (size[1], size[0])


def test_mask_is_exactly_where_the_blade_covers_the_background():
    # Same frame with and without the blade, at a fixed exposure: pixels away from the
    # mask's border must be untouched outside it and changed inside it.
    for seed, surface in [(1, "PS"), (2, "SS"), (3, "LE"), (4, "TE")]:
        spec = replace(plan_frame((320, 240), seed, surface), exposure=1.0)
        with_blade, mask = render(spec)
        without, empty_mask = render(replace(spec, view=None))
        assert not empty_mask.any()
        assert 0.05 < mask.mean() < 0.8
        changed = np.any(with_blade != without, axis=2)
        kernel = np.ones((5, 5), np.uint8)
        inside = cv2.erode(mask.astype(np.uint8), kernel).astype(bool)
        outside = ~cv2.dilate(mask.astype(np.uint8), kernel).astype(bool)
        assert not changed[outside].any(), surface
        assert changed[inside].mean() > 0.97, surface


def test_blade_fraction_by_frame_kind():
    for seed in range(4):
        surface = SURFACES[seed]
        closeup = render_frame((240, 160), seed, surface, kind="closeup")[1].mean()
        far = render_frame((240, 160), seed, surface, kind="far")[1].mean()
        empty = render_frame((240, 160), seed, surface, kind="empty")[1].mean()
        assert 0.08 <= closeup <= 0.7
        assert 0.0 < far < 0.15
        assert empty == 0.0


def test_blade_is_light_and_grey_and_background_is_not_uniform():
    rgb, mask = render_frame((320, 240), seed=8, surface="PS")
    inside = cv2.erode(mask.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    blade = rgb[inside].astype(np.float32)
    background = rgb[~mask].astype(np.float32)
    assert blade.mean() > background.mean()
    # paint is nearly grey: little spread between the channels
    assert np.median(blade.max(axis=1) - blade.min(axis=1)) < 40
    assert background.std(axis=0).mean() > 5  # textured, not a flat colour


def test_manifest_groups_frames_and_points_at_existing_files(inspection):
    out, manifest = inspection
    assert manifest == Manifest.load(out)
    assert len(manifest.frames) == 6
    groups = manifest.by_surface()
    assert list(groups) == [(1, 1, "PS"), (1, 1, "LE")]
    names = [Path(f.image).name for f in manifest.frames]
    assert names == [f"IMG_{n:04d}.JPG" for n in range(1, 7)]
    for (turbine, blade, surface), frames in groups.items():
        assert [f.index for f in frames] == [1, 2, 3]
        for frame in frames:
            assert frame.image.startswith(f"T{turbine:02d}/B{blade}/{surface}/")
            assert frame.mask == f"masks/{frame.image[:-4]}.png"
            assert (out / frame.image).is_file() and (out / frame.mask).is_file()
            assert (frame.width, frame.height) == SMALL
    body = json.loads((out / "manifest.json").read_text())
    assert body["seed"] == 11 and body["quality"] == 85 and body["surfaces"] == ["PS", "LE"]


def test_capture_times_increase_with_gaps_between_surfaces(inspection):
    _, manifest = inspection
    times = [datetime.fromisoformat(f.capture_time) for f in manifest.frames]
    steps = [(b - a).total_seconds() for a, b in zip(times, times[1:])]
    assert all(step > 1.0 for step in steps)
    within = steps[0:2] + steps[3:5]
    between = steps[2]
    assert max(within) < 4.0 and between > max(within) + 10


def test_masks_match_the_frames_and_the_recorded_fraction(inspection):
    out, manifest = inspection
    for frame in manifest.frames:
        png = np.array(Image.open(out / frame.mask))
        assert png.dtype == np.uint8 and png.shape == (SMALL[1], SMALL[0])
        assert set(np.unique(png)) <= {0, 255}
        assert frame.blade_fraction == pytest.approx((png == 255).mean(), abs=1e-5)
        spec = frame_spec(manifest.seed, frame.turbine, frame.blade, frame.surface, frame.index,
                          manifest.images_per_surface, SMALL)
        assert spec.seed == frame.seed
        _, mask = render(spec)
        assert np.array_equal(mask, png == 255)


def test_jpeg_has_exif_time_gps_camera_and_420_subsampling(inspection):
    out, manifest = inspection
    frame = manifest.frames[4]
    with Image.open(out / frame.image) as image:
        assert image.format == "JPEG" and image.size == SMALL
        assert JpegImagePlugin.get_sampling(image) == 2  # 4:2:0
        exif = image.getexif()
    assert exif[ExifTags.Base.Make] and exif[ExifTags.Base.Model]
    sub = exif.get_ifd(ExifTags.IFD.Exif)
    stamp = datetime.fromisoformat(frame.capture_time)
    assert sub[ExifTags.Base.DateTimeOriginal] == stamp.strftime("%Y:%m:%d %H:%M:%S")
    assert sub[ExifTags.Base.SubsecTimeOriginal] == f"{stamp.microsecond // 1000:03d}"
    gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    d, m, s = (float(v) for v in gps[ExifTags.GPS.GPSLatitude])
    assert d + m / 60 + s / 3600 == pytest.approx(frame.latitude, abs=1e-6)
    d, m, s = (float(v) for v in gps[ExifTags.GPS.GPSLongitude])
    assert d + m / 60 + s / 3600 == pytest.approx(frame.longitude, abs=1e-6)
    assert float(gps[ExifTags.GPS.GPSAltitude]) == pytest.approx(frame.altitude_m, abs=1e-3)


def test_same_seed_same_bytes_whatever_the_workers_and_other_seed_differs(tmp_path, inspection):
    first, _ = inspection
    args = dict(turbines=1, blades=1, surfaces=("PS", "LE"), images_per_surface=3, size=SMALL, quality=85)
    generate_inspection(tmp_path / "again", seed=11, workers=2, **args)
    generate_inspection(tmp_path / "other", seed=12, **args)
    reference = _files(first)
    assert _files(tmp_path / "again") == reference
    other = _files(tmp_path / "other")
    assert other.keys() == reference.keys()
    assert all(other[name] != reference[name] for name in reference if name.endswith(".JPG"))


def test_quality_changes_the_jpeg(tmp_path):
    args = dict(turbines=1, blades=1, surfaces=("TE",), images_per_surface=1, size=(160, 120), seed=2)
    low = generate_inspection(tmp_path / "low", quality=40, **args)
    high = generate_inspection(tmp_path / "high", quality=95, **args)
    low_size = (tmp_path / "low" / low.frames[0].image).stat().st_size
    high_size = (tmp_path / "high" / high.frames[0].image).stat().st_size
    assert high_size > low_size * 1.3


def test_parse_size_and_argument_checks(tmp_path):
    assert parse_size("5472x3648") == (5472, 3648)
    assert parse_size(" 201 X 149 ") == (201, 149)
    for bad in ["0x5", "100", "axb", "10x-3", "6000x4000", ""]:
        with pytest.raises(InputError):
            parse_size(bad)
    with pytest.raises(InputError, match="turbines"):
        generate_inspection(tmp_path / "x", turbines=0, size=SMALL)
    with pytest.raises(InputError, match="surfaces"):
        generate_inspection(tmp_path / "x", surfaces=("XX",), size=SMALL)
    with pytest.raises(InputError, match="quality"):
        generate_inspection(tmp_path / "x", quality=0, size=SMALL)


def test_cli_writes_an_inspection_and_refuses_to_overwrite_it(tmp_path, capsys):
    out = tmp_path / "cli"
    argv = ["synth", str(out), "--turbines", "1", "--blades", "1", "--surfaces", "ss", "--images-per-surface", "2",
            "--size", "80x60", "--seed", "5", "--quality", "80", "--workers", "1"]
    assert main(argv) == 0
    manifest = Manifest.load(out / "manifest.json")
    assert [f.surface for f in manifest.frames] == ["SS", "SS"]
    assert manifest.quality == 80 and (manifest.width, manifest.height) == (80, 60)
    assert "wrote 2 photos" in capsys.readouterr().out
    assert main(argv) == 1
    assert "already holds" in capsys.readouterr().err
    assert main(argv + ["--overwrite"]) == 0


@pytest.mark.parametrize("size", ["0x5", "80by60", "6000x4000"])
def test_cli_rejects_a_bad_size_with_a_clear_message(tmp_path, capsys, size):
    with pytest.raises(SystemExit) as exit_info:
        main(["synth", str(tmp_path / "bad"), "--size", size])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "--size" in err and ("WIDTHxHEIGHT" in err or "too small" in err or "MP" in err)
    assert not (tmp_path / "bad").exists()


def test_manifest_load_reports_bad_files(tmp_path):
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(InputError, match="manifest"):
        Manifest.load(tmp_path)
    (tmp_path / "manifest.json").write_text(json.dumps({"format": "something else"}))
    with pytest.raises(InputError, match="edge-synth-manifest"):
        Manifest.load(tmp_path / "manifest.json")


def test_mask_png_decodes_to_the_mask_in_pillow_and_opencv():
    import io

    from edge.synth.metadata import encode_mask

    mask = np.random.default_rng(0).random((37, 53)) > 0.6
    mask[10:20] = True  # long runs and repeated rows as well as noise
    data = encode_mask(mask)
    with Image.open(io.BytesIO(data)) as image:
        assert image.mode == "L"
        assert np.array_equal(np.array(image), mask * np.uint8(255))
    decoded = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    assert np.array_equal(decoded, mask * np.uint8(255))


# ---------------------------------------------------------------------------------------
# Tower, nacelle and hub (background), and the tip frames


def _pass_specs(seed: int, turbine: int, blade: int, surface: str, count: int = 8, size=(240, 160), **options):
    return [frame_spec(seed, turbine, blade, surface, index, count, size, **options) for index in range(1, count + 1)]


def test_tower_nacelle_and_hub_are_background_never_in_the_mask():
    # Seed 101, turbine 2: blade 1 horizontal, blades 2 and 3 pointing down.
    specs = [s for blade in (1, 2) for s in _pass_specs(101, 2, blade, "PS") + _pass_specs(101, 2, blade, "LE")
             if s.parts is not None and s.view is not None]
    assert {s.kind for s in specs} >= {"root", "closeup"}
    kernel = np.ones((5, 5), np.uint8)
    shown = 0
    for spec in specs:
        spec = replace(spec, exposure=1.0)
        with_parts, mask = render(spec)
        without, plain_mask = render(replace(spec, parts=None))
        assert np.array_equal(mask, plain_mask)
        changed = np.any(with_parts != without, axis=2)
        inside = cv2.erode(mask.astype(np.uint8), kernel).astype(bool)
        outside = ~cv2.dilate(mask.astype(np.uint8), kernel).astype(bool)
        assert not changed[inside].any(), spec.kind
        if changed[outside].mean() > 0.01:  # drawn beside the blade (else hidden behind it)
            shown += 1
            # the tower is light paint, like the blade
            tower_pixels = with_parts[changed & outside].astype(np.float32)
            assert np.median(tower_pixels.max(axis=1) - tower_pixels.min(axis=1)) < 40
    assert shown >= 0.7 * len(specs)


def test_parts_appear_in_the_frames_the_plan_says():
    # a blade pointing down is inspected in front of the tower: every frame with blade shows it
    for surface in SURFACES:
        for spec in _pass_specs(101, 2, 2, surface):
            if spec.view is not None:
                assert spec.parts is not None and spec.parts.tower is not None, (surface, spec.kind)
    # horizontal blades (seed 101: turbine 2 blade 1, turbine 4 blade 2): parts only in root
    # views, where the hub is inside the frame
    horizontal = [s for turbine, blade in ((2, 1), (4, 2)) for surface in SURFACES
                  for s in _pass_specs(101, turbine, blade, surface)]
    roots = [s for s in horizontal if s.kind == "root"]
    assert roots
    for spec in horizontal:
        if spec.kind == "closeup":
            assert spec.parts is None
        if spec.kind == "root":
            x, y = spec.parts.hub[:2]
            assert 0 <= x < spec.width and 0 <= y < spec.height
    # root views are first frames of a pass, with the blade smaller than in close-ups
    for spec in roots:
        assert render(spec)[1].mean() < 0.3
    assert all(s.kind != "root" for s in horizontal if s.kind == "root" and s not in roots) and all(
        s.kind != "root" for surface in SURFACES for s in _pass_specs(101, 4, 2, surface)[1:])
    # some frames without blade face the tower, the others show none
    empty = [s for t in range(1, 4) for b in (1, 2, 3) for surface in SURFACES
             for s in _pass_specs(7, t, b, surface, size=(96, 64)) if s.view is None]
    with_tower = [s for s in empty if s.parts is not None]
    assert 0 < len(with_tower) < len(empty)
    for spec in with_tower[:3]:
        rgb, mask = render(spec)
        assert not mask.any()


def test_tip_frames_show_the_banded_outer_span_of_marked_blades():
    plain = _pass_specs(101, 4, 1, "PS")
    tips = _pass_specs(101, 4, 1, "PS", tip_frames=3, marking_share=1.0)
    assert not plain[0].blade.tip_marking  # this land site has none by default
    assert all(s.blade.tip_marking for s in tips)
    # the last 3 frames (those drawn as close-ups) look at the outer 10 m; the others farther in
    assert all(s.view.d_center < 10.0 for s in tips[-3:] if s.kind == "closeup")
    assert all(s.view.d_center > tips[-3].view.d_center for s in tips[:-3] if s.kind == "closeup")
    assert sum(s.kind == "closeup" for s in tips[-3:]) >= 2
    # red bands in the mask of the tip frames: the network has to learn them as blade
    rgb, mask = render(replace(tips[-1], kind="closeup"))
    red = (rgb[..., 0].astype(int) - rgb[..., 1] > 60) & (rgb[..., 0] > 100)
    assert red.any() and red[mask].mean() > 0.5 * red.mean() and red[~mask].sum() < 0.1 * red.sum() + 5
    no_marking = _pass_specs(101, 4, 1, "PS", tip_frames=3, marking_share=0.0)
    assert not any(s.blade.tip_marking for s in no_marking)


def test_tip_options_are_checked_and_recorded(tmp_path):
    with pytest.raises(InputError, match="tip frames"):
        generate_inspection(tmp_path / "x", images_per_surface=2, tip_frames=3, size=SMALL)
    with pytest.raises(InputError, match="marking share"):
        generate_inspection(tmp_path / "x", marking_share=1.5, size=SMALL)
    manifest = generate_inspection(tmp_path / "tips", turbines=1, blades=1, surfaces=("TE",), images_per_surface=3,
                                   size=SMALL, seed=5, tip_frames=2, marking_share=1.0)
    loaded = Manifest.load(tmp_path / "tips")
    assert (loaded.tip_frames, loaded.marking_share) == (2, 1.0) == (manifest.tip_frames, manifest.marking_share)
