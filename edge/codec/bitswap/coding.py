"""Bits-back coding of 64x64 patches with Bit-swap's order, on streams the caller seeds.

Encoding one patch on one stack (L levels; ``decode`` pops bits, ``encode`` pushes)::

    decode z1 ~ q(z1 | x)          # takes the "initial bits" from the stream
    encode x  ~ p(x | z1)          # per pixel stage: R plane, then G (given R), then B (given R, G)
    for i in 1..L-1:
        decode z_{i+1} ~ q(z_{i+1} | z_i)
        encode z_i     ~ p(z_i | z_{i+1})
    encode z_L ~ p(z_L)            # standard logistic

Each latent is encoded as soon as the one above it is known, so the stream never needs more
initial bits than the first posterior takes (Bit-swap's point). Decoding runs the steps
backwards and ends by re-encoding z1 with q(z1 | x): the stream is left exactly as the seed was.

Streams and patches: with S streams, patch ``i`` goes to stream ``i % S`` in round ``i // S``.
The streams of one round are coded in lock-step: every network runs on the round's patches
and one ANS request serves all its streams. With a :class:`StreamPool` the streams are split
into shards (stream ``s`` to worker ``s % workers``) that the workers code on their own cores;
a stream's words depend only on its seed and its patches, never on the sharding. One stream
(S = 1, no pool) is the reference's sequential chain.

Decodable anywhere: the networks run in float64 on the CPU (:class:`CanonicalNetworks`) and their
outputs are snapped to the integer grid of :mod:`edge.codec.bitswap.discretize` before any
table is built.
"""
from __future__ import annotations

import copy
import functools
import hashlib
from typing import Generator, Sequence

import numpy as np
import torch

from edge.codec.bitswap.discretize import latent_layout, pixel_layout
from edge.codec.bitswap.model import BitswapVAE, stage_view
from edge.codec.bitswap.streams import LocalStreams, StreamPool
from edge.errors import CodingError, InputError

DEFAULT_LATENT_BINS = 1024

# A coding job as a generator: it yields ANS requests ("decode" | "encode", layout name,
# {stream: arrays}) and receives each decode's symbols ({stream: int32 array}) back.
Steps = Generator[tuple, object, object]


