"""Probability tables of the lossy coder, built once by one explicit step and shipped.

Design rule 3: a table that differs by one count between encoder and decoder breaks the
stream. So tables are *data*: :func:`build_tables` computes them in float64 from the trained
model when the weights are exported, quantises them to integer counts, and the weights file
carries the integers. Coding only ever reads these integers.

* ``gaussian``: one table per entry of ``SCALE_TABLE`` (zero-mean Gaussian of that scale,
  symbols -K..K plus an escape), selected per latent by the scale index.
* ``factorized``: one table per channel of z (the learned factorized prior), symbols
  offset..offset+len-1 plus an escape.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import numpy as np
import torch

# 64 scales, log-spaced: a latent whose predicted scale is s uses the first entry >= s.
SCALE_TABLE = np.exp(np.linspace(math.log(0.11), math.log(256.0), 64))
PRECISION_BITS = 20              # counts of one table sum to 2**PRECISION_BITS
TAIL_MASS = 1e-9                 # probability left outside a table's support (goes to escape)
ESCAPE_RANGE_BITS = 16           # an escaped value's excess is coded uniformly in [0, 2**16)


@dataclass(frozen=True)
class EntropyTables:
    """Integer tables. ``*_counts[i]`` are the counts of table i, escape symbol last."""

    gaussian_counts: tuple[np.ndarray, ...]
    gaussian_half_width: np.ndarray      # K of each Gaussian table (symbols -K..K)
    factorized_counts: tuple[np.ndarray, ...]
    factorized_offset: np.ndarray        # smallest symbol of each channel's table

    def to_state(self) -> dict:
        return {
            "gaussian_counts": [torch.from_numpy(c) for c in self.gaussian_counts],
            "gaussian_half_width": torch.from_numpy(self.gaussian_half_width),
            "factorized_counts": [torch.from_numpy(c) for c in self.factorized_counts],
            "factorized_offset": torch.from_numpy(self.factorized_offset),
        }

    @classmethod
    def from_state(cls, state: dict) -> "EntropyTables":
        return cls(
            gaussian_counts=tuple(c.numpy().astype(np.int64) for c in state["gaussian_counts"]),
            gaussian_half_width=state["gaussian_half_width"].numpy().astype(np.int64),
            factorized_counts=tuple(c.numpy().astype(np.int64) for c in state["factorized_counts"]),
            factorized_offset=state["factorized_offset"].numpy().astype(np.int64),
        )


def quantize_pmf(pmf: np.ndarray) -> np.ndarray:
    """float64 masses (last entry: escape) -> int32 counts >= 1 summing to 2**PRECISION_BITS."""
    total = 1 << PRECISION_BITS
    pmf = np.maximum(np.asarray(pmf, dtype=np.float64), 0.0)
    counts = np.maximum(np.floor(pmf / pmf.sum() * (total - len(pmf))).astype(np.int64), 0) + 1
    # Hand the rounding remainder to the most probable symbol (deterministic, integer-only).
    counts[int(np.argmax(counts))] += total - int(counts.sum())
    if counts.min() < 1 or counts.sum() != total:
        raise ValueError("cannot quantise this distribution: it is too wide for the table precision")
    return counts.astype(np.int32)


def _gaussian_table(scale: float) -> tuple[np.ndarray, int]:
    half_width = max(1, int(math.ceil(scale * math.sqrt(2) * _erfc_inverse(TAIL_MASS))))
    k = np.arange(-half_width, half_width + 1, dtype=np.float64)
    upper = np.array([0.5 * math.erfc(-(v + 0.5) / (scale * math.sqrt(2))) for v in k])
    lower = np.array([0.5 * math.erfc(-(v - 0.5) / (scale * math.sqrt(2))) for v in k])
    pmf = upper - lower
    escape = max(1.0 - pmf.sum(), 0.0)
    return quantize_pmf(np.append(pmf, escape)), half_width


def _erfc_inverse(p: float) -> float:
    """x with erfc(x) = p, by bisection (exact enough for choosing a support width)."""
    lo, hi = 0.0, 10.0
    for _ in range(100):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if math.erfc(mid) > p else (lo, mid)
    return hi


@torch.no_grad()
def build_tables(prior_z) -> EntropyTables:
    """Compute every table in float64. ``prior_z`` is the model's FactorizedPrior."""
    gaussian = [_gaussian_table(float(s)) for s in SCALE_TABLE]
    prior64 = _float64_copy(prior_z)
    channels = prior64.matrices[0].shape[0]
    # Find each channel's support where the cumulative leaves TAIL_MASS on either side.
    grid = torch.arange(-4096, 4097, dtype=torch.float64)
    cdf = torch.sigmoid(prior64.logits_cdf(grid.reshape(1, 1, -1).repeat(channels, 1, 1) + 0.5))[:, 0]
    supports = []
    for c in range(channels):
        inside = ((cdf[c] > TAIL_MASS) & (cdf[c] < 1 - TAIL_MASS)).nonzero()
        lo = int(grid[inside.min()]) if len(inside) else 0
        hi = int(grid[inside.max()]) + 1 if len(inside) else 0
        supports.append((lo, hi))
    lowest = min(lo for lo, _ in supports)
    values = torch.arange(lowest, max(hi for _, hi in supports) + 1, dtype=torch.float64)
    masses = prior64.likelihood(values.reshape(1, 1, 1, -1).repeat(1, channels, 1, 1))[0, :, 0].numpy()
    counts, offsets = [], []
    for c, (lo, hi) in enumerate(supports):
        mass = masses[c, lo - lowest: hi - lowest + 1]
        counts.append(quantize_pmf(np.append(mass, max(1.0 - mass.sum(), 0.0))))
        offsets.append(lo)
    return EntropyTables(
        gaussian_counts=tuple(t for t, _ in gaussian),
        gaussian_half_width=np.array([k for _, k in gaussian], dtype=np.int64),
        factorized_counts=tuple(counts),
        factorized_offset=np.array(offsets, dtype=np.int64),
    )


def _float64_copy(module):
    return copy.deepcopy(module).to(torch.float64)
