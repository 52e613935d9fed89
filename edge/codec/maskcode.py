"""Compact, exact code for the blade cell map (which patches of the grid are blade).

The map is a bool (rows, cols) array from :func:`edge.codec.patches.blade_cells`. Its blade
region is a union of grid cells, so its outline is made of axis-aligned edges and almost every
cell equals its neighbours: only cells next to an outline corner or edge carry information.

Code layout (all integers unsigned LEB128 varints)::

    rows  cols  <range-coded cell bits>

The grid dimensions travel in the code, so :func:`decode_mask` needs nothing else; pass
``shape`` to have it checked against the grid the caller expects.

Cells are coded in row-major order with a binary range coder (32-bit integer arithmetic, so
the decoder gives the same map on any machine). Each cell's probability comes from adaptive
counts selected by its already-coded neighbours west, north-west, north and north-east (cells
outside the grid count as background): inside a straight outline the neighbours predict the
cell almost surely, so a cell costs a fraction of a bit and the outline's corners pay the rest.
Measured on the 189 wta-train masks: 6-30 bytes (median 16) on their 30x17 grid at patch
size 64, 7-65 bytes (median 31) when upscaled to 5280x2970 (83x47 cells); a checkerboard
costs almost nothing, independent random cells about one bit each.
"""
from __future__ import annotations

import numpy as np

from edge.errors import BundleError

# Larger grids are refused. 2^24 cells is a 1-gigapixel image at patch size 8.
MAX_CELLS = 1 << 24

_PROB_BITS = 12                 # probabilities are integers in (0, 4096)
_PROB_ONE = 1 << _PROB_BITS
_COUNT_LIMIT = 1024             # halve the counts past this (measured: halving sooner costs bytes)
_TOP = 1 << 24                  # renormalise when the range falls below this
_MASK32 = 0xFFFFFFFF
_CONTEXTS = 16                  # 4 neighbour bits


class _BadCode(Exception):
    """Raised inside the decoder; :func:`decode_mask` turns it into a BundleError."""


def _mask_error(message: str) -> _BadCode:
    return _BadCode(message)


# ---------------------------------------------------------------------------- varints

def _put_varint(out: bytearray, value: int) -> None:
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)


def _get_varint(data: bytes, pos: int, what: str) -> tuple[int, int]:
    value = 0
    for shift in range(0, 35, 7):               # up to 5 bytes: values below 2^35
        if pos >= len(data):
            raise _mask_error(f"code ends inside the {what}")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            if byte == 0 and shift > 0:
                raise _mask_error(f"{what} is not in its shortest form")
            return value, pos
    raise _mask_error(f"{what} is too long")


# ---------------------------------------------------------------------------- the model

class _Model:
    """Adaptive bit counts per neighbour context, shared by encoder and decoder."""

    def __init__(self) -> None:
        self.zeros = [0] * _CONTEXTS
        self.ones = [0] * _CONTEXTS

    def p_zero(self, context: int) -> int:
        """Probability of a 0 (Krichevsky-Trofimov estimate), scaled to _PROB_ONE."""
        n0, n1 = self.zeros[context], self.ones[context]
        p = ((2 * n0 + 1) << _PROB_BITS) // (2 * (n0 + n1) + 2)
        return min(max(p, 1), _PROB_ONE - 1)

    def update(self, context: int, bit: int) -> None:
        if bit:
            self.ones[context] += 1
        else:
            self.zeros[context] += 1
        if self.zeros[context] + self.ones[context] > _COUNT_LIMIT:
            self.zeros[context] = (self.zeros[context] + 1) // 2
            self.ones[context] = (self.ones[context] + 1) // 2


def _context(cells: list[list[int]], r: int, c: int, cols: int) -> int:
    """Neighbours already coded: west, north-west, north, north-east (0 outside the grid)."""
    west = cells[r][c - 1] if c > 0 else 0
    if r == 0:
        return west
    above = cells[r - 1]
    north_west = above[c - 1] if c > 0 else 0
    north_east = above[c + 1] if c + 1 < cols else 0
    return west | (north_west << 1) | (above[c] << 2) | (north_east << 3)


# ---------------------------------------------------------------------------- range coder

