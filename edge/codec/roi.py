"""ROI-eML: blade and background of one photo coded apart, the blade patches in parallel.

The photo is mirror-padded to the lossy coder's patch grid (256). A patch holding any blade
pixel is a blade patch. Background patches go through the lossy coder at a low quality, one
ANS stream each. Blade patches go either through the lossy coder at a high quality, or through
Bit-swap, cut into its 64x64 patches:

    blade sub-patch i  ->  blade stream i % S
    background stream b  ->  carried by blade stream b % S (all of them, in order)

Blade stream g starts from the coded words of the background streams it carries (bits-back
takes its initial bits from them), so the S streams are coded in lock-step, in parallel. S is
the number of streams whose seeds hold about the initial bits of one patch
(``SEED_WORDS``), and at least ``MIN_STREAMS`` for parallel work, but never more than there are
background streams or blade sub-patches: each blade stream then pays almost no initial bits of
its own (one short background stream per blade stream would pay most of them from the pad).
Sub-patches beyond S chain on the same streams (plain Bit-swap). Below each seed lie
``PAD_WORDS`` fixed pseudo-random words, so a short seed never runs out of initial bits; only
the pad words the coding touched are stored. With no background at all, Bit-swap runs
standalone.

Decoding reverses it: Bit-swap pops the blade off each stream; what is left is the pad and the
carried background streams, cut apart by their recorded lengths, which the lossy coder then
decodes.
"""
from __future__ import annotations

import time

import numpy as np

from edge.codec.bitswap.coder import standalone_seed
from edge.codec.container import Bundle, BundleRegion, pixels_sha256
from edge.codec.contract import CodedRegion
from edge.codec.patches import PatchGrid, blade_cells, from_patches, mirror_pad, to_patches
from edge.errors import CodingError

PAD_WORDS = 4096
SEED_WORDS = 2048       # about the initial bits of one 64x64 patch (measured: 52-55 kbit)
MIN_STREAMS = 8         # parallel work for the stream pool even when the background is short


def image_patches(image: np.ndarray, grid: PatchGrid) -> np.ndarray:
    return to_patches(mirror_pad(image, grid), grid)


def image_from_patches(patches: np.ndarray, grid: PatchGrid) -> np.ndarray:
    return from_patches(patches, grid)


def split_patches(patches: np.ndarray, size: int) -> np.ndarray:
    """(N, C, P, P) -> (N * (P/size)^2, C, size, size), sub-patches row-major inside each patch."""
    n, c, p, _ = patches.shape
    k = p // size
    return np.ascontiguousarray(
        patches.reshape(n, c, k, size, k, size).transpose(0, 2, 4, 1, 3, 5).reshape(n * k * k, c, size, size))


def join_patches(sub: np.ndarray, patch_size: int) -> np.ndarray:
    """Inverse of :func:`split_patches`."""
    size = sub.shape[2]
    k = patch_size // size
    n = len(sub) // (k * k)
    c = sub.shape[1]
    return np.ascontiguousarray(
        sub.reshape(n, k, k, c, size, size).transpose(0, 3, 1, 4, 2, 5).reshape(n, c, patch_size, patch_size))


def _pad(stream: int) -> np.ndarray:
    return standalone_seed(10_000 + stream, PAD_WORDS)


def compress_regions(image: np.ndarray, mask: np.ndarray, settings, coders, times: dict):
    """Returns (regions, grid, cells); fills ``times`` with the seconds of each stage."""
    lossy = coders.lossy
    grid = PatchGrid(image.shape[0], image.shape[1], lossy.patch_size)
    cells = blade_cells(mask, grid)
    blade = cells.ravel()
    patches = image_patches(image, grid)

    started = time.perf_counter()
    background = lossy.compress(patches[~blade], settings.bg_quality)
    times["background"] = time.perf_counter() - started

    started = time.perf_counter()
    blade_patches = patches[blade]
    if settings.blade == "lossy":
        blade_region = BundleRegion("blade", lossy.compress(blade_patches, settings.blade_quality))
    else:
        blade_region, background = _compress_lossless_blade(blade_patches, background, coders.lossless)
    times["blade"] = time.perf_counter() - started
    return (BundleRegion("background", background), blade_region), grid, cells


