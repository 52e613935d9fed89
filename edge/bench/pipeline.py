"""One photo through the whole pipeline, every stage timed, next to classical codecs.

Per photo (:func:`measure_image`)::

    read + decode the source file                          decode_input
    BU-Netv2 + post-processing (when its weights load)     seg_unet, seg_fill, seg_forest,
                                                           seg_fill_final, seg_upscale
    blade mask: a mask file, drawn from colour, or the segmentation's; with a file or a
        drawn mask, the segmentation's agreement with it (F1, IoU, ...)
    square crop (--crop, at the centre or on the blade; the segmentation saw the whole photo)
    for each mode (lossy-roi, lossless-roi, ...):
        code the photo into a bundle                       mask_code, background, blade (or whole)
        write the bundle durably (fsync)                   bundle_write
        read and decode it, as the offshore side does      offshore_decode
        Bit-swap alone on the same blade, one chain        blade_sequential_encode/_decode
        (the reference's sequential mode; first --sequential photos)
        rates per region, PSNR and MS-SSIM of blade / background / whole, peak memory
    classical: lossless codecs on the blade patches, two-layer classical ROI bundles
    RD curves: our lossy coder at every quality level and JPEG 2000 / WebP / JPEG XL / AVIF
        sweeps on a centre crop (--rd-crop), BD-rates of ours against each

Regions: ``blade`` = the mask's pixels, ``background`` = the pixels outside the blade patches of
the lossy coder's grid (what the background coder codes), ``whole`` = every pixel. Region rates
are bits per pixel of the region the mode codes (``blade``: its blade cells). In lossless-ROI
bundles the blade streams carry the background streams that seeded them; the background's own
bits are what the lossy coder makes of the background patches alone (deterministic), the blade's
the rest.
"""
from __future__ import annotations

import hashlib
import math
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from edge.bench import baselines
from edge.bench.classical import SWEEPS, bd_rate, rd_points
from edge.bench.lossless import centre_crop, classical_codecs, recorded_path
from edge.bench.lossy import our_points
from edge.bench.masks import load_mask
from edge.bench.memory import PeakMemory
from edge.codec.container import read_bundle, write_bundle
from edge.codec.imageio import read_image
from edge.codec.maskcode import encode_mask
from edge.codec.metadata import source_metadata_from_bytes
from edge.codec.patches import PatchGrid, blade_cells, cells_to_mask, to_patches
from edge.codec.photo import CodingSettings, Coders, compress_pixels, decompress_bundle
from edge.codec.choose import Target, estimate_candidates
from edge.codec.contract import Region
from edge.codec.roi import image_patches, split_patches
from edge.errors import CodingError, EdgeError, InputError
from edge.segment.metrics import frame_scores

# auto: the product's default (camera blade blocks, background by auto); lossless-auto: a lossless
# blade by auto; bg-avif / bg-jxl: one background coder at the same target (auto's rivals, coded
# in full); the learned coders: lossy-roi, lossless-roi (ROI-eML), jpeg-exact-roi (HP+EASN-deep
# background) and the whole-photo modes.
AUTO_MODES = ("auto", "lossless-auto", "bg-avif", "bg-jxl")
MODES = (*AUTO_MODES, "lossy-roi", "lossless-roi", "jpeg-exact-roi", "lossy", "lossless")
DEFAULT_MODES = ("auto",)
LOSSLESS_BLADE = {*AUTO_MODES, "lossless-roi", "jpeg-exact-roi", "lossless"}
SEGMENT_STEPS = {"unet": "seg_unet", "fill": "seg_fill", "forest": "seg_forest",
                 "final": "seg_fill_final", "upscale": "seg_upscale"}
EDGE_STAGES = ("mask_code", "background", "blade", "whole", "bundle_write")
SEARCH_PATCHES = 24        # blade patches coded per trial of the blade-quality search


