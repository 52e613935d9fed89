"""The implicit ROI coder: the mask-conditioned model + constriction ANS coding of its latents.

The whole photo is cut into 256x256 tiles (mirror padding, as the lossy coder); each tile is
coded into one independent ANS stream holding, in decoding order:

    z (per-channel factorized tables), z escapes,
    anchor latents of y grouped by scale index, their escapes,
    non-anchor latents of y grouped by scale index, their escapes.

Each y latent is sent as the residual ``y_hat - round(mean)`` under a zero-mean Gaussian table
chosen by its predicted scale. Anchors (checkerboard, even row + column) get mean and scale
from the hyperprior alone; non-anchors also from the decoded anchors (parallel context).

The mask is side information: the caller gives the encoder the same mask the decoder will
have (the bundle's coded cell mask, :data:`MASK_CELL` pixels per cell). A hash of it travels in
the region's params, so decoding with a missing or different mask fails with a clear error
instead of a wrong picture. The explicit baseline codes only the latents its gate keeps.

Design rule 3: every number that shapes a table (h_s, the context model and the entropy
parameters) runs in float64 on the CPU (:meth:`ImplicitCoder.entropy_parameters`); the
tables are the integers of edge.codec.lossy.tables, built at export and shipped.
"""
from __future__ import annotations

import copy
import hashlib

import constriction
import numpy as np
import torch

from edge.codec.contract import CodedRegion
from edge.codec.implicit.model import ImplicitROI, anchor_mask
from edge.codec.entropy import TableModels, open_stream, to_symbols
from edge.codec.lossy.tables import SCALE_TABLE, EntropyTables
from edge.codec.patches import PatchGrid, blade_cells, cells_to_mask, from_patches, mirror_pad, to_patches
from edge.errors import CodingError

CODER = "implicit-roi"
PATCH_SIZE = 256
MASK_CELL = 16          # cell size of the coded mask given to this coder (one latent per cell)
BATCH = 4               # tiles per network call: bounds memory on 20 MP photos


def mask_digest(mask: np.ndarray) -> str:
    """Short hash of a bool mask and its shape: what the decoder's mask is checked against."""
    mask = np.asarray(mask, dtype=bool)
    data = np.array(mask.shape, dtype=np.int64).tobytes() + np.packbits(mask).tobytes()
    return hashlib.sha256(data).hexdigest()[:16]


