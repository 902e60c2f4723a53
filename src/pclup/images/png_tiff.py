"""pclup's own PNG and TIFF encoders: 16-bit PNG (Pillow writes 8-bit PNG), and every TIFF.

PNG: zlib with the adaptive PNG filters computed in NumPy. TIFF: deflate with horizontal predictor, the
tags serialised by Pillow's public ``TiffImagePlugin.ImageFileDirectory_v2``.
"""

from __future__ import annotations

import struct
import zlib
from typing import IO, Literal

import numpy as np
from PIL import Image as PILImage

from .exif import EXIF_IFD, GPS_IFD, TIFF_EXIF_TAGS

# zlib level of the PNG and TIFF writers here: on 16-bit data (noisy low bytes) level 6 takes about
# three times as long as 4 for files under 1 % smaller.
_ZLIB_LEVEL = 4


def _png_chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)


def _png_filter_rows(rows: np.ndarray, prior: np.ndarray, bpp: int) -> np.ndarray:
    """Filter scanlines (n, rowbytes) uint8 with the best of the five PNG filters per row.

    Heuristic as in libpng: the filter whose output has the smallest sum of absolute values (as
    signed bytes) wins. Returns (n, rowbytes + 1) uint8 with the filter type first.
    """
    r = rows.astype(np.int16)
    up = np.empty_like(r)
    up[0] = prior
    up[1:] = r[:-1]
    left = np.zeros_like(r)
    left[:, bpp:] = r[:, :-bpp]
    upleft = np.zeros_like(r)
    upleft[:, bpp:] = up[:, :-bpp]
    pa = np.abs(up - upleft)  # |p - left| with p = left + up - upleft
    pb = np.abs(left - upleft)  # |p - up|
    pc = np.abs(left + up - 2 * upleft)  # |p - upleft|
    paeth = np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, up, upleft))
    del pa, pb, pc
    candidates = (r, r - left, r - up, r - ((left + up) >> 1), r - paeth)
    scores = np.empty((5, r.shape[0]), dtype=np.int64)
    scores[0] = np.minimum(r, 256 - r).sum(axis=1)
    for k in range(1, 5):
        scores[k] = np.abs(candidates[k]).sum(axis=1)  # differences, close to the signed bytes
    best = scores.argmin(axis=0)
    out = np.empty((r.shape[0], r.shape[1] + 1), dtype=np.uint8)
    out[:, 0] = best
    for k in np.unique(best):
        rows_k = best == k
        out[rows_k, 1:] = candidates[k][rows_k].astype(np.uint8)  # modulo 256
    return out


