"""Lossless edits of a JPEG's quantized DCT blocks, through libjpeg-turbo's TurboJPEG library.

jpeg-exact keeps a photo's blade as the camera's own DCT blocks and blanks the rest; the
offshore side fills the blank blocks again for tools that want one JPEG. Both are edits of
the quantized coefficients that never go through pixels. TurboJPEG's lossless transform
(``tjTransform``, the engine of ``jpegtran``) reads a JPEG's coefficients, hands each row of
8x8 blocks to a callback that may change them, and writes a new JPEG from them.

Why this library: it ships with every Debian, Ubuntu and JetPack system (``libturbojpeg0``,
x86-64 and ARM64 alike) and its C API has been stable since 2011, so we bind it with ctypes
and need no compiled Python package (the Python wrappers of libjpeg have no ARM64 wheels).

The written JPEG is sequential (progressive sources come out sequential), has no metadata
(APPn and COM segments are dropped) and keeps the source's quantization tables and sampling.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import threading
from collections.abc import Callable

import numpy as np

from edge.errors import CodingError

# From turbojpeg.h (stable since TurboJPEG 1.2).
_TJXOP_NONE = 0
_TJXOPT_NOOUTPUT = 16
_TJXOPT_COPYNONE = 64
_LIBRARY_NAMES = ("turbojpeg", "libturbojpeg.so.0", "libturbojpeg.so", "libturbojpeg.dylib")
INSTALL_HINT = "install libjpeg-turbo's TurboJPEG library (Debian, Ubuntu, JetPack: apt-get install libturbojpeg0)"

# edit(component index, block row index, blocks) changes ``blocks`` ((cols, 8, 8) int16, natural
# order, not zigzag) in place.
BlockEdit = Callable[[int, int, np.ndarray], None]


class _Region(ctypes.Structure):
    _fields_ = [("x", ctypes.c_int), ("y", ctypes.c_int), ("w", ctypes.c_int), ("h", ctypes.c_int)]


class _Transform(ctypes.Structure):
    pass


_FILTER = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), _Region, _Region,
                           ctypes.c_int, ctypes.c_int, ctypes.POINTER(_Transform))
_Transform._fields_ = [("r", _Region), ("op", ctypes.c_int), ("options", ctypes.c_int),
                       ("data", ctypes.c_void_p), ("customFilter", _FILTER)]

_library = None
_searched = False               # a missing library is looked for once, not on every photo
_library_lock = threading.Lock()


def _load():
    global _library, _searched
    with _library_lock:
        if not _searched:
            _searched = True
            for name in _LIBRARY_NAMES:
                path = ctypes.util.find_library(name) if "." not in name else name
                try:
                    library = ctypes.CDLL(path) if path else None
                except OSError:
                    library = None
                if library is not None:
                    break
            else:
                return None
            library.tjInitTransform.restype = ctypes.c_void_p
            library.tjTransform.argtypes = [
                ctypes.c_void_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_int,
                ctypes.POINTER(ctypes.POINTER(ctypes.c_ubyte)), ctypes.POINTER(ctypes.c_ulong),
                ctypes.POINTER(_Transform), ctypes.c_int]
            library.tjTransform.restype = ctypes.c_int
            library.tjFree.argtypes = [ctypes.c_void_p]
            library.tjDestroy.argtypes = [ctypes.c_void_p]
            library.tjGetErrorStr2.argtypes = [ctypes.c_void_p]
            library.tjGetErrorStr2.restype = ctypes.c_char_p
            _library = library
    return _library


def available() -> bool:
    return _load() is not None


def edit_blocks(jpeg: bytes, edit: BlockEdit, write: bool = True) -> bytes:
    """Run ``edit`` over every row of blocks of every component; the JPEG written from the result.

    With ``write=False`` nothing is written (for reading the blocks) and b"" is returned.
    Raises CodingError when the library is missing or cannot read the JPEG.
    """
    library = _load()
    if library is None:
        raise CodingError(f"editing JPEG DCT blocks needs libjpeg-turbo: {INSTALL_HINT}")
    failure: list[BaseException] = []

    def on_row(coefficients, array_region, plane_region, component, _transform_index, _transform):
        try:
            row = array_region.y // 8
            # The last row of MCUs may hold a row of padding blocks below the component.
            if row < plane_region.h // 8:
                blocks = np.ctypeslib.as_array(coefficients, shape=(array_region.w // 8, 8, 8))
                edit(component, row, blocks)
            return 0
        except BaseException as error:          # an exception must not unwind through C
            failure.append(error)
            return -1

    transform = _Transform()
    transform.op = _TJXOP_NONE
    transform.options = _TJXOPT_COPYNONE | (0 if write else _TJXOPT_NOOUTPUT)
    transform.customFilter = _FILTER(on_row)
    handle = library.tjInitTransform()
    if not handle:
        raise CodingError("libjpeg-turbo: cannot create a transform handle")
    out = ctypes.POINTER(ctypes.c_ubyte)()
    out_size = ctypes.c_ulong(0)
    try:
        status = library.tjTransform(handle, jpeg, len(jpeg), 1, ctypes.byref(out), ctypes.byref(out_size),
                                     ctypes.byref(transform), 0)
        if failure:
            raise failure[0]
        if status != 0:
            message = library.tjGetErrorStr2(handle).decode("utf-8", "replace")
            # Warnings (e.g. extraneous bytes before a marker) still give a complete JPEG.
            if not write or not out or out_size.value == 0:
                raise CodingError(f"libjpeg-turbo cannot transform the JPEG: {message}")
        return ctypes.string_at(out, out_size.value) if write else b""
    finally:
        if out:
            library.tjFree(out)
        library.tjDestroy(handle)


def read_blocks(jpeg: bytes) -> list[np.ndarray]:
    """The quantized DCT blocks of each component, (block rows, block cols, 8, 8) int16."""
    rows: dict[int, list[np.ndarray]] = {}

    def keep(component: int, row: int, blocks: np.ndarray) -> None:
        rows.setdefault(component, []).append(blocks.copy())

    edit_blocks(jpeg, keep, write=False)
    return [np.stack(rows[c]) for c in sorted(rows)]
