"""``BitswapCoder``: the lossless region coder (the :class:`~edge.codec.contract.RegionCoder` contract).

Two ways to seed the streams (bits-back needs bits to take before it can give any back):

- **seeded** (the ROI coder): ``compress(patches, initial_words=[...])`` puts each stream on
  top of the given words (e.g. a coded background stream). The coded streams then hold those
  words too; :meth:`BitswapCoder.decompress_with_seeds` gives them back exactly.
- **standalone** (``initial_words=None``): each stream starts from fixed pseudo-random words
  (:func:`standalone_seed`) that the decoder regenerates. Only the words the coding touched
  are stored (the untouched bottom of the seed is cut off and its length recorded), so the
  rate counts exactly the seed bits the first patch of each stream consumed.

Every region records the SHA-256 of its pixels (first 16 hex digits); decoding checks it and
that each stream ends exactly at its seed, and raises :class:`CodingError` otherwise.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from edge.codec.bitswap.coding import CanonicalNetworks, check_patches, decode_patches, encode_patches
from edge.codec.bitswap.model import BitswapConfig, BitswapVAE
from edge.codec.bitswap.streams import StreamPool
from edge.codec.contract import CodedRegion
from edge.codec.patches import PatchGrid, from_patches, mirror_pad, to_patches
from edge.errors import CodingError, InputError, ModelError
from edge.registry import float_state, get_spec, load_model, weights_sha256

STANDALONE_SEED_WORDS = 4096      # more than the first posterior of a patch ever takes
PATCHES_PER_STREAM = 32           # standalone: at least this many patches share one stream
MAX_STREAMS = 32


def standalone_seed(stream: int, words: int = STANDALONE_SEED_WORDS) -> np.ndarray:
    """Fixed pseudo-random nonzero uint32 words for standalone stream ``stream`` (SHA-256 counter mode)."""
    out = bytearray()
    block = 0
    while len(out) < 4 * words:
        out += hashlib.sha256(b"edge-bitswap-seed/%d/%d" % (stream, block)).digest()
        block += 1
    values = np.frombuffer(bytes(out[: 4 * words]), dtype="<u4").astype(np.uint32)
    return values | np.uint32(1)   # a stream must not end in a zero word


def pixel_digest(patches: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(patches).tobytes()).hexdigest()[:16]


def standalone_streams(count: int) -> int:
    return max(1, min(MAX_STREAMS, count // PATCHES_PER_STREAM))


def _to_bytes(words: np.ndarray) -> bytes:
    return np.ascontiguousarray(words, dtype="<u4").tobytes()


def _to_words(data: bytes, index: int) -> np.ndarray:
    if len(data) % 4:
        raise CodingError(f"Bit-swap stream {index} is {len(data)} bytes long, not a whole number of words")
    return np.frombuffer(data, dtype="<u4").astype(np.uint32)


def load_weights(path: str | Path) -> BitswapVAE:
    """Registry loader: the shipped fp16 weights as a float32 model (``latent_bins`` attached)."""
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
        model = BitswapVAE(BitswapConfig(**saved["config"]))
        model.load_state_dict(float_state(saved["state_dict"]))
    except (OSError, KeyError, RuntimeError, TypeError, ValueError) as error:
        raise ModelError(f"cannot load Bit-swap weights {path}: {error}") from None
    model.latent_bins = int(saved.get("latent_bins", 1024))
    return model.eval()


class BitswapCoder:
    """Lossless coder of 64x64 patches; see the module doc for seeding and checks."""

    name = "bitswap"

    def __init__(self, model: BitswapVAE, weights_sha256: str = "", model_name: str = "bitswap",
                 latent_bins: int | None = None, pool: StreamPool | None = None, streams: int | None = None):
        bins = latent_bins or getattr(model, "latent_bins", 1024)
        self.nets = CanonicalNetworks(model, bins)
        self.model_name = model_name
        self.weights_sha256 = weights_sha256
        self.pool = pool
        self.streams = streams          # standalone stream count; None = from the patch count

    @classmethod
    def from_registry(cls, name: str = "bitswap", pool: StreamPool | None = None,
                      expected_sha256: str | None = None) -> "BitswapCoder":
        model = load_model(name, expected_sha256)
        return cls(model, weights_sha256(get_spec(name).weights_path), model_name=name, pool=pool)

    @property
    def patch_size(self) -> int:
        return self.nets.config.patch_size

    @property
    def latent_bins(self) -> int:
        return self.nets.latent.bins

    # --- patches -------------------------------------------------------------------------------
    def compress(self, patches: np.ndarray, initial_words: Sequence[np.ndarray] | None = None) -> CodedRegion:
        patches = check_patches(patches, self.patch_size)
        params = {"latent_bins": self.latent_bins, "pixels": pixel_digest(patches)}
        if initial_words is None:
            count = self.streams or standalone_streams(len(patches))
            seeds = [standalone_seed(s) for s in range(count)]
        else:
            seeds = [np.ascontiguousarray(words, dtype=np.uint32) for words in initial_words]
        words = encode_patches(self.nets, patches, seeds, self.pool) if len(patches) else seeds
        if initial_words is None:
            prefixes = [_common_prefix(final, seed) for final, seed in zip(words, seeds)]
            words = [final[prefix:] for final, prefix in zip(words, prefixes)]
            params.update(mode="standalone", prefix=prefixes)
        else:
            params.update(mode="seeded", seed_words=[len(seed) for seed in seeds])
        return CodedRegion(coder=self.name, model=self.model_name, weights_sha256=self.weights_sha256,
                           patch_size=self.patch_size, count=len(patches),
                           streams=tuple(_to_bytes(w) for w in words), params=params)

    def decompress_with_seeds(self, coded: CodedRegion) -> tuple[np.ndarray, list[np.ndarray]]:
        """Patches and the words each stream ended with (the seeds given to :meth:`compress`)."""
        self._check_region(coded)
        params = coded.params
        words = [_to_words(data, index) for index, data in enumerate(coded.streams)]
        if params.get("mode") == "standalone":
            prefixes = params.get("prefix", [])
            if len(prefixes) != len(words):
                raise CodingError("Bit-swap region: prefix lengths do not match the streams")
            seeds = [standalone_seed(s) for s in range(len(words))]
            if any(not 0 <= prefix <= len(seed) for prefix, seed in zip(prefixes, seeds)):
                raise CodingError("Bit-swap region: bad seed prefix length")
            words = [np.concatenate([seed[:prefix], w]) for seed, prefix, w in zip(seeds, prefixes, words)]
        elif params.get("mode") != "seeded":
            raise CodingError(f"Bit-swap region: unknown mode {params.get('mode')!r}")
        if coded.count:
            patches, remaining = decode_patches(self.nets, words, coded.count, self.pool)
        else:
            patches, remaining = np.zeros((0, 3, self.patch_size, self.patch_size), np.uint8), words
        if params["mode"] == "standalone":
            if any(len(r) != len(s) or not np.array_equal(r, s) for r, s in zip(remaining, seeds)):
                raise CodingError("Bit-swap stream does not end at its seed: the stream is damaged")
        elif [len(r) for r in remaining] != list(params.get("seed_words", [])):
            raise CodingError("Bit-swap stream does not end where it should: the stream is damaged")
        if pixel_digest(patches) != params.get("pixels"):
            raise CodingError("Bit-swap region decodes to pixels whose hash differs: the stream is damaged")
        return patches, remaining

    def decompress(self, coded: CodedRegion) -> np.ndarray:
        return self.decompress_with_seeds(coded)[0]

    def _check_region(self, coded: CodedRegion) -> None:
        if coded.coder != self.name:
            raise CodingError(f"region was coded by {coded.coder!r}, not Bit-swap")
        if coded.patch_size != self.patch_size:
            raise CodingError(f"region has {coded.patch_size}-pixel patches, this model codes {self.patch_size}")
        if coded.params.get("latent_bins") != self.latent_bins:
            raise CodingError(f"region uses {coded.params.get('latent_bins')} latent bins, "
                              f"this coder {self.latent_bins}")
        if self.weights_sha256 and coded.weights_sha256 and coded.weights_sha256 != self.weights_sha256:
            raise ModelError(f"region was coded with weights {coded.weights_sha256[:12]}…, "
                             f"these are {self.weights_sha256[:12]}…")
        if not coded.streams:
            raise CodingError("Bit-swap region has no streams")

    # --- whole images --------------------------------------------------------------------------
    def compress_image(self, image: np.ndarray) -> CodedRegion:
        """uint8 (H, W, 3) -> region of its mirror-padded patches, with the size in ``params``."""
        if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise InputError("Bit-swap compresses uint8 RGB images of shape (H, W, 3)")
        grid = PatchGrid(image.shape[0], image.shape[1], self.patch_size)
        coded = self.compress(to_patches(mirror_pad(image, grid), grid))
        return CodedRegion(coded.coder, coded.model, coded.weights_sha256, coded.patch_size, coded.count,
                           coded.streams, {**coded.params, "height": image.shape[0], "width": image.shape[1]})

    def decompress_image(self, coded: CodedRegion) -> np.ndarray:
        try:
            grid = PatchGrid(int(coded.params["height"]), int(coded.params["width"]), self.patch_size)
        except (KeyError, TypeError, ValueError):
            raise CodingError("Bit-swap region has no image size: it holds patches, not an image") from None
        if grid.count != coded.count:
            raise CodingError(f"Bit-swap region holds {coded.count} patches, an image of "
                              f"{grid.width}x{grid.height} needs {grid.count}")
        return from_patches(self.decompress(coded), grid)


def _common_prefix(final: np.ndarray, seed: np.ndarray) -> int:
    n = min(len(final), len(seed))
    differ = np.flatnonzero(final[:n] != seed[:n])
    return int(differ[0]) if differ.size else n
