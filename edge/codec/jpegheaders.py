"""What a JPEG's headers say, read without decoding it: frame kind, sampling, restart interval,
Adobe colour transform and quantization tables; and whether jpeg-exact can keep such a JPEG
(:func:`refusal`). Used by the jpeg-exact coder (:mod:`edge.codec.jpegexact`) and the JPEG
writer of the offshore side (:mod:`edge.codec.jpegwrite`).
"""
from __future__ import annotations

import math
import struct
from dataclasses import dataclass

from edge.errors import InputError

# Start-of-frame markers: (kind, entropy coding).
_SOF = {0xC0: ("baseline", "huffman"), 0xC1: ("extended sequential", "huffman"),
        0xC2: ("progressive", "huffman"), 0xC3: ("lossless", "huffman"),
        0xC5: ("hierarchical", "huffman"), 0xC6: ("hierarchical", "huffman"), 0xC7: ("hierarchical", "huffman"),
        0xC9: ("extended sequential", "arithmetic"), 0xCA: ("progressive", "arithmetic"),
        0xCB: ("lossless", "arithmetic"), 0xCD: ("hierarchical", "arithmetic"),
        0xCE: ("hierarchical", "arithmetic"), 0xCF: ("hierarchical", "arithmetic")}


class NotKeptExactly(InputError):
    """This source cannot be coded by jpeg-exact (not a JPEG, or a kind of JPEG it refuses)."""


@dataclass(frozen=True)
class JpegInfo:
    """What the JPEG's headers say, read without decoding it."""

    kind: str                   # "baseline", "extended sequential", "progressive", ...
    coding: str                 # "huffman" or "arithmetic"
    precision: int              # bits per sample
    width: int
    height: int
    sampling: tuple[tuple[int, int], ...]   # (h, v) per component
    restart_interval: int       # 0: no restart markers
    adobe_transform: int | None  # APP14 Adobe colour transform, None if absent
    # Per component, its quantization table (64 steps in natural order); () if a table is missing.
    quant_tables: tuple[tuple[int, ...], ...] = ()

    @property
    def sampling_text(self) -> str:
        return ",".join(f"{h}x{v}" for h, v in self.sampling)


def is_jpeg(data: bytes | None) -> bool:
    return bool(data) and data[:3] == b"\xff\xd8\xff"


def inspect_jpeg(data: bytes, where: str = "") -> JpegInfo:
    """Read the frame header, restart interval and Adobe marker; raise NotKeptExactly if absent."""
    if not is_jpeg(data):
        raise NotKeptExactly("not a JPEG file", where)
    pos, frame, restart, adobe = 2, None, 0, None
    tables: dict[int, tuple[int, ...]] = {}
    table_ids: tuple[int, ...] = ()
    while True:
        while pos < len(data) and data[pos] != 0xFF:   # tolerate stray bytes as libjpeg does
            pos += 1
        while pos < len(data) and data[pos] == 0xFF:   # fill bytes
            pos += 1
        if pos + 3 > len(data):
            raise NotKeptExactly("JPEG headers end before the image data", where)
        marker = data[pos]
        pos += 1
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            continue
        if marker == 0xD9:
            raise NotKeptExactly("JPEG ends before the image data", where)
        (length,) = struct.unpack(">H", data[pos:pos + 2])
        body = data[pos + 2:pos + length]
        if length < 2 or len(body) != length - 2:
            raise NotKeptExactly(f"JPEG marker 0x{marker:02X} is truncated", where)
        if marker in _SOF:
            if len(body) < 6 or len(body) < 6 + 3 * body[5]:
                raise NotKeptExactly("JPEG frame header is truncated", where)
            precision, height, width, count = struct.unpack(">BHHB", body[:6])
            sampling = tuple((body[7 + 3 * i] >> 4, body[7 + 3 * i] & 15) for i in range(count))
            frame = (*_SOF[marker], precision, width, height, sampling)
            table_ids = tuple(body[8 + 3 * i] for i in range(count))
        elif marker == 0xDB:
            tables.update(_quant_tables(body))
        elif marker == 0xDD and len(body) >= 2:
            (restart,) = struct.unpack(">H", body[:2])
        elif marker == 0xEE and body[:5] == b"Adobe" and len(body) >= 12:
            adobe = body[11]
        elif marker == 0xDA:
            break
        pos += length
    if frame is None:
        raise NotKeptExactly("JPEG has image data but no frame header", where)
    kind, coding, precision, width, height, sampling = frame
    quant = tuple(tables[i] for i in table_ids) if all(i in tables for i in table_ids) else ()
    return JpegInfo(kind, coding, precision, width, height, sampling, restart, adobe, quant)


# Position in natural (row-major) order of each zigzag index.
_ZIGZAG = sorted(range(64), key=lambda i: (i // 8 + i % 8, (i % 8) if (i // 8 + i % 8) % 2 == 0 else (i // 8)))


def _quant_tables(body: bytes) -> dict[int, tuple[int, ...]]:
    """The tables of one DQT segment, id -> 64 steps in natural order."""
    tables, pos = {}, 0
    while pos < len(body):
        wide, table_id = body[pos] >> 4, body[pos] & 15
        size = 128 if wide else 64
        raw = body[pos + 1:pos + 1 + size]
        if len(raw) != size:
            break
        zigzag = struct.unpack(">64H", raw) if wide else tuple(raw)
        natural = [0] * 64
        for index, value in enumerate(zigzag):
            natural[_ZIGZAG[index]] = value
        tables[table_id] = tuple(natural)
        pos += 1 + size
    return tables


def component_block_shapes(info: JpegInfo) -> list[tuple[int, int]]:
    """(block rows, block cols) of each component, as the decoder sees them (no MCU padding)."""
    h_max = max(h for h, _ in info.sampling)
    v_max = max(v for _, v in info.sampling)
    shapes = []
    for h, v in info.sampling:
        height, width = math.ceil(info.height * v / v_max), math.ceil(info.width * h / h_max)
        shapes.append((math.ceil(height / 8), math.ceil(width / 8)))
    return shapes


def refusal(info: JpegInfo) -> str:
    """Why jpeg-exact cannot keep this JPEG exactly, or "" when it can."""
    if info.coding != "huffman":
        return f"arithmetic-coded {info.kind} JPEG"
    if info.kind in ("lossless", "hierarchical"):
        return f"{info.kind} JPEG"
    if info.precision != 8:
        return f"{info.precision}-bit JPEG"
    if len(info.sampling) not in (1, 3):
        return f"JPEG with {len(info.sampling)} components (CMYK or other): only grey or YCbCr"
    if len(info.sampling) == 3 and info.adobe_transform == 0:
        return "RGB-coded JPEG (Adobe transform 0): only YCbCr"
    if any(h not in (1, 2) or v not in (1, 2) for h, v in info.sampling):
        return f"JPEG with sampling factors {info.sampling_text}: only factors 1 and 2"
    return ""


def describe(info: JpegInfo) -> str:
    """One phrase for the bundle: which source this was."""
    text = f"{info.kind} JPEG source ({info.sampling_text})"
    if info.restart_interval:
        text += ", restart markers dropped"
    return text