class CanonicalNetworks:
    """The model's networks in float64 on the CPU, returning snapped integer parameters."""

    def __init__(self, model: BitswapVAE, latent_bins: int = DEFAULT_LATENT_BINS):
        self.net = copy.deepcopy(model).to(device="cpu", dtype=torch.float64).eval()
        self.config = model.config
        self.latent = latent_layout(latent_bins)
        self.pixel = pixel_layout()

    @property
    def levels(self) -> int:
        return self.config.levels

    @functools.cached_property
    def fingerprint(self) -> str:
        """Hash of the weights and the bin layout: which networks a pool worker must hold."""
        digest = hashlib.sha256(repr((sorted(self.config.__dict__.items()), self.latent.bins)).encode())
        for name, value in self.net.state_dict().items():
            digest.update(name.encode())
            digest.update(value.detach().numpy().tobytes())
        return digest.hexdigest()

    @torch.no_grad()
    def _run(self, function, value: np.ndarray) -> tuple[np.ndarray, ...]:
        tensor = torch.from_numpy(np.ascontiguousarray(value, dtype=np.float64))
        return tuple(output.numpy() for output in per_patch(function, tensor))

    def posterior(self, level: int, below: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        mean, log_scale = self._run(lambda t: self.net.posterior(level, t), below)
        return self.latent.snap(mean, log_scale)

    def prior(self, level: int, above: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        mean, log_scale = self._run(lambda t: self.net.prior(level, t), above)
        return self.latent.snap(mean, log_scale)

    def top_prior(self, count: int) -> tuple[np.ndarray, np.ndarray]:
        shape = (count, *self.config.latent_shape(self.levels - 1))
        zeros = np.zeros(shape)
        return self.latent.snap(zeros, zeros)

    @property
    def pixel_stages(self) -> int:
        return self.config.pixel_stages

    @torch.no_grad()
    def pixel_features(self, z1: np.ndarray) -> torch.Tensor:
        tensor = torch.from_numpy(np.ascontiguousarray(z1, dtype=np.float64))
        return per_patch(lambda t: (self.net.pixel_features(t),), tensor)[0]

    @torch.no_grad()
    def pixel_params(self, features: torch.Tensor, x: np.ndarray, stage: int) -> tuple[np.ndarray, ...]:
        """Parameters of the pixels of ``stage``; ``x`` (uint8) is read only where already coded."""
        if self.pixel_stages > 1:
            x_unit = torch.from_numpy(x / 127.5 - 1.0)
            outputs = per_patch(lambda f, u: self.net.pixel_params(f, u, stage), features, x_unit)
        else:
            outputs = per_patch(lambda f: self.net.pixel_params(f, None, stage), features)
        return tuple(out.numpy() for out in outputs)

    def pixel_grid(self, params: tuple[np.ndarray, ...], x: np.ndarray, channel: int) -> tuple[np.ndarray, np.ndarray]:
        """Snapped (n, j) of one colour plane of a stage; G and B follow the R (and G) residuals.

        ``x`` is the stage's uint8 pixels (N, 3, h, w); only the planes before ``channel`` are
        read. The same sums as :func:`edge.codec.bitswap.model.couple_means`, in float64, in the
        same order on the encoder and the decoder.
        """
        mean, log_scale, coeffs = params
        m = mean[:, channel]
        if channel >= 1:
            residual_r = (x[:, 0] / 127.5 - 1.0) - mean[:, 0]
            if channel == 1:
                m = m + coeffs[:, 0] * residual_r
            else:
                residual_g = (x[:, 1] / 127.5 - 1.0) - mean[:, 1]
                m = m + coeffs[:, 1] * residual_r + coeffs[:, 2] * residual_g
        return self.pixel.snap((m + 1.0) * 127.5, log_scale[:, channel])


def per_patch(function, *tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """``function`` on one patch at a time, outputs concatenated along the batch.

    float64 convolutions on this CPU are fastest one 64x64 patch at a time (measured: 5.8 ms a
    patch for the level-0 posterior alone, 11 ms at batch 4, 14-16 ms at batch 16-64) and a
    whole batch would need im2col buffers of gigabytes; the result does not depend on batching.
    """
    outputs = [function(*(tensor[i:i + 1] for tensor in tensors)) for i in range(tensors[0].shape[0])]
    if not outputs:
        return tuple(function(*tensors))
    return tuple(torch.cat(parts) for parts in zip(*outputs))


def as_canonical(model: BitswapVAE | CanonicalNetworks, latent_bins: int = DEFAULT_LATENT_BINS) -> CanonicalNetworks:
    return model if isinstance(model, CanonicalNetworks) else CanonicalNetworks(model, latent_bins)


def _requests(ids: list[int], *arrays: np.ndarray) -> dict[int, tuple]:
    return {sid: tuple(array[a] for array in arrays) for a, sid in enumerate(ids)}


def _decoded(result: dict[int, np.ndarray], ids: list[int], shape: tuple[int, ...]) -> np.ndarray:
    return np.stack([result[sid].reshape(shape) for sid in ids])


def _encode_round(nets: CanonicalNetworks, x: np.ndarray, ids: list[int]) -> Steps:
    latent, levels = nets.latent.name, nets.levels
    symbols, values = [], []
    n, j = nets.posterior(0, x / 127.5 - 1.0)
    symbols.append(_decoded((yield ("decode", latent, _requests(ids, n, j))), ids, n.shape[1:]))
    values.append(nets.latent.centers(symbols[0]))
    features = nets.pixel_features(values[0])
    pixel_symbols, pixel_n, pixel_j = [], [], []
    for stage in range(nets.pixel_stages):
        params = nets.pixel_params(features, x, stage)
        x_stage = stage_view(x, stage, nets.pixel_stages)
        grids = [nets.pixel_grid(params, x_stage, channel) for channel in range(3)]
        pixel_symbols.append(x_stage.reshape(len(ids), -1).astype(np.int32))
        pixel_n.append(np.stack([grid[0] for grid in grids], axis=1).reshape(len(ids), -1))
        pixel_j.append(np.stack([grid[1] for grid in grids], axis=1).reshape(len(ids), -1))
    # One push per stream, in decoding order: stage by stage, R then G then B.
    yield ("encode", nets.pixel.name, _requests(ids, *(np.concatenate(parts, axis=1)
                                                    for parts in (pixel_symbols, pixel_n, pixel_j))))
    for level in range(1, levels):
        n, j = nets.posterior(level, values[level - 1])
        symbols.append(_decoded((yield ("decode", latent, _requests(ids, n, j))), ids, n.shape[1:]))
        values.append(nets.latent.centers(symbols[level]))
        n, j = nets.prior(level - 1, values[level])
        yield ("encode", latent, _requests(ids, symbols[level - 1], n, j))
    n, j = nets.top_prior(len(ids))
    yield ("encode", latent, _requests(ids, symbols[levels - 1], n, j))


def _decode_round(nets: CanonicalNetworks, ids: list[int]) -> Steps:
    latent, levels = nets.latent.name, nets.levels
    symbols: list[np.ndarray | None] = [None] * levels
    values: list[np.ndarray | None] = [None] * levels
    n, j = nets.top_prior(len(ids))
    symbols[-1] = _decoded((yield ("decode", latent, _requests(ids, n, j))), ids, n.shape[1:])
    values[-1] = nets.latent.centers(symbols[-1])
    for level in range(levels - 1, 0, -1):
        n, j = nets.prior(level - 1, values[level])
        symbols[level - 1] = _decoded((yield ("decode", latent, _requests(ids, n, j))), ids, n.shape[1:])
        values[level - 1] = nets.latent.centers(symbols[level - 1])
        n, j = nets.posterior(level, values[level - 1])
        yield ("encode", latent, _requests(ids, symbols[level], n, j))
    features = nets.pixel_features(values[0])
    size = nets.config.patch_size
    x = np.zeros((len(ids), 3, size, size), dtype=np.uint8)
    for stage in range(nets.pixel_stages):
        params = nets.pixel_params(features, x, stage)
        x_stage = stage_view(x, stage, nets.pixel_stages)        # a view: decoding fills x
        for channel in range(3):
            n, j = nets.pixel_grid(params, x_stage, channel)
            x_stage[:, channel] = _decoded((yield ("decode", nets.pixel.name, _requests(ids, n, j))),
                                           ids, n.shape[1:])
    n, j = nets.posterior(0, x / 127.5 - 1.0)
    yield ("encode", latent, _requests(ids, symbols[0], n, j))
    return x


def _encode_all(nets: CanonicalNetworks, patches: np.ndarray, streams: int) -> Steps:
    """All rounds: patch r*S + s is on stream s in round r."""
    for start in range(0, len(patches), streams):
        round_patches = patches[start:start + streams]
        yield from _encode_round(nets, round_patches, list(range(len(round_patches))))


def _decode_all(nets: CanonicalNetworks, out: np.ndarray, streams: int) -> Steps:
    """Inverse of :func:`_encode_all`, rounds last to first, filling ``out``."""
    for start in reversed(range(0, len(out), streams)):
        count = min(streams, len(out) - start)
        out[start:start + count] = yield from _decode_round(nets, list(range(count)))


def _run(steps: Steps, streams: LocalStreams) -> None:
    """Drive a coding job: each ANS request goes to ``streams``, its answer back."""
    answer = None
    try:
        while True:
            op, layout, requests = steps.send(answer)
            answer = getattr(streams, op)(layout, requests)
    except StopIteration:
        pass


def _shard_patches(count: int, streams: int, workers: int) -> list[tuple[list[int], np.ndarray]]:
    """(streams, patch indices) of each worker: stream s goes to worker s % workers.

    Inside a shard, patch j sits on the shard's stream j % len(streams), as in the whole job
    (the last round is partial only at its end, and a shard's streams keep their order).
    """
    shards = []
    for worker in range(min(workers, streams)):
        ids = list(range(worker, streams, workers))
        rounds = range(0, count, streams)
        indices = np.array([start + sid for start in rounds for sid in ids if start + sid < count], dtype=np.int64)
        shards.append((ids, indices))
    return shards


def check_patches(patches: np.ndarray, patch_size: int) -> np.ndarray:
    if not isinstance(patches, np.ndarray) or patches.dtype != np.uint8 or patches.ndim != 4 \
            or patches.shape[1:] != (3, patch_size, patch_size):
        got = f"{patches.dtype} {patches.shape}" if isinstance(patches, np.ndarray) else type(patches).__name__
        raise InputError(f"Bit-swap codes uint8 patches of shape (N, 3, {patch_size}, {patch_size}), got {got}")
    return patches


def encode_patches(model: BitswapVAE | CanonicalNetworks, patches: np.ndarray, seeds: Sequence[np.ndarray],
                   pool: StreamPool | None = None) -> list[np.ndarray]:
    """Code ``patches`` (uint8 (N,3,P,P)) onto the streams seeded with ``seeds`` (uint32 words each).

    Returns the words of every stream. With ``pool`` the workers code shards of the streams.
    """
    nets = as_canonical(model)
    patches = check_patches(patches, nets.config.patch_size)
    if not seeds:
        raise CodingError("Bit-swap needs at least one stream")
    if pool is not None and len(seeds) > 1:
        shards = _shard_patches(len(patches), len(seeds), pool.workers)
        answers = pool.encode(nets, [(patches[indices], [seeds[sid] for sid in ids]) for ids, indices in shards])
        words: list = [None] * len(seeds)
        for (ids, _), shard_words in zip(shards, answers):
            for sid, stream_words in zip(ids, shard_words):
                words[sid] = stream_words
        return words
    streams = LocalStreams(seeds)
    _run(_encode_all(nets, patches, len(seeds)), streams)
    return streams.words()


def decode_patches(model: BitswapVAE | CanonicalNetworks, streams_words: Sequence[np.ndarray], count: int,
                   pool: StreamPool | None = None) -> tuple[np.ndarray, list[np.ndarray]]:
    """Inverse of :func:`encode_patches`: (patches, words left on each stream = the seeds)."""
    nets = as_canonical(model)
    if not streams_words:
        raise CodingError("Bit-swap needs at least one stream")
    size = nets.config.patch_size
    out = np.zeros((count, 3, size, size), dtype=np.uint8)
    if pool is not None and len(streams_words) > 1:
        shards = _shard_patches(count, len(streams_words), pool.workers)
        answers = pool.decode(nets, [([streams_words[sid] for sid in ids], len(indices)) for ids, indices in shards])
        remaining: list = [None] * len(streams_words)
        for (ids, indices), (patches, left) in zip(shards, answers):
            out[indices] = patches
            for sid, words in zip(ids, left):
                remaining[sid] = words
        return out, remaining
    streams = LocalStreams(streams_words)
    _run(_decode_all(nets, out, len(streams_words)), streams)
    return out, streams.words()