class _Encoder:
    """Binary range encoder; carries are held back in (cache, pending 0xFF bytes)."""

    def __init__(self, out: bytearray) -> None:
        self.out = out
        self.low = 0            # may grow to 33 bits: bit 32 is a carry
        self.range = _MASK32
        self.cache = 0
        self.pending = 0        # number of 0xFF bytes waiting behind the cache byte
        self.started = False    # the first byte is the cache's initial zero: never written

    def encode(self, bit: int, p_zero: int) -> None:
        bound = (self.range >> _PROB_BITS) * p_zero
        if bit:
            self.low += bound
            self.range -= bound
        else:
            self.range = bound
        while self.range < _TOP:
            self.range <<= 8
            self._shift_low()

    def _shift_low(self) -> None:
        if self.low < 0xFF000000 or self.low > _MASK32:
            carry = self.low >> 32
            if self.started:
                self.out.append((self.cache + carry) & 0xFF)
            elif carry:             # cannot happen: low + range never exceeds 2^32 before output
                raise AssertionError("range coder carry into the first byte")
            self.out.extend([(0xFF + carry) & 0xFF] * self.pending)
            self.pending = 0
            self.cache = (self.low >> 24) & 0xFF
            self.started = True
        else:
            self.pending += 1
        self.low = (self.low << 8) & _MASK32

    def finish(self) -> None:
        for _ in range(5):
            self._shift_low()


class _Decoder:
    def __init__(self, data: bytes, pos: int) -> None:
        self.data = data
        self.pos = pos
        self.range = _MASK32
        self.code = 0
        for _ in range(4):
            self.code = (self.code << 8) | self._next_byte()

    def _next_byte(self) -> int:
        if self.pos >= len(self.data):
            raise _mask_error("code is truncated: the cell bits end early")
        byte = self.data[self.pos]
        self.pos += 1
        return byte

    def decode(self, p_zero: int) -> int:
        if self.code >= self.range:     # impossible for a code an encoder wrote
            raise _mask_error("cell bits are not a valid range code")
        bound = (self.range >> _PROB_BITS) * p_zero
        if self.code < bound:
            self.range = bound
            bit = 0
        else:
            self.code -= bound
            self.range -= bound
            bit = 1
        while self.range < _TOP:
            self.range <<= 8
            self.code = ((self.code << 8) | self._next_byte()) & _MASK32
        return bit


# ---------------------------------------------------------------------------- public API

def encode_mask(cells: np.ndarray) -> bytes:
    """Code a bool (rows, cols) cell map; :func:`decode_mask` gives it back exactly."""
    cells = np.asarray(cells)
    if cells.ndim != 2 or cells.dtype != bool:
        raise ValueError(f"cell map must be a 2-D bool array, got {cells.dtype} {cells.shape}")
    rows, cols = cells.shape
    if rows < 1 or cols < 1 or rows * cols > MAX_CELLS:
        raise ValueError(f"cell map of {rows}x{cols} cells is empty or larger than {MAX_CELLS}")
    out = bytearray()
    _put_varint(out, rows)
    _put_varint(out, cols)
    grid = cells.astype(np.uint8).tolist()
    model = _Model()
    encoder = _Encoder(out)
    for r in range(rows):
        row = grid[r]
        for c in range(cols):
            context = _context(grid, r, c, cols)
            encoder.encode(row[c], model.p_zero(context))
            model.update(context, row[c])
    encoder.finish()
    return bytes(out)


def decode_mask(code: bytes, shape: tuple[int, int] | None = None, bundle: str = "") -> np.ndarray:
    """Decode a cell map; with ``shape`` the code must be for a grid of that (rows, cols).

    Raises :class:`BundleError` (section ``mask``, naming ``bundle``) when the code is
    truncated, has bytes left over, is not a code our encoder can write, or is for another grid.
    """
    try:
        return _decode(bytes(code), shape)
    except _BadCode as error:
        raise BundleError(str(error), section="mask", bundle=bundle) from None


def _decode(code: bytes, shape: tuple[int, int] | None) -> np.ndarray:
    rows, pos = _get_varint(code, 0, "row count")
    cols, pos = _get_varint(code, pos, "column count")
    if rows < 1 or cols < 1 or rows * cols > MAX_CELLS:
        raise _mask_error(f"grid of {rows}x{cols} cells is empty or larger than {MAX_CELLS} cells")
    if shape is not None and (rows, cols) != tuple(shape):
        raise _mask_error(f"code is for a {rows}x{cols} grid, expected {shape[0]}x{shape[1]}")
    # Rows are added as they decode: a damaged code claiming a huge grid runs out of bytes
    # (one byte lasts at most about 23,000 cells) long before it could fill much memory.
    grid: list[list[int]] = []
    model = _Model()
    decoder = _Decoder(code, pos)
    for r in range(rows):
        row = [0] * cols
        grid.append(row)
        for c in range(cols):
            context = _context(grid, r, c, cols)
            bit = decoder.decode(model.p_zero(context))
            row[c] = bit
            model.update(context, bit)
    if decoder.pos != len(code):
        raise _mask_error(f"{len(code) - decoder.pos} bytes left over after the last cell")
    return np.array(grid, dtype=bool).reshape(rows, cols)
