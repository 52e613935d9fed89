"""Fixed bin layouts and canonical probability tables for Bit-swap's logistic distributions.

Every coded symbol is a bin index ``k`` in ``0..K-1`` of a layout of ``K`` equal bins of width
``w`` starting at ``low`` (the first and last bins also take the tails). A logistic with mean
``mu`` and scale ``s`` gives bin ``k`` the mass ``F(e_{k+1}) - F(e_k)`` with ``F`` the logistic
CDF, ``e_0 = -inf``, ``e_K = +inf`` and ``e_k = low + k w`` in between.

Decodable anywhere (docs/design.md, rule 3): parameters are first *snapped* to a grid, the mean to
``w / G`` (integer ``n``), the log-scale to ``1/64`` (integer ``j``). Then
``(e_k - mu) / s = (k G - n) * c_j`` with ``c_j = w / (G s_j)``: the CDF of every bin edge is an
entry ``u = k G - n`` of a per-scale table. The tables are built once per process from the
layout's constants with IEEE basic operations only (``+ - * /``, rint, ldexp: see
:func:`canonical_exp`), which give the same bits on every processor, so encoder and decoder
build the same tables from the same integers ``(n, j)``. Constriction's ``Categorical`` then
quantizes each row deterministically.

The layouts are constants of the code (:data:`LATENT_LAYOUT`, :data:`PIXEL_LAYOUT`), so they
ship with the package; the weights file records their names and sizes and the loader checks them.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
from numpy.lib.stride_tricks import as_strided

from edge.errors import CodingError

# Log-scales are clamped to these ranges in training and in coding (natural log; latent units
# for latents, [-1, 1] pixel units for sub-pixels); the coding grid covers them exactly.
LATENT_LOG_SCALE_RANGE = (-6.0, 2.0)
PIXEL_LOG_SCALE_RANGE = (-7.0, 0.0)
LOG_SCALE_STEPS = 64          # log-scales are snapped to multiples of 1/64
TABLE_CLAMP = 60.0            # |argument| beyond which the logistic CDF is taken as 0 or 1

_LN2_HI = 6.93147180369123816490e-01   # ln 2 split in two so that n * _LN2_HI is exact
_LN2_LO = 1.90821492927058770002e-10
_INV_LN2 = 1.44269504088896338700e00
# Taylor coefficients 1/k! of exp on |r| <= ln(2)/2 (degree 14: truncation below 1e-18).
_EXP_COEFFS = [1.0]
for _k in range(1, 15):
    _EXP_COEFFS.append(_EXP_COEFFS[-1] / _k)


def canonical_exp(x: np.ndarray) -> np.ndarray:
    """exp(x) in float64 from IEEE basic operations only: the same bits on any processor.

    Cody-Waite reduction ``x = n ln2 + r`` and a Horner polynomial; numpy applies each ``*``
    and ``+`` as a separate correctly rounded operation (no fused multiply-add), unlike
    ``np.exp``, whose vectorized implementations differ between processors in the last bit.
    """
    x = np.asarray(x, dtype=np.float64)
    n = np.rint(x * _INV_LN2)
    r = (x - n * _LN2_HI) - n * _LN2_LO
    p = np.full_like(r, _EXP_COEFFS[-1])
    for coeff in reversed(_EXP_COEFFS[:-1]):
        p = p * r + coeff
    return np.ldexp(p, n.astype(np.int64))


def canonical_sigmoid(x: np.ndarray) -> np.ndarray:
    x = np.clip(np.asarray(x, dtype=np.float64), -TABLE_CLAMP, TABLE_CLAMP)
    return 1.0 / (1.0 + canonical_exp(-x))


@dataclass(frozen=True)
class BinLayout:
    """K equal bins of width ``width`` from ``low``; means snapped to ``width / mean_steps``.

    The scale of a logistic is ``scale_unit * exp(j / 64)`` for the snapped log-scale index ``j``
    in ``[j_min, j_max]`` (``scale_unit`` converts the network's units to bin units).
    """

    name: str
    bins: int
    low: float
    width: float
    mean_steps: int
    j_min: int
    j_max: int
    scale_unit: float = 1.0
    _tables: dict = field(default_factory=dict, repr=False, compare=False, hash=False)

    def describe(self) -> dict:
        return {"name": self.name, "bins": self.bins, "low": self.low, "width": self.width,
                "mean_steps": self.mean_steps, "j_min": self.j_min, "j_max": self.j_max,
                "scale_unit": self.scale_unit, "log_scale_steps": LOG_SCALE_STEPS}

    # --- snapping (the only place where floats from the networks enter) ---------------------------
    def snap(self, mean: np.ndarray, log_scale: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Network mean (in bin units) and log-scale (network units) -> integer grid (n, j)."""
        mean = np.asarray(mean, dtype=np.float64)
        log_scale = np.asarray(log_scale, dtype=np.float64)
        if not (np.isfinite(mean).all() and np.isfinite(log_scale).all()):
            raise CodingError(f"{self.name}: the network produced non-finite distribution parameters; "
                              "the weights are damaged or do not fit this model")
        span = self.bins * self.mean_steps
        steps_per_unit = self.mean_steps / self.width
        n = np.rint(np.clip((mean - self.low) * steps_per_unit, 0.0, float(span))).astype(np.int64)
        j = np.rint(np.clip(log_scale * LOG_SCALE_STEPS, self.j_min, self.j_max)).astype(np.int64)
        return n, j

    def centers(self, symbols: np.ndarray) -> np.ndarray:
        """Bin index -> the value the networks see (the bin centre), float64."""
        return self.low + (np.asarray(symbols, dtype=np.float64) + 0.5) * self.width

    def bin_of(self, values: np.ndarray) -> np.ndarray:
        """Value -> index of the bin holding it (out-of-range values go to the edge bins)."""
        index = np.floor((np.asarray(values, dtype=np.float64) - self.low) / self.width)
        return np.clip(index, 0, self.bins - 1).astype(np.int32)

    # --- tables --------------------------------------------------------------------------------
    def _scale_blocks(self, j: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """CDF and interior-mass tables, built lazily for the scales in ``j``.

        For scale block ``i`` (``j = j_min + i``): ``cdf[i, u + KG] = F(u c_j)`` for ``u`` in
        ``[-KG, KG]``, and ``mass[i, p, q] = F((u + G) c_j) - F(u c_j)`` (float32) at
        ``u = G (q - K) + p``: the mass of an interior bin whose lower edge is ``u``, stored by
        phase ``p = u mod G`` so that the K bins of one distribution are contiguous.
        """
        g, k = self.mean_steps, self.bins
        span = k * g
        n_scales = self.j_max - self.j_min + 1
        if "cdf" not in self._tables:
            # np.zeros maps untouched pages lazily: only the scales in use cost memory.
            self._tables["cdf"] = np.zeros((n_scales, 2 * span + 1), dtype=np.float64)
            self._tables["mass"] = np.zeros((n_scales, g, 2 * k + 1), dtype=np.float32)
            self._tables["built"] = np.zeros(n_scales, dtype=bool)
        cdf, mass, built = self._tables["cdf"], self._tables["mass"], self._tables["built"]
        missing = np.unique(j - self.j_min)
        missing = missing[~built[missing]]
        u = np.arange(-span, span + 1, dtype=np.float64)
        for index in missing:
            scale = self.scale_unit * canonical_exp(np.float64(index + self.j_min) / LOG_SCALE_STEPS)
            step = self.width / (self.mean_steps * scale)           # c_j: CDF argument per grid step
            values = canonical_sigmoid(u * step)
            cdf[index] = values
            interior = np.zeros(2 * span + g, dtype=np.float64)      # padded to (2K+1) rows of G phases
            interior[:2 * span + 1 - g] = values[g:] - values[:-g]
            mass[index] = interior[: (2 * k + 1) * g].reshape(2 * k + 1, g).T.astype(np.float32)
        built[missing] = True
        return cdf, mass

    def build_all(self) -> None:
        """Build the tables of every scale now (a few seconds) rather than on first use."""
        self._scale_blocks(np.arange(self.j_min, self.j_max + 1))

    def probabilities(self, n: np.ndarray, j: np.ndarray) -> np.ndarray:
        """(m, K) float32 bin masses of the snapped logistics, ready for ``Categorical``."""
        n = np.asarray(n, dtype=np.int64).ravel()
        j = np.asarray(j, dtype=np.int64).ravel()
        if n.size == 0:
            return np.zeros((0, self.bins), dtype=np.float32)
        if n.min() < 0 or n.max() > self.bins * self.mean_steps or j.min() < self.j_min or j.max() > self.j_max:
            raise CodingError(f"{self.name}: distribution parameters off the coding grid")
        cdf, mass = self._scale_blocks(j)
        g, k = self.mean_steps, self.bins
        scale_index = j - self.j_min
        # The lowest edge of a row sits at u = -n = G (q0 - K) + p.
        phase = (-n) % g
        q0 = (-n - phase) // g + k
        flat_mass = mass.reshape(-1)
        rows = as_strided(flat_mass, shape=(flat_mass.size - k + 1, k), strides=(4, 4), writeable=False)
        out = rows[(scale_index * g + phase) * (2 * k + 1) + q0]
        span = k * g
        flat_cdf = cdf.reshape(-1)
        edge0 = scale_index * (2 * span + 1) + span - n              # index of u = -n, i.e. of e_0
        out[:, 0] = flat_cdf[edge0 + g].astype(np.float32)                   # tail below e_1
        out[:, -1] = (1.0 - flat_cdf[edge0 + g * (k - 1)]).astype(np.float32)  # tail above e_{K-1}
        return out


@lru_cache(maxsize=None)
def latent_layout(bins: int = 1024) -> BinLayout:
    """Latents: ``bins`` bins on [-8, 8]; means to 1/4 bin; log-scales as clamped by the model."""
    low, high = LATENT_LOG_SCALE_RANGE
    return BinLayout(name=f"latent{bins}", bins=bins, low=-8.0, width=16.0 / bins, mean_steps=4,
                     j_min=int(low * LOG_SCALE_STEPS), j_max=int(high * LOG_SCALE_STEPS))


@lru_cache(maxsize=None)
def pixel_layout() -> BinLayout:
    """Sub-pixels: 256 levels of width 1 (level k is bin k); means to 1/16 level.

    The network's log-scale is in units of [-1, 1] pixels, hence ``scale_unit`` = 127.5 levels.
    """
    low, high = PIXEL_LOG_SCALE_RANGE
    return BinLayout(name="pixel256", bins=256, low=-0.5, width=1.0, mean_steps=16,
                     j_min=int(low * LOG_SCALE_STEPS), j_max=int(high * LOG_SCALE_STEPS), scale_unit=127.5)