class ImplicitCoder:
    """Compress tiles (with their mask) to per-tile streams and back."""

    name = CODER

    def __init__(self, model: ImplicitROI, tables: EntropyTables, model_name: str, weights_sha256: str,
                 patch_size: int = PATCH_SIZE):
        self.model = model.eval()
        self.tables = tables
        self.model_name = model_name
        self.weights_sha256 = weights_sha256
        self.patch_size = patch_size
        # Canonical copies: float64 on the CPU, never replaced by an accelerated backend.
        self.h_s64 = copy.deepcopy(model.h_s).to(torch.float64).eval()
        self.context64 = copy.deepcopy(model.context).to(torch.float64).eval()
        self.entropy = TableModels(tables)

    @property
    def levels(self) -> int:
        return self.model.config.levels

    def check_level(self, level: int) -> int:
        if not 0 <= int(level) < self.levels:
            raise CodingError(f"quality level {level} is out of range 0..{self.levels - 1}")
        return int(level)

    def latent_shapes(self) -> tuple[tuple, tuple]:
        p, cfg = self.patch_size, self.model.config
        return (cfg.m, p // 16, p // 16), (cfg.nz, p // 64, p // 64)

    # -- transforms -------------------------------------------------------------------------
    @staticmethod
    def _mask_tensor(masks: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(masks, dtype=np.float32))[:, None]

    @torch.no_grad()
    def analyse(self, patches: np.ndarray, masks: np.ndarray, level: int) -> tuple[np.ndarray, np.ndarray]:
        """uint8 (N, 3, p, p) + bool (N, p, p) -> int32 y_hat (N, m, h, w), z_hat (N, nz, h/4, w/4)."""
        gain, _ = self.model.gains(self.check_level(level))
        (m, h, w), (nz, zh, zw) = self.latent_shapes()
        ys, zs = [np.zeros((0, m, h, w), np.int32)], [np.zeros((0, nz, zh, zw), np.int32)]
        for start in range(0, len(patches), BATCH):
            x = torch.from_numpy(patches[start: start + BATCH]).float() / 255.0
            mask = self._mask_tensor(masks[start: start + BATCH])
            y_hat = torch.round(self.model.g_a(x, mask) * gain)
            gate = self.model.gate(mask, y_hat.shape)
            if gate is not None:
                y_hat = y_hat * gate
            ys.append(y_hat.to(torch.int32).numpy())
            zs.append(torch.round(self.model.h_a(y_hat)).to(torch.int32).numpy())
        return np.concatenate(ys), np.concatenate(zs)

    @torch.no_grad()
    def synthesize(self, y_hat: np.ndarray, masks: np.ndarray, level: int) -> np.ndarray:
        """int32 y_hat + bool masks -> uint8 tiles (N, 3, p, p)."""
        _, inv_gain = self.model.gains(self.check_level(level))
        out = [np.zeros((0, 3, self.patch_size, self.patch_size), np.uint8)]
        for start in range(0, len(y_hat), BATCH):
            y = torch.from_numpy(y_hat[start: start + BATCH]).float() * inv_gain
            mask = self._mask_tensor(masks[start: start + BATCH])
            x_hat = self.model.synthesize(y, mask)["x_hat"].clamp(0, 1)
            out.append(torch.round(x_hat * 255).to(torch.uint8).numpy())
        return np.concatenate(out)

    @torch.no_grad()
    def entropy_parameters(self, z_hat: np.ndarray, y_hat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Canonical path (float64, CPU): (rounded mean, scale index) of every latent of one tile.

        Only the anchors of ``y_hat`` are read, so the decoder may pass zeros elsewhere.
        """
        hyper = self.h_s64(torch.from_numpy(z_hat[None]).to(torch.float64))
        mean, log_scale = self.context64(hyper, torch.from_numpy(y_hat[None]).to(torch.float64))
        scales = np.exp(log_scale.clamp(max=8.0)[0].numpy())
        indexes = np.minimum(np.searchsorted(SCALE_TABLE, scales, side="left"), len(SCALE_TABLE) - 1)
        return np.round(mean[0].numpy()).astype(np.int64), indexes

    def _gate(self, mask: np.ndarray) -> np.ndarray:
        """Bool (m, h, w): which latents of a tile are coded (all but the explicit gate's zeros)."""
        y_shape = self.latent_shapes()[0]
        gate = self.model.gate(self._mask_tensor(mask[None]), (1,) + y_shape)
        return np.ones(y_shape, bool) if gate is None else gate[0].numpy() > 0

    # -- entropy coding of one tile ----------------------------------------------------------
    def encode_tile(self, coder, y_hat: np.ndarray, z_hat: np.ndarray, mask: np.ndarray) -> None:
        """Push one tile's latents onto an ANS stack (decoding pops them in the reverse order)."""
        mean, indexes = self.entropy_parameters(z_hat, y_hat)
        anchors = np.broadcast_to(anchor_mask(*y_hat.shape[-2:]).numpy()[0] > 0, y_hat.shape)
        coded = self._gate(mask)
        # Pushed last is decoded first: non-anchors, anchors, then z on top.
        for part in (coded & ~anchors, coded & anchors):
            self._encode_y(coder, (y_hat - mean)[part], indexes[part])
        z_low, z_high = self.entropy.z_bounds(z_hat.shape)
        z_symbols, z_escapes = to_symbols(z_hat.ravel(), z_low, z_high)
        self.entropy.encode_escapes(coder, z_escapes)
        z_symbols = z_symbols.reshape(z_hat.shape[0], -1)
        for channel in range(len(z_symbols) - 1, -1, -1):
            coder.encode_reverse(z_symbols[channel], self.entropy.factorized[channel])

    def _encode_y(self, coder, residuals: np.ndarray, indexes: np.ndarray) -> None:
        half = self.tables.gaussian_half_width[indexes]
        symbols, escapes = to_symbols(residuals, -half, half)
        self.entropy.encode_escapes(coder, escapes)
        for group in range(len(SCALE_TABLE) - 1, -1, -1):
            chosen = symbols[indexes == group]
            if len(chosen):
                coder.encode_reverse(chosen, self.entropy.gaussian[group])

    def _decode_y(self, coder, indexes: np.ndarray) -> np.ndarray:
        symbols = np.empty(indexes.size, dtype=np.int64)
        for group in range(len(SCALE_TABLE)):
            where = np.flatnonzero(indexes == group)
            if len(where):
                symbols[where] = coder.decode(self.entropy.gaussian[group], len(where))
        half = self.tables.gaussian_half_width[indexes]
        return self.entropy.from_symbols(coder, symbols, -half, half)



    def decode_tile(self, coder, mask: np.ndarray) -> np.ndarray:
        """Pop one tile's y_hat from an ANS stack."""
        y_shape, z_shape = self.latent_shapes()
        per_channel = int(np.prod(z_shape[1:]))
        z_flat = np.concatenate([coder.decode(self.entropy.factorized[c], per_channel) for c in range(z_shape[0])])
        z_low, z_high = self.entropy.z_bounds(z_shape)
        z_hat = self.entropy.from_symbols(coder, z_flat, z_low, z_high).reshape(z_shape).astype(np.int32)
        anchors = np.broadcast_to(anchor_mask(*y_shape[-2:]).numpy()[0] > 0, y_shape)
        coded = self._gate(mask)
        y_hat = np.zeros(y_shape, dtype=np.int32)
        for part in (coded & anchors, coded & ~anchors):
            # Non-anchor parameters depend on the anchors, so they are recomputed after them.
            mean, indexes = self.entropy_parameters(z_hat, y_hat)
            y_hat[part] = self._decode_y(coder, indexes[part]) + mean[part]
        return y_hat

    # -- the coder contract -----------------------------------------------------------------
    def compress(self, patches: np.ndarray, quality: int, masks: np.ndarray | None = None) -> CodedRegion:
        """uint8 tiles (N, 3, p, p) and their bool masks (N, p, p) -> one stream per tile."""
        masks = self._check_masks(masks, len(patches))
        y_hat, z_hat = self.analyse(patches, masks, quality)
        streams = []
        for index in range(len(patches)):
            coder = constriction.stream.stack.AnsCoder()
            self.encode_tile(coder, y_hat[index], z_hat[index], masks[index])
            streams.append(coder.get_compressed().tobytes())
        return CodedRegion(coder=self.name, model=self.model_name, weights_sha256=self.weights_sha256,
                           patch_size=self.patch_size, count=len(patches), streams=tuple(streams),
                           params={"quality": int(quality), "mask": mask_digest(masks)})

    def decode_latents(self, coded: CodedRegion, masks: np.ndarray) -> np.ndarray:
        """Streams -> y_hat of every tile, checking each stream is used up exactly."""
        ys = [np.zeros((0,) + self.latent_shapes()[0], np.int32)]
        for index, stream in enumerate(coded.streams):
            coder = open_stream(stream, index)
            try:
                ys.append(self.decode_tile(coder, masks[index])[None])
            except (ValueError, RuntimeError, AssertionError) as error:
                raise CodingError(f"implicit-roi stream {index} does not decode: {error}") from None
            if not coder.is_empty():
                raise CodingError(f"implicit-roi stream {index} has data left after its last symbol: damaged")
        return np.concatenate(ys)

    def decompress(self, coded: CodedRegion, masks: np.ndarray | None = None) -> np.ndarray:
        """Streams + the same masks the encoder had -> uint8 tiles (N, 3, p, p)."""
        if coded.coder != self.name or coded.patch_size != self.patch_size:
            raise CodingError(f"region was coded by {coded.coder!r} at patch size {coded.patch_size}, "
                              f"not by this {self.name!r} coder at {self.patch_size}")
        masks = self._check_masks(masks, coded.count)
        if mask_digest(masks) != coded.params.get("mask"):
            raise CodingError("implicit-roi region: the mask given to the decoder is not the one the encoder "
                              "used (decode with the bundle's own mask)")
        y_hat = self.decode_latents(coded, masks)
        return self.synthesize(y_hat, masks, coded.params["quality"])

    def _check_masks(self, masks, count: int) -> np.ndarray:
        p = self.patch_size
        if masks is None:
            raise CodingError("implicit-roi coding needs the blade mask (side information), and none was given")
        masks = np.asarray(masks)
        if masks.shape != (count, p, p):
            raise CodingError(f"implicit-roi masks have shape {masks.shape}, expected {(count, p, p)}")
        return masks.astype(bool)

    # -- whole images -----------------------------------------------------------------------
    def tiles(self, image: np.ndarray, mask: np.ndarray) -> tuple[PatchGrid, np.ndarray, np.ndarray]:
        grid = PatchGrid(image.shape[0], image.shape[1], self.patch_size)
        patches = to_patches(mirror_pad(image, grid), grid)
        return grid, patches, tile_masks(mask, grid)

    def compress_image(self, image: np.ndarray, mask: np.ndarray, quality: int) -> CodedRegion:
        """uint8 (H, W, 3) + bool (H, W) mask -> coded region (tiles in row-major order)."""
        if mask is None or mask.shape != image.shape[:2]:
            raise CodingError(f"implicit-roi coding needs a mask of the image's size {image.shape[:2]}")
        _, patches, masks = self.tiles(image, mask)
        return self.compress(patches, quality, masks)

    def decompress_image(self, coded: CodedRegion, mask: np.ndarray | None, height: int, width: int) -> np.ndarray:
        if mask is None:
            raise CodingError("implicit-roi decoding needs the blade mask (side information), and none was given")
        if mask.shape != (height, width):
            raise CodingError(f"implicit-roi mask is {mask.shape[1]}x{mask.shape[0]}, the image {width}x{height}")
        grid = PatchGrid(height, width, self.patch_size)
        if coded.count != grid.count:
            raise CodingError(f"implicit-roi region has {coded.count} tiles, a {width}x{height} image needs {grid.count}")
        return from_patches(self.decompress(coded, tile_masks(mask, grid)), grid)


def tile_masks(mask: np.ndarray, grid: PatchGrid) -> np.ndarray:
    """Bool (H, W) -> (N, p, p) tiles, padded the same way as the image."""
    return to_patches(mirror_pad(np.asarray(mask, dtype=bool)[..., None], grid), grid)[:, 0]


def coded_mask(mask: np.ndarray) -> np.ndarray:
    """The mask a decoder gets back from a bundle: MASK_CELL cells, blade when any pixel is."""
    grid = PatchGrid(mask.shape[0], mask.shape[1], MASK_CELL)
    return cells_to_mask(blade_cells(mask, grid), grid)
