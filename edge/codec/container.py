"""The bundle: one file per photo holding everything needed to decode it (docs/bundle-format.md).

This module owns the format: the magic, the version, the section tags and the header schema.
A bundle is::

    preamble   magic (8) | version u16 | flags u16 | CRC32 of the 12 bytes before (4)
    HEAD       canonical JSON: image size, patch size, regions, source file facts, bundle id
    MASK       the blade cell map (edge.codec.maskcode)
    META       the source file's EXIF, XMP and ICC bytes
    STRM * n   one per region: that region's streams, framed by their lengths
    END        empty: the bundle ends here, nothing may follow

each section framed as ``tag (4) | length u32 | payload | CRC32 u32`` (little endian, the CRC
over tag, length and payload). The reader checks every length against the bytes left before
touching the payload, every CRC, then the header's claims against the sections, and raises
:class:`edge.errors.BundleError` naming the section on the first thing that is wrong.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import struct
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge.codec.contract import CodedRegion
from edge.codec.maskcode import MAX_CELLS, decode_mask
from edge.codec.patches import PatchGrid
from edge.errors import BundleError

# ---------------------------------------------------------------------------- format constants

# PNG-style magic: the high byte catches 7-bit transfers, CR LF / SUB / LF catch text-mode
# line-ending conversions.
MAGIC = b"\x89EDG\r\n\x1a\n"
# 2: classical region coders (avif, jxl, jxl-lossless) and ROI bundles on the 16-pixel cell grid
# with any pair of region coders (edge.codec.regions); the layout is unchanged, so 1 still decodes.
FORMAT_VERSION = 2
SUPPORTED_VERSIONS = (1, 2)
SUFFIX = ".edgb"

_PREAMBLE = struct.Struct("<8sHHI")        # magic, version, flags, CRC32 of the first 12 bytes
_SECTION_HEAD = struct.Struct("<4sI")      # tag, payload length
_CRC = struct.Struct("<I")
_U32 = struct.Struct("<I")

TAG_HEADER = b"HEAD"
TAG_MASK = b"MASK"
TAG_METADATA = b"META"
TAG_STREAMS = b"STRM"
TAG_END = b"END "

MAX_HEADER_BYTES = 1 << 20                 # a header is a few hundred bytes per region
MAX_IMAGE_SIDE = 1 << 20
MAX_REGIONS = 64
BUNDLE_ID_HEX = 32                         # 128 bits of a SHA-256

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_BUNDLE_ID = re.compile(r"[0-9a-f]{%d}" % BUNDLE_ID_HEX)

_HEADER_KEYS = {"bundle_id", "width", "height", "channels", "patch_size", "regions", "source"}
_REGION_KEYS = {"name", "coder", "model", "weights_sha256", "patch_size", "count", "params",
                "streams", "bits", "stream_section", "pixel_sha256"}
_SOURCE_KEYS = {"filename", "size", "sha256", "format"}


# ---------------------------------------------------------------------------- the values

@dataclass(frozen=True)
class SourceMetadata:
    """Facts about the original file, kept so the decoded image can carry them again.

    ``exif`` is the TIFF-structured EXIF block without the JPEG ``Exif\\0\\0`` prefix, ``xmp``
    the XMP packet's bytes, ``icc`` the ICC profile; empty when the source had none.
    """

    filename: str                   # base name of the original file
    size: int                       # its size in bytes
    sha256: str                     # SHA-256 of its bytes (hex)
    format: str = ""                # "JPEG", "PNG", ... as Pillow names it
    exif: bytes = b""
    xmp: bytes = b""
    icc: bytes = b""


@dataclass(frozen=True)
class BundleRegion:
    """One coded region: its name ("background", "blade", "whole" ...) and its streams.

    ``pixel_sha256`` is set for lossless regions: the SHA-256 of the original region pixels
    (see :func:`pixels_sha256`); the decoder checks it with :func:`verify_region_pixels`.
    """

    name: str
    coded: CodedRegion
    pixel_sha256: str | None = None


@dataclass(frozen=True)
class Bundle:
    """Everything a bundle holds; :func:`encode_bundle` and :func:`decode_bundle` convert it."""

    width: int
    height: int
    channels: int
    patch_size: int
    mask_code: bytes                # edge.codec.maskcode code of the (rows, cols) blade cell map
    regions: tuple[BundleRegion, ...]
    source: SourceMetadata

    @property
    def grid(self) -> PatchGrid:
        return PatchGrid(self.height, self.width, self.patch_size)

    @property
    def bundle_id(self) -> str:
        """Stable id: the same photo coded with the same settings always gets the same id.

        Derived from the source file's SHA-256, the image geometry and each region's name,
        coder, model, weights hash, patch size and params; not from the streams or the mask,
        which may differ by a few bits between machines for the same photo and settings.
        """
        settings = {
            "source_sha256": self.source.sha256,
            "width": self.width,
            "height": self.height,
            "channels": self.channels,
            "patch_size": self.patch_size,
            "regions": [
                {"name": r.name, "coder": r.coded.coder, "model": r.coded.model,
                 "weights_sha256": r.coded.weights_sha256, "patch_size": r.coded.patch_size,
                 "params": r.coded.params}
                for r in self.regions
            ],
        }
        digest = hashlib.sha256(b"edge-bundle-id\n" + _canonical_json(settings, "header"))
        return digest.hexdigest()[:BUNDLE_ID_HEX]

    def blade_cells(self) -> np.ndarray:
        """The decoded bool (rows, cols) cell map."""
        return decode_mask(self.mask_code, (self.grid.rows, self.grid.cols))

    def region(self, name: str) -> BundleRegion:
        for region in self.regions:
            if region.name == name:
                return region
        raise KeyError(f"bundle has no region {name!r} (has {[r.name for r in self.regions]})")


# ---------------------------------------------------------------------------- pixel hashes

def pixels_sha256(pixels: np.ndarray) -> str:
    """SHA-256 of a region's pixels: the bytes of the uint8 array in C order.

    For a patch region this is the (N, C, p, p) array the coder was given, patches in grid
    order; the decoder hashes what it decoded the same way.
    """
    pixels = np.asarray(pixels)
    if pixels.dtype != np.uint8:
        raise ValueError(f"pixels must be uint8, got {pixels.dtype}")
    return hashlib.sha256(np.ascontiguousarray(pixels).tobytes()).hexdigest()


def verify_region_pixels(region: BundleRegion, pixels: np.ndarray, bundle: str = "") -> None:
    """Raise :class:`BundleError` if ``region`` carries a pixel hash and ``pixels`` differ."""
    if region.pixel_sha256 is None:
        return
    if pixels_sha256(pixels) != region.pixel_sha256:
        raise BundleError("decoded pixels differ from the original (SHA-256 mismatch)",
                          section=f"stream:{region.name}", bundle=bundle)


# ---------------------------------------------------------------------------- writing

def encode_bundle(bundle: Bundle) -> bytes:
    """Serialise a bundle. Raises :class:`BundleError` if it holds something unwritable."""
    _check_bundle(bundle)
    header = _canonical_json(_header_dict(bundle), "header")
    if len(header) > MAX_HEADER_BYTES:
        raise BundleError(f"header of {len(header)} bytes exceeds {MAX_HEADER_BYTES}", section="header")
    metadata = b"".join(_U32.pack(len(blob)) + blob
                        for blob in (bundle.source.exif, bundle.source.xmp, bundle.source.icc))
    parts = [_preamble(FORMAT_VERSION),
             _section(TAG_HEADER, header),
             _section(TAG_MASK, bundle.mask_code),
             _section(TAG_METADATA, metadata)]
    parts += [_section(TAG_STREAMS, _frame_streams(r.coded.streams)) for r in bundle.regions]
    parts.append(_section(TAG_END, b""))
    return b"".join(parts)


def write_bundle(path: str | os.PathLike, bundle: Bundle) -> None:
    """Encode and write durably: temp file, fsync, rename over ``path``, fsync the folder."""
    write_file_atomically(path, encode_bundle(bundle))


def write_file_atomically(path: str | os.PathLike, data: bytes) -> None:
    """After this returns, ``path`` holds ``data`` even across a power cut; never half of it."""
    path = Path(path)
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), 0o644)      # mkstemp makes it private
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)


def _preamble(version: int) -> bytes:
    first = _PREAMBLE.pack(MAGIC, version, 0, 0)[:12]
    return first + _CRC.pack(zlib.crc32(first))


def _section(tag: bytes, payload: bytes) -> bytes:
    if len(payload) > 0xFFFFFFFF:
        raise BundleError(f"{len(payload)} bytes do not fit a section", section=tag.decode().strip())
    head = _SECTION_HEAD.pack(tag, len(payload))
    return head + payload + _CRC.pack(zlib.crc32(payload, zlib.crc32(head)))


def _frame_streams(streams: tuple[bytes, ...]) -> bytes:
    out = bytearray()
    _put_varint(out, len(streams))
    for stream in streams:
        _put_varint(out, len(stream))
    for stream in streams:
        out += stream
    return bytes(out)


def _header_dict(bundle: Bundle) -> dict:
    return {
        "bundle_id": bundle.bundle_id,
        "width": bundle.width,
        "height": bundle.height,
        "channels": bundle.channels,
        "patch_size": bundle.patch_size,
        "source": {"filename": bundle.source.filename, "size": bundle.source.size,
                   "sha256": bundle.source.sha256, "format": bundle.source.format},
        "regions": [
            {"name": r.name, "coder": r.coded.coder, "model": r.coded.model,
             "weights_sha256": r.coded.weights_sha256, "patch_size": r.coded.patch_size,
             "count": r.coded.count, "params": r.coded.params,
             "streams": len(r.coded.streams), "bits": r.coded.bits,
             "stream_section": index, "pixel_sha256": r.pixel_sha256}
            for index, r in enumerate(bundle.regions)
        ],
    }


def _canonical_json(value, section: str) -> bytes:
    """Sorted keys, no spaces, ASCII only, no NaN: one byte string per value."""
    try:
        text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True,
                          allow_nan=False)
    except (TypeError, ValueError) as error:
        raise BundleError(f"not JSON-writable: {error}", section=section) from None
    return text.encode("ascii")


# ---------------------------------------------------------------------------- reading

def read_bundle(path: str | os.PathLike) -> Bundle:
    """Read and decode a bundle file; every failure is a :class:`BundleError` naming ``path``."""
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        raise BundleError(f"cannot read: {error.strerror}", section="file", bundle=str(path)) from None
    return decode_bundle(data, name=str(path))


def decode_bundle(data: bytes, name: str = "") -> Bundle:
    """Parse and check a bundle; ``name`` (file name, topic ...) goes into error messages."""
    reader = _Reader(memoryview(bytes(data)), name)
    reader.preamble()
    header = _parse_header(reader.section(TAG_HEADER, "header"), name)
    mask_code = reader.section(TAG_MASK, "mask")
    metadata = reader.section(TAG_METADATA, "metadata")
    stream_payloads = [reader.section(TAG_STREAMS, f"stream:{region['name']}")
                       for region in sorted(header["regions"], key=lambda r: r["stream_section"])]
    reader.section(TAG_END, "end")
    reader.at_end()

    # Every CRC holds; now check that the sections say what the header claims.
    exif, xmp, icc = _parse_metadata(metadata, name)
    source = SourceMetadata(exif=exif, xmp=xmp, icc=icc, **header["source"])
    regions = []
    for entry in header["regions"]:
        section = f"stream:{entry['name']}"
        streams = _unframe_streams(stream_payloads[entry["stream_section"]], section, name)
        if len(streams) != entry["streams"] or 8 * sum(map(len, streams)) != entry["bits"]:
            raise BundleError(f"holds {len(streams)} streams of {sum(map(len, streams))} bytes, the "
                              f"header says {entry['streams']} of {entry['bits'] // 8}",
                              section=section, bundle=name)
        coded = CodedRegion(coder=entry["coder"], model=entry["model"],
                            weights_sha256=entry["weights_sha256"], patch_size=entry["patch_size"],
                            count=entry["count"], streams=streams, params=entry["params"])
        regions.append(BundleRegion(entry["name"], coded, entry["pixel_sha256"]))
    bundle = Bundle(width=header["width"], height=header["height"], channels=header["channels"],
                    patch_size=header["patch_size"], mask_code=bytes(mask_code),
                    regions=tuple(regions), source=source)
    decode_mask(bundle.mask_code, (bundle.grid.rows, bundle.grid.cols), bundle=name)
    if bundle.bundle_id != header["bundle_id"]:
        raise BundleError("bundle id does not match the coding settings", section="header", bundle=name)
    return bundle


class _Reader:
    """Walks the sections in order, checking each length and CRC before using a byte."""

    def __init__(self, data: memoryview, name: str):
        self.data = data
        self.pos = 0
        self.name = name

    def _error(self, message: str, section: str) -> BundleError:
        return BundleError(message, section=section, bundle=self.name)

    def _take(self, count: int, section: str, what: str) -> memoryview:
        left = len(self.data) - self.pos
        if count > left:
            raise self._error(f"truncated: {what} needs {count} bytes, {left} left", section)
        chunk = self.data[self.pos : self.pos + count]
        self.pos += count
        return chunk

    def preamble(self) -> None:
        raw = self._take(_PREAMBLE.size, "preamble", "the preamble")
        magic, version, flags, crc = _PREAMBLE.unpack(raw)
        if magic != MAGIC:
            raise self._error("not an edge bundle (wrong magic bytes)", "preamble")
        if zlib.crc32(raw[:12]) != crc:
            raise self._error("checksum mismatch: the preamble is damaged", "preamble")
        if version not in SUPPORTED_VERSIONS:
            raise self._error(f"format version {version} is not supported (this reader knows "
                              f"{', '.join(map(str, SUPPORTED_VERSIONS))}); update the decoder", "version")
        if flags != 0:
            raise self._error(f"unknown flags {flags:#06x}", "preamble")

    def section(self, tag: bytes, section: str) -> memoryview:
        head = self._take(_SECTION_HEAD.size, section, "the section head")
        found, length = _SECTION_HEAD.unpack(head)
        if found != tag:
            raise self._error(f"expected tag {tag!r}, found {bytes(found)!r}", section)
        payload = self._take(length, section, "the payload")
        (crc,) = _CRC.unpack(self._take(_CRC.size, section, "the checksum"))
        if zlib.crc32(payload, zlib.crc32(head)) != crc:
            raise self._error("checksum mismatch: the section is damaged", section)
        return payload

    def at_end(self) -> None:
        if self.pos != len(self.data):
            raise self._error(f"{len(self.data) - self.pos} bytes follow the end section", "end")


def _parse_header(raw: memoryview, name: str) -> dict:
    def fail(message: str) -> BundleError:
        return BundleError(message, section="header", bundle=name)

    if len(raw) > MAX_HEADER_BYTES:
        raise fail(f"{len(raw)} bytes exceed the {MAX_HEADER_BYTES} a header may have")
    try:
        header = json.loads(bytes(raw).decode("ascii"), parse_constant=_refuse_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as error:
        raise fail(f"not valid JSON ({type(error).__name__})") from None
    if _canonical_json(header, "header") != raw:
        raise fail("not in canonical form (written by another program?)")
    _check_keys(header, _HEADER_KEYS, "header", fail)
    _check_keys(header["source"], _SOURCE_KEYS, "source", fail)
    if not isinstance(header["regions"], list) or not 1 <= len(header["regions"]) <= MAX_REGIONS:
        raise fail(f"regions must be a list of 1 to {MAX_REGIONS}")
    for entry in header["regions"]:
        _check_keys(entry, _REGION_KEYS, "region", fail)
    if not isinstance(header["bundle_id"], str) or not _BUNDLE_ID.fullmatch(header["bundle_id"]):
        raise fail("bundle_id must be 32 lowercase hex digits")
    try:
        _check_fields(header)
    except _Invalid as error:
        raise fail(str(error)) from None
    return header


def _refuse_constant(token: str):
    raise ValueError(f"{token} is not allowed")


def _check_keys(value, expected: set, what: str, fail) -> None:
    if not isinstance(value, dict):
        raise fail(f"{what} must be a JSON object")
    if set(value) != expected:
        missing, extra = sorted(expected - set(value)), sorted(set(value) - expected)
        raise fail(f"{what} keys differ from the format: missing {missing}, unknown {extra}")


class _Invalid(Exception):
    """A field breaks the format; turned into a BundleError for the right section."""


def _check_bundle(bundle: Bundle) -> None:
    """Refuse to write what the reader would refuse to read."""
    try:
        if not isinstance(bundle.mask_code, bytes):
            raise _Invalid("mask_code must be bytes")
        for blob, what in ((bundle.source.exif, "exif"), (bundle.source.xmp, "xmp"), (bundle.source.icc, "icc")):
            if not isinstance(blob, bytes) or len(blob) > 0xFFFFFFFF:
                raise _Invalid(f"source {what} must be bytes under 4 GiB")
        for region in bundle.regions:
            if not isinstance(region, BundleRegion) or not isinstance(region.coded, CodedRegion):
                raise _Invalid("regions must be BundleRegion values holding a CodedRegion")
            if not all(isinstance(s, bytes) for s in region.coded.streams):
                raise _Invalid(f"region {region.name!r}: every stream must be bytes")
            # What is written must read back equal: no tuples, no non-string keys.
            params = region.coded.params
            if json.loads(_canonical_json(params, "header")) != params:
                raise _Invalid(f"region {region.name!r}: params must be plain JSON values "
                               f"(dict with str keys, list, str, int, float, bool, None)")
        _check_fields(_header_dict(bundle))
    except _Invalid as error:
        raise BundleError(f"cannot write: {error}", section="header") from None
    try:
        shape = decode_mask(bundle.mask_code).shape
    except BundleError:
        raise BundleError("cannot write: the mask code does not decode", section="mask") from None
    if shape != (bundle.grid.rows, bundle.grid.cols):
        raise BundleError(f"cannot write: the mask code is for a {shape[0]}x{shape[1]} grid, the image's "
                          f"is {bundle.grid.rows}x{bundle.grid.cols}", section="mask")


def _check_fields(header: dict) -> None:
    """Types and ranges of every header field (shared by writer and reader)."""
    for key in ("width", "height"):
        _integer(header[key], key, 1, MAX_IMAGE_SIDE)
    _integer(header["channels"], "channels", 1, 4)
    _integer(header["patch_size"], "patch_size", 1, 4096)
    grid = PatchGrid(header["height"], header["width"], header["patch_size"])
    if grid.count > MAX_CELLS:
        raise _Invalid(f"a {grid.rows}x{grid.cols} patch grid exceeds {MAX_CELLS} cells")
    source = header["source"]
    if not isinstance(source["filename"], str) or len(source["filename"]) > 4096:
        raise _Invalid("source filename must be a string of at most 4096 characters")
    _integer(source["size"], "source size", 0, 1 << 50)
    _sha256(source["sha256"], "source sha256")
    if not isinstance(source["format"], str) or len(source["format"]) > 16:
        raise _Invalid("source format must be a string of at most 16 characters")
    regions = header["regions"]
    if not 1 <= len(regions) <= MAX_REGIONS:
        raise _Invalid(f"a bundle holds 1 to {MAX_REGIONS} regions, not {len(regions)}")
    names = [r["name"] for r in regions]
    sections = [r["stream_section"] for r in regions]
    for entry in regions:
        _name(entry["name"], "region name")
        where = f"region {entry['name']!r}"
        _name(entry["coder"], f"{where} coder")
        if entry["model"] != "":
            _name(entry["model"], f"{where} model")
        if entry["weights_sha256"] != "":
            _sha256(entry["weights_sha256"], f"{where} weights_sha256")
        if entry["pixel_sha256"] is not None:
            _sha256(entry["pixel_sha256"], f"{where} pixel_sha256")
        _integer(entry["patch_size"], f"{where} patch_size", 1, 1 << 16)
        _integer(entry["count"], f"{where} count", 0, 1 << 40)
        _integer(entry["streams"], f"{where} streams", 0, 1 << 40)
        _integer(entry["bits"], f"{where} bits", 0, 8 * 0xFFFFFFFF)
        _integer(entry["stream_section"], f"{where} stream_section", 0, len(regions) - 1)
        if not isinstance(entry["params"], dict):
            raise _Invalid(f"{where} params must be a JSON object")
    if len(set(names)) != len(names):
        raise _Invalid(f"region names repeat: {names}")
    if sorted(sections) != list(range(len(regions))):
        raise _Invalid(f"each region needs its own stream section, got {sections}")


def _integer(value, what: str, low: int, high: int) -> None:
    if type(value) is not int or not low <= value <= high:   # bool is not an int here
        raise _Invalid(f"{what} must be an integer in [{low}, {high}], got {value!r}")


def _name(value, what: str) -> None:
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        raise _Invalid(f"{what} must be 1-64 of A-Z a-z 0-9 _ . + - (starting alphanumeric), got {value!r}")


def _sha256(value, what: str) -> None:
    if not isinstance(value, str) or not _SHA256.fullmatch(value):
        raise _Invalid(f"{what} must be 64 lowercase hex digits, got {value!r}")


def _parse_metadata(raw: memoryview, name: str) -> tuple[bytes, bytes, bytes]:
    blobs, pos = [], 0
    for what in ("exif", "xmp", "icc"):
        if len(raw) - pos < _U32.size:
            raise BundleError(f"ends before the {what} length", section="metadata", bundle=name)
        (length,) = _U32.unpack(raw[pos : pos + _U32.size])
        pos += _U32.size
        if length > len(raw) - pos:
            raise BundleError(f"{what} length {length} exceeds the {len(raw) - pos} bytes left",
                              section="metadata", bundle=name)
        blobs.append(bytes(raw[pos : pos + length]))
        pos += length
    if pos != len(raw):
        raise BundleError(f"{len(raw) - pos} bytes left over", section="metadata", bundle=name)
    return blobs[0], blobs[1], blobs[2]


# ---------------------------------------------------------------------------- stream framing

def _put_varint(out: bytearray, value: int) -> None:
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)


def _unframe_streams(raw: memoryview, section: str, name: str) -> tuple[bytes, ...]:
    """``count, length * count, bytes`` -> streams; lengths checked before any copy."""
    def fail(message: str) -> BundleError:
        return BundleError(message, section=section, bundle=name)

    def varint() -> int:
        nonlocal pos
        value = 0
        for shift in range(0, 42, 7):
            if pos >= len(raw):
                raise fail("stream table ends early")
            byte = raw[pos]
            pos += 1
            value |= (byte & 0x7F) << shift
            if byte < 0x80:
                return value
        raise fail("stream table holds an over-long number")

    pos = 0
    count = varint()
    if count > len(raw) - pos:             # each length takes at least one byte
        raise fail(f"claims {count} streams in {len(raw)} bytes")
    lengths = [varint() for _ in range(count)]
    if sum(lengths) != len(raw) - pos:
        raise fail(f"stream lengths add up to {sum(lengths)}, the section holds {len(raw) - pos}")
    streams = []
    for length in lengths:
        streams.append(bytes(raw[pos : pos + length]))
        pos += length
    return tuple(streams)
