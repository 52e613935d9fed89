"""Entropy coding shared by the hyperprior coders (HP+EASN-deep and the implicit ROI coder).

Both code their latents with constriction's ANS stack and the integer tables of
:class:`edge.codec.lossy.tables.EntropyTables`: per-scale Gaussian tables for y, per-channel
factorized tables for z. A value outside its table is coded as the table's escape symbol,
followed by its excess (uniform over ``2**ESCAPE_RANGE_BITS``) and which side it left on.
Models are built from the integer counts divided by a power of two, exact in float64, so every
machine builds the same models (docs/design.md, rule 3).
"""
from __future__ import annotations

import constriction
import numpy as np

from edge.codec.lossy.tables import ESCAPE_RANGE_BITS, PRECISION_BITS, EntropyTables
from edge.errors import CodingError

ESCAPE_LIMIT = 1 << ESCAPE_RANGE_BITS


def model_from_counts(counts: np.ndarray):
    """A constriction model of integer counts (they sum to 2**PRECISION_BITS)."""
    return constriction.stream.model.Categorical(counts.astype(np.float64) / float(1 << PRECISION_BITS),
                                                 perfect=False)


class TableModels:
    """The constriction models of one set of tables, built once per coder."""

    def __init__(self, tables: EntropyTables):
        self.tables = tables
        self.gaussian = [model_from_counts(c) for c in tables.gaussian_counts]
        self.factorized = [model_from_counts(c) for c in tables.factorized_counts]
        self.escape_value = constriction.stream.model.Uniform(ESCAPE_LIMIT)
        self.sign = constriction.stream.model.Uniform(2)

    def z_bounds(self, z_shape: tuple) -> tuple[np.ndarray, np.ndarray]:
        """Per-element smallest and largest value covered by z's factorized tables."""
        per_channel = int(np.prod(z_shape[1:]))
        low = self.tables.factorized_offset
        high = low + np.array([len(c) - 2 for c in self.tables.factorized_counts])
        return np.repeat(low, per_channel), np.repeat(high, per_channel)

    def encode_escapes(self, coder, escapes: np.ndarray) -> None:
        """``escapes`` (n, 2): excess beyond the table and sign, in decoding order."""
        if len(escapes):
            coder.encode_reverse(escapes[:, 1].astype(np.int32), self.sign)
            coder.encode_reverse(escapes[:, 0].astype(np.int32), self.escape_value)

    def from_symbols(self, coder, symbols: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
        """Inverse of :func:`to_symbols`: escaped slots get their exact values popped from the stream."""
        values = symbols.astype(np.int64) + low
        escaped = symbols == high - low + 1
        count = int(escaped.sum())
        if count:
            excess = coder.decode(self.escape_value, count).astype(np.int64)
            below = coder.decode(self.sign, count).astype(bool)
            where = np.flatnonzero(escaped)
            values[where] = np.where(below, low[where] - 1 - excess, high[where] + 1 + excess)
        return values


def to_symbols(values: np.ndarray, low: np.ndarray, high: np.ndarray):
    """Map values to table symbols (v - low); values outside [low, high] get the escape symbol.

    Returns (symbols int32, escapes (n, 2) int64 of (excess beyond the table, below-low flag)).
    """
    values = values.astype(np.int64)
    escaped = (values < low) | (values > high)
    symbols = np.where(escaped, high - low + 1, values - low)
    excess = np.where(values > high, values - high - 1, low - values - 1)[escaped]
    if len(excess) and excess.max() >= ESCAPE_LIMIT:
        raise CodingError("a latent is too large to code (the image or the model is broken)")
    below = (values < low)[escaped]
    return symbols.astype(np.int32), np.stack([excess, below], axis=1)


def open_stream(stream: bytes, index: int):
    """An ANS decoder over a stream's words; a stream that is no whole number of words is damaged."""
    if len(stream) % 4 or not stream:
        raise CodingError(f"stream {index} has {len(stream)} bytes, not a positive multiple of 4: damaged")
    words = np.frombuffer(stream, dtype=np.uint32).copy()
    if words[-1] == 0:
        raise CodingError(f"stream {index} ends in a zero word, which no encoder writes: damaged")
    return constriction.stream.stack.AnsCoder(words)
