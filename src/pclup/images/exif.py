"""EXIF, orientation and dots per inch: read from a file, and fitted to the image written."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import Any

import numpy as np
from PIL import Image as PILImage

from .image import Image

ORIENTATION = 0x0112
EXIF_IFD = 0x8769
GPS_IFD = 0x8825
#: Descriptive (not structural) TIFF IFD0 tags carried between TIFF and the EXIF block of other formats.
TIFF_EXIF_TAGS = (270, 271, 272, 305, 306, 315, 316, 33432)


def read_dpi(info: dict[Any, Any]) -> tuple[float, float] | None:
    """The (x, y) dots per inch in Pillow's ``info`` of a file, or None."""
    dpi = info.get("dpi", ())
    try:
        x, y = (float(v) for v in dpi)
    except (TypeError, ValueError):
        return None
    if not (x > 0 and y > 0):
        return None
    # PNG stores dots per metre: 300 dpi comes back as 299.9994. Snap such values to the integer.
    x, y = (float(round(v)) if abs(v - round(v)) < 0.02 else v for v in (x, y))
    return (x, y)


def read_exif(pil: PILImage.Image, fmt: str) -> tuple[bytes | None, int]:
    """Return (EXIF block with orientation 1 or None, the orientation that was there)."""
    try:
        exif = pil.getexif()
    except Exception:  # noqa: BLE001 - broken EXIF never stops a read
        return None, 1
    orientation = exif.get(ORIENTATION, 1)
    if not isinstance(orientation, int) or not 1 <= orientation <= 8:
        orientation = 1
    if fmt == "TIFF":
        raw: bytes | None = _tiff_exif_block(exif)
    else:
        raw = pil.info.get("exif") or None
        if raw is not None and not raw.startswith(b"Exif\x00\x00"):
            raw = b"Exif\x00\x00" + raw if raw[:4] in (b"II*\x00", b"MM\x00*") else None
    if raw is None:
        return None, orientation
    try:
        return _patch_exif(raw), orientation
    except Exception:  # noqa: BLE001 - fall back to a rewrite by Pillow
        pass
    try:
        ex = PILImage.Exif()
        ex.load(raw)
        if ORIENTATION in ex:
            ex[ORIENTATION] = 1
        return ex.tobytes(), orientation
    except Exception:  # noqa: BLE001 - unreadable EXIF is dropped rather than kept with a wrong orientation
        return None, orientation


def _tiff_exif_block(tags: PILImage.Exif) -> bytes | None:
    ex = PILImage.Exif()
    for tag in TIFF_EXIF_TAGS:
        if tag in tags:
            ex[tag] = tags[tag]
    for tag in (EXIF_IFD, GPS_IFD):
        try:
            sub = tags.get_ifd(tag)
        except Exception:  # noqa: BLE001
            sub = {}
        if sub:
            ex[tag] = dict(sub)
    if not len(ex):
        return None
    if ORIENTATION in tags:
        ex[ORIENTATION] = 1
    return ex.tobytes()


def exif_for_write(image: Image, pixels: np.ndarray) -> bytes | None:
    """The image's EXIF block with PixelX/YDimension set to the size of ``pixels``, or None."""
    if not image.exif:
        return None
    try:
        return _patch_exif(image.exif, size=(pixels.shape[1], pixels.shape[0]))
    except Exception:  # noqa: BLE001 - keep it as read
        return image.exif


def _patch_exif(raw: bytes, size: tuple[int, int] | None = None) -> bytes:
    """Set Orientation to 1 (and PixelX/YDimension to ``size``) in place; all else stays byte-exact."""
    prefix, body = (raw[:6], raw[6:]) if raw.startswith(b"Exif\x00\x00") else (b"", raw)
    buf = bytearray(body)
    if buf[:2] == b"II":
        e = "<"
    elif buf[:2] == b"MM":
        e = ">"
    else:
        raise ValueError("not a TIFF header")

    def entries(offset: int) -> Iterator[tuple[int, int, int, int]]:
        (n,) = struct.unpack_from(e + "H", buf, offset)
        for i in range(n):
            pos = offset + 2 + 12 * i
            tag, typ, count = struct.unpack_from(e + "HHI", buf, pos)
            yield pos, tag, typ, count

    (ifd0,) = struct.unpack_from(e + "I", buf, 4)
    exif_ifd = None
    for pos, tag, typ, count in entries(ifd0):
        if tag == ORIENTATION and count == 1:
            if typ == 3:
                struct.pack_into(e + "H", buf, pos + 8, 1)
            elif typ == 4:
                struct.pack_into(e + "I", buf, pos + 8, 1)
        elif tag == EXIF_IFD and count == 1 and typ in (4, 13):
            (exif_ifd,) = struct.unpack_from(e + "I", buf, pos + 8)
    if size is not None and exif_ifd:
        for pos, tag, typ, count in entries(exif_ifd):
            if tag in (0xA002, 0xA003) and count == 1 and typ in (3, 4):
                value = size[0] if tag == 0xA002 else size[1]
                if typ == 3 and value <= 0xFFFF:
                    struct.pack_into(e + "H", buf, pos + 8, value)
                else:
                    struct.pack_into(e + "HHI", buf, pos + 2, 4, 1, value)
    return prefix + bytes(buf)


def orient(arr: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF orientation to an (H, W[, C]) array, like ``ImageOps.exif_transpose``."""
    t = (1, 0, 2) if arr.ndim == 3 else (1, 0)
    if orientation == 2:
        return arr[:, ::-1]
    if orientation == 3:
        return arr[::-1, ::-1]
    if orientation == 4:
        return arr[::-1]
    if orientation == 5:
        return arr.transpose(t)
    if orientation == 6:
        return np.rot90(arr, k=-1)
    if orientation == 7:
        return arr.transpose(t)[::-1, ::-1]
    if orientation == 8:
        return np.rot90(arr, k=1)
    return arr