@dataclass(frozen=True)
class BenchOptions:
    modes: tuple[str, ...] = DEFAULT_MODES
    crop: int = 0                      # square crop side in pixels after segmentation (0: whole photo)
    crop_at: str = "centre"            # "centre" of the photo, or "blade": the blade pixels' centroid
    rd_crop: int = 1024                # centre crop of the coded image for the RD sweeps (0: all of it)
    bg_quality: int = 0                # the learned modes' background level
    bg_psnr: float = CodingSettings.bg_psnr          # the auto modes' background target (dB)
    time_budget: float = CodingSettings.time_budget_s
    learned_estimates: int = 0         # auto, first N photos: what HP+EASN-deep and Bit-swap would cost (tiles)
    blade_quality: int | None = None   # None: lowest level whose blade PSNR reaches blade_psnr
    blade_psnr: float = 40.0
    sequential: int = 1                # photos whose blade is also coded by Bit-swap's sequential mode
    classical: bool = True             # lossless blade codecs and two-layer classical ROI
    rd: bool = True                    # RD sweeps and BD-rates
    roi_codec: str = "avif"

    def __post_init__(self):
        unknown = [m for m in self.modes if m not in MODES]
        if unknown or not self.modes:
            raise InputError(f"unknown mode(s) {', '.join(unknown) or '(none)'}; choose from {', '.join(MODES)}")
        if self.crop_at not in ("centre", "blade"):
            raise InputError(f"crop position must be 'centre' or 'blade', not {self.crop_at!r}")
        if self.roi_codec not in baselines.LADDERS:
            raise InputError(f"unknown classical ROI codec {self.roi_codec!r} "
                             f"(choose from {', '.join(baselines.LADDERS)})")

    def key(self, weights: dict) -> str:
        """Identifies the settings a row was measured with (resuming mixes no settings)."""
        text = repr(sorted({**asdict(self), "sequential": None, "learned_estimates": None,
                            "weights": weights}.items()))
        return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass
class BenchModels:
    """The models of one run: coders shared by every photo, and what else a stage needs."""

    coders: Coders
    bitswap_sequential: object | None = None   # a BitswapCoder with one stream and no pool
    segmenter: object | None = None            # BU-Netv2: the mask, or timed next to a given mask
    masks_dir: Path | None = None              # masks from files here
    draw_masks: bool = False                   # masks drawn from colour (edge.bench.masks)
    worker_pids: list[int] = field(default_factory=list)

    @property
    def mask_source(self) -> str:
        return "file" if self.masks_dir is not None else "drawn" if self.draw_masks else "segmentation"


class _Clock:
    """Named wall-clock stages; ``progress`` hears each stage's name as it starts."""

    def __init__(self, progress: Callable[[str], None] | None):
        self.seconds: dict[str, float] = {}
        self.progress = progress or (lambda stage: None)

    def run(self, stage: str, function, *args, **kwargs):
        self.progress(stage)
        started = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            self.seconds[stage] = self.seconds.get(stage, 0.0) + time.perf_counter() - started


