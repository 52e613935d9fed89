"""The lossy region coder: HP+EASN-deep transforms + constriction ANS coding of the latents.

Per patch (256x256 by default) one independent ANS stream holds, in decoding order:
z (per-channel factorized tables), z escapes, y grouped by scale index (Gaussian tables),
y escapes. Escapes carry values outside a table's support exactly, so the decoder always
gets the encoder's latents back bit for bit.

Design rule 3: the scale index of every y latent comes from h_s run in float64 on the CPU
(:meth:`LossyCoder.scale_indexes`), then snapped to ``SCALE_TABLE``; the tables themselves
are integers shipped with the weights. The analysis and synthesis transforms only shape
what is transmitted or the picture, so any backend may run them.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import constriction
import numpy as np
import torch

from edge.codec.contract import CodedRegion
from edge.codec.lossy.model import HyperpriorEASN
from edge.codec.entropy import TableModels, open_stream, to_symbols
from edge.codec.lossy.tables import SCALE_TABLE, EntropyTables
from edge.errors import CodingError

PATCH_SIZE = 256
BATCH = 8                        # patches per network call: bounds memory on 20 MP photos


@dataclass(frozen=True)
class Latents:
    """Quantised latents of a batch of patches (int32): y_hat (N, M, h, w), z_hat (N, Nz, h/4, w/4)."""

    y_hat: np.ndarray
    z_hat: np.ndarray



class LossyCoder:
    """Compress patches to per-patch streams and back; the coder contract of edge.codec.contract."""

    name = "lossy"
    batch = BATCH    # patches per network call, also the batch accelerated engines are built for

    def __init__(self, model: HyperpriorEASN, tables: EntropyTables, model_name: str,
                 weights_sha256: str, patch_size: int = PATCH_SIZE):
        self.model = model.eval()
        self.tables = tables
        self.model_name = model_name
        self.weights_sha256 = weights_sha256
        self.patch_size = patch_size
        # The canonical copy of h_s: float64 on the CPU, never replaced by an accelerated backend.
        self.h_s64 = copy.deepcopy(model.h_s).to(torch.float64).eval()
        self.entropy = TableModels(tables)
        self.backend = None   # edge.runtime backend for g_a, h_a, g_s; None: self.model in PyTorch

    @property
    def levels(self) -> int:
        return self.model.config.levels

    # -- transforms -------------------------------------------------------------------------
    def use_backend(self, backend) -> None:
        """Run g_a, h_a and g_s on ``backend`` (edge.runtime: TensorRT, ONNX Runtime, torch); None
        for this model in PyTorch. h_s and the tables never move (docs/design.md, rule 3)."""
        self.backend = backend

    def _transform(self, name: str, x: torch.Tensor) -> torch.Tensor:
        if self.backend is None:
            return getattr(self.model, name)(x)
        return self.backend.run(name, x)

    def check_level(self, level: int) -> int:
        if not 0 <= int(level) < self.levels:
            raise CodingError(f"quality level {level} is out of range 0..{self.levels - 1}")
        return int(level)

    @torch.no_grad()
    def analyse(self, patches: np.ndarray, level: int) -> Latents:
        """uint8 (N, 3, p, p) -> quantised latents."""
        level = self.check_level(level)
        gain, _ = self.model.gains(level)
        (m, h, w), (n, zh, zw) = self.latent_shapes()
        ys, zs = [np.zeros((0, m, h, w), np.int32)], [np.zeros((0, n, zh, zw), np.int32)]
        for start in range(0, len(patches), BATCH):
            x = torch.from_numpy(patches[start: start + BATCH]).float() / 255.0
            y_g = self._transform("g_a", x) * gain
            y_hat = torch.round(y_g)
            ys.append(y_hat.to(torch.int32).numpy())
            zs.append(torch.round(self._transform("h_a", y_hat)).to(torch.int32).numpy())
        return Latents(np.concatenate(ys), np.concatenate(zs))

    @torch.no_grad()
    def synthesize(self, y_hat: np.ndarray, level: int) -> np.ndarray:
        """int32 y_hat (N, M, h, w) -> uint8 patches (N, 3, p, p)."""
        _, inv_gain = self.model.gains(self.check_level(level))
        out = []
        for start in range(0, len(y_hat), BATCH):
            y = torch.from_numpy(y_hat[start: start + BATCH]).float() * inv_gain
            x_hat = self._transform("g_s", y).clamp(0, 1)
            out.append(torch.round(x_hat * 255).to(torch.uint8).numpy())
        return np.concatenate(out)

    @torch.no_grad()
    def scale_indexes(self, z_hat: np.ndarray) -> np.ndarray:
        """Canonical path (float64, CPU): z_hat -> index into SCALE_TABLE for every y latent."""
        log_scales = self.h_s64(torch.from_numpy(z_hat).to(torch.float64)).numpy()
        scales = np.exp(log_scales)
        return np.minimum(np.searchsorted(SCALE_TABLE, scales, side="left"), len(SCALE_TABLE) - 1)

    # -- entropy coding of one patch ----------------------------------------------------------
    def encode_patch(self, coder, y_hat: np.ndarray, z_hat: np.ndarray) -> None:
        """Push one patch's latents onto an ANS stack (decoding pops them in the reverse order)."""
        indexes = self.scale_indexes(z_hat[None])[0].ravel()
        half = self.tables.gaussian_half_width[indexes]
        y_symbols, y_escapes = to_symbols(y_hat.ravel(), -half, half)
        z_low, z_high = self.entropy.z_bounds(z_hat.shape)
        z_symbols, z_escapes = to_symbols(z_hat.ravel(), z_low, z_high)
        # Everything pushed last is decoded first: push y escapes, y groups, z escapes, z.
        self.entropy.encode_escapes(coder, y_escapes)
        for group in range(len(SCALE_TABLE) - 1, -1, -1):
            chosen = y_symbols[indexes == group]
            if len(chosen):
                coder.encode_reverse(chosen, self.entropy.gaussian[group])
        self.entropy.encode_escapes(coder, z_escapes)
        z_symbols = z_symbols.reshape(z_hat.shape[0], -1)
        for channel in range(len(z_symbols) - 1, -1, -1):
            coder.encode_reverse(z_symbols[channel], self.entropy.factorized[channel])


    def decode_patch(self, coder, y_shape: tuple, z_shape: tuple) -> tuple[np.ndarray, np.ndarray]:
        """Pop one patch's latents (y_hat, z_hat) from an ANS stack."""
        per_channel = int(np.prod(z_shape[1:]))
        z_flat = np.concatenate([coder.decode(self.entropy.factorized[c], per_channel) for c in range(z_shape[0])])
        z_low, z_high = self.entropy.z_bounds(z_shape)
        z_flat = self.entropy.from_symbols(coder, z_flat, z_low, z_high)
        z_hat = z_flat.reshape(z_shape).astype(np.int32)

        indexes = self.scale_indexes(z_hat[None])[0].ravel()
        if indexes.size != int(np.prod(y_shape)):
            raise CodingError(f"latent shapes do not agree: {y_shape} vs scales {indexes.size}")
        half = self.tables.gaussian_half_width[indexes]
        y_flat = np.empty(indexes.size, dtype=np.int64)
        for group in range(len(SCALE_TABLE)):
            where = np.flatnonzero(indexes == group)
            if len(where):
                y_flat[where] = coder.decode(self.entropy.gaussian[group], len(where))
        y_flat = self.entropy.from_symbols(coder, y_flat, -half, half)
        return y_flat.reshape(y_shape).astype(np.int32), z_hat


    # -- the coder contract -----------------------------------------------------------------
    def latent_shapes(self) -> tuple[tuple, tuple]:
        p = self.patch_size
        cfg = self.model.config
        return (cfg.m, p // 16, p // 16), (cfg.n, p // 64, p // 64)

    def compress(self, patches: np.ndarray, quality: int) -> CodedRegion:
        latents = self.analyse(patches, quality)
        streams = []
        for y_hat, z_hat in zip(latents.y_hat, latents.z_hat):
            coder = constriction.stream.stack.AnsCoder()
            self.encode_patch(coder, y_hat, z_hat)
            streams.append(coder.get_compressed().tobytes())
        return CodedRegion(coder=self.name, model=self.model_name, weights_sha256=self.weights_sha256,
                           patch_size=self.patch_size, count=len(patches), streams=tuple(streams),
                           params={"quality": int(quality)})

    def decode_latents(self, coded: CodedRegion) -> np.ndarray:
        """Streams -> y_hat of every patch, checking each stream is used up exactly."""
        y_shape, z_shape = self.latent_shapes()
        ys = []
        for index, stream in enumerate(coded.streams):
            coder = open_stream(stream, index)
            try:
                y_hat, _ = self.decode_patch(coder, y_shape, z_shape)
            except (ValueError, RuntimeError, AssertionError) as error:
                raise CodingError(f"lossy stream {index} does not decode: {error}") from None
            if not coder.is_empty():
                raise CodingError(f"lossy stream {index} has data left after its last symbol: damaged")
            ys.append(y_hat)
        return np.stack(ys) if ys else np.zeros((0,) + y_shape, dtype=np.int32)

    def decompress(self, coded: CodedRegion) -> np.ndarray:
        if coded.coder != self.name or coded.patch_size != self.patch_size:
            raise CodingError(f"region was coded by {coded.coder!r} at patch size {coded.patch_size}, "
                              f"not by this {self.name!r} coder at {self.patch_size}")
        y_hat = self.decode_latents(coded)
        if len(y_hat) == 0:
            return np.zeros((0, 3, self.patch_size, self.patch_size), dtype=np.uint8)
        return self.synthesize(y_hat, coded.params["quality"])
