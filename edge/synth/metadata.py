"""EXIF for synthetic photos: capture time, GPS position, camera and exposure, via Pillow.

The camera fields describe the drone camera whose sensor size the default frame size
matches (a 1-inch 20 MP camera with a 24 mm equivalent lens); ``Software`` and
``ImageDescription`` say the photo is synthetic.
"""
from __future__ import annotations

import io
import struct
import zlib
from dataclasses import dataclass
from datetime import datetime
from fractions import Fraction

import numpy as np
from PIL import ExifTags, Image
from PIL.TiffImagePlugin import IFDRational

CAMERA_MAKE = "DJI"
CAMERA_MODEL = "FC6310S"
SOFTWARE = "edge synth"
DESCRIPTION = "synthetic wind-turbine blade inspection photo"


@dataclass(frozen=True)
class ShotInfo:
    capture_time: datetime
    latitude: float
    longitude: float
    altitude_m: float
    exposure_s: float
    f_number: float
    iso: int


def _rational(value: float, denominator: int = 1) -> IFDRational:
    return IFDRational(int(round(value * denominator)), denominator)


def _degrees(value: float) -> tuple[IFDRational, IFDRational, IFDRational]:
    value = abs(value)
    degrees = int(value)
    minutes = int((value - degrees) * 60)
    seconds = (value - degrees - minutes / 60) * 3600
    return IFDRational(degrees, 1), IFDRational(minutes, 1), _rational(seconds, 10000)


def exif_bytes(shot: ShotInfo, width: int, height: int) -> bytes:
    exif = Image.Exif()
    stamp = shot.capture_time.strftime("%Y:%m:%d %H:%M:%S")
    exif[ExifTags.Base.Make] = CAMERA_MAKE
    exif[ExifTags.Base.Model] = CAMERA_MODEL
    exif[ExifTags.Base.Software] = SOFTWARE
    exif[ExifTags.Base.ImageDescription] = DESCRIPTION
    exif[ExifTags.Base.DateTime] = stamp
    exif[ExifTags.Base.Orientation] = 1
    sub = exif.get_ifd(ExifTags.IFD.Exif)
    sub[ExifTags.Base.DateTimeOriginal] = stamp
    sub[ExifTags.Base.DateTimeDigitized] = stamp
    sub[ExifTags.Base.SubsecTimeOriginal] = f"{shot.capture_time.microsecond // 1000:03d}"
    exposure = Fraction(shot.exposure_s).limit_denominator(100000)
    sub[ExifTags.Base.ExposureTime] = IFDRational(exposure.numerator, exposure.denominator)
    sub[ExifTags.Base.FNumber] = _rational(shot.f_number, 10)
    sub[ExifTags.Base.ISOSpeedRatings] = shot.iso
    sub[ExifTags.Base.FocalLength] = _rational(8.8, 10)
    sub[ExifTags.Base.FocalLengthIn35mmFilm] = 24
    sub[ExifTags.Base.ExifImageWidth] = width
    sub[ExifTags.Base.ExifImageHeight] = height
    gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    gps[ExifTags.GPS.GPSVersionID] = b"\x02\x03\x00\x00"
    gps[ExifTags.GPS.GPSLatitudeRef] = "N" if shot.latitude >= 0 else "S"
    gps[ExifTags.GPS.GPSLatitude] = _degrees(shot.latitude)
    gps[ExifTags.GPS.GPSLongitudeRef] = "E" if shot.longitude >= 0 else "W"
    gps[ExifTags.GPS.GPSLongitude] = _degrees(shot.longitude)
    gps[ExifTags.GPS.GPSAltitudeRef] = b"\x00" if shot.altitude_m >= 0 else b"\x01"
    gps[ExifTags.GPS.GPSAltitude] = _rational(abs(shot.altitude_m), 1000)
    return exif.tobytes()


def encode_jpeg(rgb: np.ndarray, shot: ShotInfo, quality: int) -> bytes:
    """Baseline JPEG with 4:2:0 chroma subsampling and the shot's EXIF."""
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, "JPEG", quality=quality, subsampling=2,
                              exif=exif_bytes(shot, rgb.shape[1], rgb.shape[0]))
    return buffer.getvalue()


def encode_mask(mask: np.ndarray) -> bytes:
    """8-bit greyscale PNG, blade 255 and everything else 0.

    Written directly (PNG signature, IHDR, one IDAT, IEND) with the "Up" row filter: a mask's
    rows mostly repeat the row above, so the filtered data is nearly all zeros and zlib at
    level 1 compresses it fast - about twice as fast as Pillow's encoder at 20 MP.
    """
    values = mask.astype(np.uint8) * np.uint8(255)
    height, width = values.shape
    rows = np.empty((height, width + 1), np.uint8)
    rows[:, 0] = 2  # filter type Up ...
    rows[0, 0] = 0  # ... except the first row (None)
    rows[0, 1:] = values[0]
    np.subtract(values[1:], values[:-1], out=rows[1:, 1:])  # modulo 256, as PNG specifies

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit greyscale, no interlace
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows, 1))
            + chunk(b"IEND", b""))