def crop_window(height: int, width: int, size: int, centre: tuple[float, float] | None = None) -> tuple:
    """(top, left, height, width) of a square crop on the 16-pixel JPEG block grid.

    Centred on the image (the crop :func:`edge.bench.lossless.centre_crop` takes) or on ``centre``
    (row, column), moved inside the image if it would stick out.
    """
    if size <= 0:
        return 0, 0, height, width
    size = min(size, height // 64 * 64, width // 64 * 64)
    if centre is None:
        return (height - size) // 2 // 16 * 16, (width - size) // 2 // 16 * 16, size, size
    top = min(max(0, int(centre[0]) - size // 2), height - size) // 16 * 16
    left = min(max(0, int(centre[1]) - size // 2), width - size) // 16 * 16
    return top, left, size, size


def settings_for(mode: str, options: BenchOptions, blade_quality: int) -> CodingSettings:
    auto = {"bg_psnr": options.bg_psnr, "time_budget_s": options.time_budget}
    if mode == "auto":
        return CodingSettings(mode="roi", **auto)
    if mode == "lossless-auto":
        return CodingSettings(mode="roi", blade="lossless", **auto)
    if mode in ("bg-avif", "bg-jxl"):
        return CodingSettings(mode="roi", background=mode[3:], **auto)
    learned = {"background": "hp-easn", "bg_quality": options.bg_quality}
    if mode == "lossy-roi":
        return CodingSettings(mode="roi", blade="lossy", blade_quality=blade_quality, **learned)
    if mode == "lossless-roi":
        return CodingSettings(mode="roi", blade="bitswap", **learned)
    if mode == "jpeg-exact-roi":
        return CodingSettings(mode="roi", blade="jpeg-exact", **learned)
    if mode == "lossy":   # the whole photo at the blade's quality: what it costs without ROI
        return CodingSettings(mode="lossy", quality=blade_quality)
    return CodingSettings(mode="lossless")


def choose_blade_quality(image: np.ndarray, mask: np.ndarray, lossy, target_psnr: float,
                         sample: int = SEARCH_PATCHES) -> dict:
    """The lowest quality level whose blade PSNR reaches ``target_psnr``, by bisection over levels.

    The search codes at most ``sample`` blade patches (evenly spread over the photo's blade
    patches) per trial: a full photo has about a hundred. The bundle's own blade PSNR, measured
    afterwards on every blade pixel, is the number reported for the mode.
    """
    grid = PatchGrid(image.shape[0], image.shape[1], lossy.patch_size)
    blade = np.flatnonzero(blade_cells(mask, grid).ravel())
    if blade.size == 0:
        return {"level": lossy.levels - 1, "psnr": None, "reached": False, "tried": {}, "patches": 0}
    chosen = blade[np.linspace(0, blade.size - 1, min(sample, blade.size)).round().astype(int)]
    patches = image_patches(image, grid)[chosen]
    padded_mask = np.zeros((grid.padded_height, grid.padded_width, 1), bool)
    padded_mask[: grid.height, : grid.width, 0] = mask
    where = to_patches(padded_mask, grid)[chosen][:, 0]            # (n, p, p): blade pixels of the sample
    reference = patches.transpose(0, 2, 3, 1)[where].astype(np.float64)
    tried: dict[int, float] = {}

    def blade_psnr(level: int) -> float:
        if level not in tried:
            decoded = lossy.decompress(lossy.compress(patches, level)).transpose(0, 2, 3, 1)[where]
            mse = float(np.mean((reference - decoded) ** 2))
            tried[level] = math.inf if mse == 0 else 10 * math.log10(255.0**2 / mse)
        return tried[level]

    index, reached = baselines.lowest_step(list(range(lossy.levels)), lambda lv: blade_psnr(lv) >= target_psnr)
    return {"level": index, "psnr": tried.get(index), "reached": reached, "tried": tried,
            "patches": int(chosen.size)}


def measure_image(path: Path, options: BenchOptions, models: BenchModels, index: int = 0,
                  progress: Callable[[str], None] | None = None) -> dict:
    """Every number of one photo (see the module doc); a mode that fails records its error."""
    path = Path(path)
    clock = _Clock(progress)
    image, data = clock.run("decode_input", read_image, path)
    metadata = source_metadata_from_bytes(data, path.name, str(path))
    source_height, source_width = image.shape[:2]
    row = {"image": path.name, "path": recorded_path(path),
           "source": {"bytes": len(data), "width": source_width, "height": source_height,
                      "pixels": source_width * source_height}}

    memory = PeakMemory(models.worker_pids)
    segmented = None
    if models.segmenter is not None:   # timed even when the coded mask comes from elsewhere
        # Imported here: it pulls in scikit-learn (0.9 s on a 2-core CPU), which edge-bench needs only when
        # it segments (not for --help, --from-json or --no-segmentation).
        from edge.segment.pipeline import segment_surface

        memory.start()
        surface = clock.run("segmentation", segment_surface, [image], models.segmenter)
        del clock.seconds["segmentation"]
        for step, stage in SEGMENT_STEPS.items():
            clock.seconds[stage] = surface.seconds.get(step, 0.0)
        segmented = surface.masks[0]
        row["segmentation_memory"] = memory.read()
    row["mask_source"] = models.mask_source
    if models.mask_source == "segmentation":
        if segmented is None:
            raise InputError("no blade mask: give --masks DIR or --draw-masks, or install the BU-Netv2 weights",
                             str(path))
        mask = segmented
    else:
        mask = load_mask(path, image, models.masks_dir)
        if segmented is not None:   # how far the model's mask is from the one coded
            row["segmentation_agreement"] = frame_scores(segmented, mask).as_dict()

    centre = None
    if options.crop_at == "blade" and mask.any():   # the crop then holds blade and, at its edges, background
        rows, cols = np.nonzero(mask)
        centre = (float(rows.mean()), float(cols.mean()))
    top, left, height, width = crop_window(source_height, source_width, options.crop, centre)
    cropped = (height, width) != (source_height, source_width)
    image = np.ascontiguousarray(image[top:top + height, left:left + width])
    mask = np.ascontiguousarray(mask[top:top + height, left:left + width])
    grid = PatchGrid(height, width, models.coders.lossy.patch_size)
    cells = cells_to_mask(blade_cells(mask, grid), grid)
    row.update(crop={"top": top, "left": left, "height": height, "width": width, "cropped": cropped},
               width=width, height=height, pixels=width * height,
               blade_fraction=float(mask.mean()), blade_cell_fraction=float(cells.mean()))
    row["stages"] = dict(clock.seconds)

    blade_quality = options.blade_quality
    if any(m in ("lossy-roi", "lossy") for m in options.modes):
        if blade_quality is None:
            (progress or (lambda s: None))("choose blade quality")
            choice = choose_blade_quality(image, mask, models.coders.lossy, options.blade_psnr)
            blade_quality = choice["level"]
            row["blade_quality_search"] = choice
        row["blade_quality"] = blade_quality

    context = _ImageContext(image, mask, cells, grid, metadata, None if cropped else data, options)
    row["modes"] = {}
    for mode in options.modes:
        try:
            row["modes"][mode] = measure_mode(mode, context, models, blade_quality, clock,
                                              sequential=index < options.sequential,
                                              estimates=index < options.learned_estimates)
        except EdgeError as error:   # one failing mode must not hide the others' numbers
            row["modes"][mode] = {"error": f"{type(error).__name__}: {error}"}

    source_bpp = 8 * len(data) / (source_width * source_height)
    for measured in row["modes"].values():
        if "bpp" in measured:   # with --crop: the source file's bits per pixel over the whole photo
            measured["source_ratio"] = source_bpp / measured["bpp"]["total"]
            measured["full_size_bytes"] = measured["bpp"]["total"] * source_width * source_height / 8

    if options.classical:
        (progress or (lambda s: None))("classical")
        row["classical"] = measure_classical(context, row["modes"])
    if options.rd:
        (progress or (lambda s: None))("rd sweeps")
        row["rd"] = measure_rd(centre_crop(image, options.rd_crop), models.coders.lossy)
    return row


@dataclass
class _ImageContext:
    image: np.ndarray
    mask: np.ndarray
    cells: np.ndarray                   # blade patches of the lossy grid, pixel mask
    grid: PatchGrid
    metadata: object
    source_bytes: bytes | None          # the photo file, when the whole photo is coded
    options: BenchOptions
    background_bits: int | None = None  # the lossy coder's bits for the background patches alone


def measure_mode(mode: str, context: _ImageContext, models: BenchModels, blade_quality, clock: _Clock,
                 sequential: bool, estimates: bool = False) -> dict:
    settings = settings_for(mode, context.options, blade_quality)
    coders = models.coders
    memory = PeakMemory(models.worker_pids)
    image, mask = context.image, context.mask

    clock.progress(f"{mode}: code")
    memory.start()
    result = compress_pixels(image, context.metadata, settings, coders, mask, source_bytes=context.source_bytes)
    bundle = result.bundle
    encode_memory = memory.read()
    stages = {("whole" if key == "code" else key): value for key, value in result.report["seconds"].items()}
    started = time.perf_counter()   # compress_pixels does not time its mask code: code it again
    mask_code = encode_mask(blade_cells(mask, bundle.grid))
    stages["mask_code"] = time.perf_counter() - started
    if mask_code != bundle.mask_code:
        raise CodingError(f"{mode}: the bundle's mask code is not the blade cell map of its grid")

    with tempfile.TemporaryDirectory(prefix="edge-bench-") as folder:
        target = Path(folder) / "photo.edgb"
        clock.progress(f"{mode}: write")
        started = time.perf_counter()
        write_bundle(target, bundle)
        stages["bundle_write"] = time.perf_counter() - started
        bundle_bytes = target.stat().st_size
        clock.progress(f"{mode}: decode")
        memory.start()
        started = time.perf_counter()
        decoded = decompress_bundle(read_bundle(target), coders)
        stages["offshore_decode"] = time.perf_counter() - started
        decode_memory = memory.read()

    clock.progress(f"{mode}: quality")
    pixels = image.shape[0] * image.shape[1]
    coded_cells = decoded.mask                 # blade cells of the bundle's own grid
    out = {"settings": asdict(settings), "stages": stages,
           "memory": {"encode": encode_memory, "decode": decode_memory},
           "bytes": {"bundle": bundle_bytes, "mask": len(mask_code)},
           "blade_cell_pixels": int(coded_cells.sum()),
           "quality": baselines.region_quality(image, decoded.image, mask,
                                               ~coded_cells if mode in AUTO_MODES else ~context.cells)}
    if "choices" in result.report:
        out["choices"] = result.report["choices"]
    if mode == "auto" and estimates:
        clock.progress(f"{mode}: learned estimates")
        out["learned_estimates"] = learned_estimates(image, coded_cells, coders, context.options.bg_psnr)
    out["bits"] = {**_region_bits(mode, result.report["regions"], context, coders, settings),
                   "mask": 8 * len(mask_code)}
    out["bits"]["container"] = 8 * bundle_bytes - sum(out["bits"].values())   # header, metadata, framing
    out["bpp"] = {"total": 8 * bundle_bytes / pixels}
    if "blade" in out["bits"] and coded_cells.any():
        out["bpp"]["blade"] = out["bits"]["blade"] / int(coded_cells.sum())
    if "background" in out["bits"] and not coded_cells.all():
        out["bpp"]["background"] = out["bits"]["background"] / int((~coded_cells).sum())
    if "whole" in out["bits"]:
        out["bpp"]["whole"] = out["bits"]["whole"] / pixels
    if mode == "lossless":
        out["blade_exact"] = bool(np.array_equal(decoded.image, image))
    elif mode in LOSSLESS_BLADE:
        out["blade_exact"] = bool(np.array_equal(decoded.image[coded_cells], image[coded_cells]))
    if mode == "lossless-roi" and sequential and models.bitswap_sequential is not None and context.cells.any():
        clock.progress(f"{mode}: sequential Bit-swap")
        out["sequential"] = measure_sequential(context, models.bitswap_sequential, stages.get("blade"))
        # Rate cost of parallel streams: each stream pays its first patch's initial bits beyond its seed.
        out["sequential"]["parallel_to_sequential_bits"] = out["bits"]["blade"] / out["sequential"]["bits"]
    return out


def _region_bits(mode: str, regions: dict, context: _ImageContext, coders: Coders, settings) -> dict:
    bits = {name: int(region["bits"]) for name, region in regions.items()}
    if mode in ("lossy-roi", "lossless-roi"):
        background_alone = _background_bits(context, coders, settings.bg_quality, regions)
        if mode == "lossless-roi":   # the blade streams carry the background streams that seeded them
            bits["blade"] = bits["blade"] + bits["background"] - background_alone
            bits["background"] = background_alone
    return bits


def _background_bits(context: _ImageContext, coders: Coders, quality: int, regions: dict) -> int:
    if context.background_bits is None:
        background = regions.get("background", {})
        if background.get("coder") == "lossy" and "carried_by_blade" not in background.get("params", {}):
            context.background_bits = int(background["bits"])
        else:   # code the background patches alone (not timed; same call the ROI coder makes)
            patches = image_patches(context.image, context.grid)[~blade_cells(context.mask, context.grid).ravel()]
            context.background_bits = coders.lossy.compress(patches, quality).bits
    return context.background_bits


def learned_estimates(image: np.ndarray, cell_mask: np.ndarray, coders: Coders, bg_psnr: float) -> dict:
    """What the learned coders would cost on this photo's regions, by auto's own calibration
    (no time budget): HP+EASN-deep for the background at ``bg_psnr``, Bit-swap for the blade."""
    out = {}
    for region, names, target in (("background", ("hp-easn", "avif"), Target(bg_psnr)),
                                  ("blade", ("bitswap", "jxl-lossless"), Target(None))):
        where = ~cell_mask if region == "background" else cell_mask
        started = time.perf_counter()
        candidates = estimate_candidates(coders, names, Region(image, where), target)
        out[region] = {"seconds": time.perf_counter() - started,
                       "candidates": [{k: v for k, v in vars(c).items() if v not in (None, "")} for c in candidates]}
    return out


def measure_sequential(context: _ImageContext, bitswap, parallel_seconds: float | None) -> dict:
    """Bit-swap's sequential mode (one stream, one process) on the same blade sub-patches."""
    flags = blade_cells(context.mask, context.grid).ravel()
    sub = split_patches(image_patches(context.image, context.grid)[flags], bitswap.patch_size)
    started = time.perf_counter()
    coded = bitswap.compress(sub)
    encode_s = time.perf_counter() - started
    started = time.perf_counter()
    decoded = bitswap.decompress(coded)
    decode_s = time.perf_counter() - started
    out = {"sub_patches": len(sub), "encode_s": encode_s, "decode_s": decode_s, "bits": coded.bits,
           "exact": bool(np.array_equal(decoded, sub))}
    if parallel_seconds:
        out["encode_speedup"] = encode_s / parallel_seconds
    return out


def measure_classical(context: _ImageContext, modes: dict) -> dict:
    """Lossless codecs on the blade patches, and the two-layer classical ROI matched to our modes."""
    image, mask, cells = context.image, context.mask, context.cells
    mask_bytes = len(encode_mask(blade_cells(mask, context.grid)))
    out = {}
    if "lossless-roi" in modes:
        out["lossless_blade"] = baselines.lossless_blade(image, cells)
    if "lossless-auto" in modes:   # the reference a lossless blade must not exceed: JPEG XL on the same cells
        out["lossless_blade_cells16"] = baselines.lossless_blade(
            image, cells_to_mask(*_cells16(mask)), {"jpegxl": classical_codecs()["jpegxl"]})
    for ours, blade, name in (("lossy-roi", "lossy", "roi_lossy"), ("lossless-roi", "lossless", "roi_lossless"),
                              ("auto", "lossy", "roi_anchor")):
        measured = modes.get(ours, {})
        target = measured.get("quality", {}).get("background", {}).get("psnr")
        if target is None:
            continue
        # auto's bundles sit on 16-pixel cells: the anchor's layers and mask code use the same cells.
        anchor_cells, anchor_mask_bytes = cells, mask_bytes
        if ours == "auto":
            cells16, grid16 = _cells16(mask)
            anchor_cells, anchor_mask_bytes = cells_to_mask(cells16, grid16), len(encode_mask(cells16))
        out[name] = baselines.two_layer_roi(
            image, mask, anchor_cells, anchor_mask_bytes, target, context.options.roi_codec, blade,
            context.options.blade_psnr, out.get("lossless_blade") if ours != "auto" else None)
        out[name]["matches"] = ours
    return out


def _cells16(mask: np.ndarray):
    grid = PatchGrid(mask.shape[0], mask.shape[1], 16)
    return blade_cells(mask, grid), grid


def measure_rd(image: np.ndarray, lossy) -> dict:
    """Whole-image RD points of ours (every level) and of each classical sweep; BD-rates of ours."""
    out = {"height": image.shape[0], "width": image.shape[1],
           "ours": our_points(lossy, image, list(range(lossy.levels)))}
    out["bd_rate"], out["no_overlap"] = {}, {}
    for name in SWEEPS:
        try:
            out[name] = rd_points(image, name)
            out["bd_rate"][name] = bd_rate(out[name], out["ours"])
        except Exception as error:  # a codec missing from this imagecodecs build must not stop the run
            out[name] = {"error": f"{type(error).__name__}: {error}"}
            continue
        if out["bd_rate"][name] is None:   # say why there is no number: where each curve lies
            ours_best = max(out["ours"], key=lambda p: p["psnr"])
            its_lowest = min(out[name], key=lambda p: p["psnr"])
            out["no_overlap"][name] = {"ours_best": {"bpp": ours_best["bpp"], "psnr": ours_best["psnr"]},
                                       "its_lowest": {"bpp": its_lowest["bpp"], "psnr": its_lowest["psnr"]}}
    return out


def finite(value):
    """JSON-safe copy: NaN and infinities become None (lossless regions say ``blade_exact``)."""
    if isinstance(value, dict):
        return {key: finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(item) for item in value]
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value