def write_png(
    fp: IO[bytes],
    pixels: np.ndarray,
    alpha: np.ndarray | None,
    *,
    icc_profile: bytes | None = None,
    exif: bytes | None = None,
    dpi: tuple[float, float] | None = None,
    level: int = _ZLIB_LEVEL,
) -> None:
    """Write an 8- or 16-bit grey / grey+alpha / RGB / RGBA PNG (non-interlaced), zlib at ``level``."""
    arr = pixels if alpha is None else np.concatenate([pixels, alpha[:, :, None]], axis=2)
    h, w, c = arr.shape
    depth = arr.dtype.itemsize * 8
    colour_type = {1: 0, 2: 4, 3: 2, 4: 6}[c]
    fp.write(b"\x89PNG\r\n\x1a\n")
    fp.write(_png_chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, colour_type, 0, 0, 0)))
    if icc_profile:
        fp.write(_png_chunk(b"iCCP", b"ICC Profile\x00\x00" + zlib.compress(icc_profile)))
    if dpi:
        ppm = [max(1, round(v / 0.0254)) for v in dpi]
        fp.write(_png_chunk(b"pHYs", struct.pack(">IIB", ppm[0], ppm[1], 1)))
    if exif:
        fp.write(_png_chunk(b"eXIf", exif[6:] if exif.startswith(b"Exif\x00\x00") else exif))
    data = np.ascontiguousarray(arr.astype(arr.dtype.newbyteorder(">"))).view(np.uint8).reshape(h, -1)
    bpp = c * arr.dtype.itemsize
    rows_per_block = max(1, (1 << 20) // max(1, data.shape[1]))
    compressor = zlib.compressobj(level)
    pending = bytearray()
    prior = np.zeros(data.shape[1], dtype=np.uint8)
    for y in range(0, h, rows_per_block):
        block = data[y : y + rows_per_block]
        pending += compressor.compress(_png_filter_rows(block, prior, bpp).tobytes())
        prior = block[-1]
        if len(pending) >= 1 << 20:
            fp.write(_png_chunk(b"IDAT", bytes(pending)))
            pending.clear()
    pending += compressor.flush()
    fp.write(_png_chunk(b"IDAT", bytes(pending)))
    fp.write(_png_chunk(b"IEND", b""))


def write_tiff(
    fp: IO[bytes],
    pixels: np.ndarray,
    alpha: np.ndarray | None,
    *,
    icc_profile: bytes | None = None,
    exif: bytes | None = None,
    dpi: tuple[float, float] | None = None,
    notes: list[str] | None = None,
    compress: bool = True,
    byteorder: Literal["<", ">"] = "<",
) -> None:
    """Write an 8/16-bit grey, grey+alpha (8-bit), RGB or RGBA TIFF, one IFD, contiguous samples.

    Deflate (Adobe, code 8) with horizontal differencing (predictor 2) unless ``compress`` is
    false; alpha is marked as unassociated (ExtraSamples = 2).
    """
    from PIL import TiffImagePlugin, TiffTags

    arr = pixels if alpha is None else np.concatenate([pixels, alpha[:, :, None]], axis=2)
    h, w, spp = arr.shape
    dtype = arr.dtype.newbyteorder(byteorder)
    bits = arr.dtype.itemsize * 8
    row_bytes = w * spp * arr.dtype.itemsize
    rows_per_strip = max(1, min(h, (256 * 1024) // max(1, row_bytes)))
    strips: list[bytes] = []
    for y in range(0, h, rows_per_strip):
        block = arr[y : y + rows_per_strip]
        if compress:
            diff = block.copy()
            np.subtract(block[:, 1:], block[:, :-1], out=diff[:, 1:])  # wraps modulo 2**bits
            strips.append(zlib.compress(diff.astype(dtype).tobytes(), _ZLIB_LEVEL))
        else:
            strips.append(block.astype(dtype).tobytes())

    def build(with_exif: bool) -> TiffImagePlugin.ImageFileDirectory_v2:
        ifd = TiffImagePlugin.ImageFileDirectory_v2(prefix=b"II" if byteorder == "<" else b"MM")
        if with_exif and exif:
            ex = PILImage.Exif()
            ex.load(exif)
            for tag in TIFF_EXIF_TAGS:
                if tag in ex:
                    ifd[tag] = ex[tag]
            for tag in (EXIF_IFD, GPS_IFD):
                sub = ex.get_ifd(tag)
                if sub:
                    ifd[tag] = dict(sub)
        ifd[256] = w
        ifd[257] = h
        ifd[258] = (bits,) * spp
        ifd[259] = 8 if compress else 1
        ifd[262] = 1 if spp <= 2 else 2  # BlackIsZero / RGB
        ifd[277] = spp
        ifd[278] = rows_per_strip
        ifd[284] = 1
        ifd[273] = tuple(int(v) for v in np.cumsum([0] + [len(s) for s in strips[:-1]]))
        ifd[279] = tuple(len(s) for s in strips)
        ifd.tagtype[273] = TiffTags.LONG
        ifd.tagtype[279] = TiffTags.LONG
        if compress:
            ifd[317] = 2
        if alpha is not None:
            ifd[338] = (2,)
        ifd[339] = (1,) * spp
        if dpi:
            ifd[282] = float(dpi[0])
            ifd[283] = float(dpi[1])
            ifd[296] = 2
        if icc_profile:
            ifd[34675] = icc_profile
        ifd.tobytes(8)  # fails here, before anything is written, if a tag cannot be stored
        return ifd

    try:
        ifd = build(with_exif=True)
    except Exception:  # noqa: BLE001 - an EXIF tag TIFF cannot hold: write without EXIF
        ifd = build(with_exif=False)
        if notes is not None:
            notes.append("the EXIF data could not be stored in TIFF and was left out")
    ifd.save(fp)  # header and IFD; the strip offsets count from its end
    for strip in strips:
        fp.write(strip)