def blade_stream_count(background_words: list[int], sub_patches: int) -> int:
    """How many blade streams carry the background streams (module doc)."""
    enough = max(MIN_STREAMS, sum(background_words) // SEED_WORDS)
    return min(len(background_words), sub_patches, enough)


def _compress_lossless_blade(blade_patches: np.ndarray, background: CodedRegion, bitswap):
    sub = split_patches(blade_patches, bitswap.patch_size)
    carried = [np.frombuffer(stream, dtype=np.uint32) for stream in background.streams]
    streams = blade_stream_count([len(words) for words in carried], len(sub))
    if streams == 0:  # blade-only photo (or no blade): Bit-swap standalone
        coded = bitswap.compress(sub)
        return BundleRegion("blade", coded, pixels_sha256(blade_patches)), background
    seeds = [np.concatenate([_pad(g), *carried[g::streams]]) for g in range(streams)]
    coded = bitswap.compress(sub, initial_words=seeds)
    # Store only the pad words the coding touched; the decoder regenerates the rest.
    kept = []
    prefixes = []
    for g, stream in enumerate(coded.streams):
        words = np.frombuffer(stream, dtype=np.uint32)
        pad = _pad(g)
        differ = np.flatnonzero(words[:PAD_WORDS] != pad[: min(PAD_WORDS, len(words))])
        prefix = int(differ[0]) if differ.size else min(PAD_WORDS, len(words))
        prefixes.append(prefix)
        kept.append(words[prefix:].tobytes())
    blade = CodedRegion(coded.coder, coded.model, coded.weights_sha256, coded.patch_size, coded.count,
                        tuple(kept), {**coded.params, "pad_prefix": prefixes, "seeded_by": "background",
                                      "carried_words": [len(words) for words in carried]})
    # Every background stream now travels inside a blade stream.
    background = CodedRegion(background.coder, background.model, background.weights_sha256,
                             background.patch_size, background.count, tuple(b"" for _ in carried),
                             {**background.params, "carried_by_blade": len(carried)})
    return BundleRegion("blade", blade, pixels_sha256(blade_patches)), background


def own_bits(regions) -> list[int]:
    """Bits of each region, the background streams a lossless blade carries counted as background."""
    bits = [region.coded.bits for region in regions]
    names = [region.name for region in regions]
    if "blade" in names and "background" in names:
        blade = regions[names.index("blade")].coded
        if blade.params.get("seeded_by") == "background":
            carried = 32 * sum(blade.params.get("carried_words", []))
            bits[names.index("blade")] -= carried
            bits[names.index("background")] += carried
    return bits


def decompress_regions(bundle: Bundle, cells: np.ndarray, coders) -> np.ndarray:
    grid = bundle.grid
    try:
        background = bundle.region("background")
        blade = bundle.region("blade")
    except KeyError as error:
        raise CodingError(f"ROI bundle: {error}") from None
    blade_flags = cells.ravel()
    if background.coded.count != int((~blade_flags).sum()) or blade.coded.count == 0 and blade_flags.any():
        raise CodingError("ROI bundle: region patch counts do not match the mask")
    bg_coded = background.coded
    blade_coded = blade.coded
    if blade_coded.coder == "bitswap":
        bitswap = coders.for_region(blade_coded)
        blade_patches, bg_coded = _decompress_lossless_blade(blade_coded, bg_coded, bitswap, grid.patch_size)
        if pixels_sha256(blade_patches) != blade.pixel_sha256:
            raise CodingError("blade region decodes to pixels whose hash differs from the original's")
    else:
        blade_patches = coders.for_region(blade_coded).decompress(blade_coded)
    lossy = coders.for_region(bg_coded)
    bg_patches = lossy.decompress(bg_coded)
    patches = np.empty((grid.count, 3, grid.patch_size, grid.patch_size), dtype=np.uint8)
    if len(blade_patches) != int(blade_flags.sum()) or len(bg_patches) != int((~blade_flags).sum()):
        raise CodingError("ROI bundle: decoded patch counts do not match the mask")
    patches[blade_flags] = blade_patches
    patches[~blade_flags] = bg_patches
    return image_from_patches(patches, grid)


def _decompress_lossless_blade(blade: CodedRegion, background: CodedRegion, bitswap, patch_size: int):
    if blade.params.get("seeded_by") != "background":
        sub = bitswap.decompress(blade)
        return join_patches(sub, patch_size), background
    prefixes = blade.params.get("pad_prefix")
    lengths = blade.params.get("carried_words")
    tables_agree = (isinstance(prefixes, list) and len(prefixes) == len(blade.streams)
                    and isinstance(lengths, list) and len(lengths) == len(background.streams)
                    and background.params.get("carried_by_blade") == len(lengths) >= len(blade.streams)
                    and all(isinstance(n, int) and n >= 0 for n in lengths))
    if not tables_agree:
        raise CodingError("ROI bundle: blade and background stream tables disagree")
    streams = []
    for g, (prefix, stream) in enumerate(zip(prefixes, blade.streams)):
        if not isinstance(prefix, int) or not 0 <= prefix <= PAD_WORDS:
            raise CodingError(f"ROI bundle: bad pad length on blade stream {g}")
        streams.append(_pad(g)[:prefix].tobytes() + stream)
    full = CodedRegion(blade.coder, blade.model, blade.weights_sha256, blade.patch_size, blade.count,
                       tuple(streams), blade.params)
    sub, remaining = bitswap.decompress_with_seeds(full)
    count = len(blade.streams)
    bg_streams: list[bytes] = [b""] * len(lengths)
    for g, words in enumerate(remaining):
        if len(words) < PAD_WORDS or not np.array_equal(words[:PAD_WORDS], _pad(g)):
            raise CodingError(f"blade stream {g} does not end on its pad: the stream is damaged")
        rest = words[PAD_WORDS:]
        members = range(g, len(lengths), count)
        if len(rest) != sum(lengths[b] for b in members):
            raise CodingError(f"blade stream {g} does not end on the background streams it carries: "
                              f"the stream is damaged")
        start = 0
        for b in members:
            bg_streams[b] = rest[start:start + lengths[b]].tobytes()
            start += lengths[b]
    background = CodedRegion(background.coder, background.model, background.weights_sha256,
                             background.patch_size, background.count, tuple(bg_streams), background.params)
    return join_patches(sub, patch_size), background
