"""Tests of pclup.images: reading, writing, metadata, failures and the alpha helpers.

Every fixture is a tiny image generated here. 16-bit colour PNG and TIFF fixtures come from the
small independent encoders below (not from the writer under test), so a bug shared by the reader
and the writer cannot hide.
"""

from __future__ import annotations

import dataclasses
import errno
import io
import os
import re
import stat
import struct
import time
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image as PILImage
from PIL import ImageOps, JpegImagePlugin

from pclup import images
from pclup.errors import ImageReadError, ImageWriteError, UsageError
from pclup.images import (
    Image,
    choose_extension,
    from_tensor,
    png_tiff,
    prepare_rgb_for_alpha,
    read_image,
    to_tensor,
    upscale_alpha,
    write_image,
)
from pclup.images import write as image_write

RNG = np.random.default_rng(20240601)
PNG_SIG = b"\x89PNG\r\n\x1a\n"


def _rand(shape: tuple[int, ...], dtype: type = np.uint8) -> np.ndarray:
    return RNG.integers(0, np.iinfo(dtype).max + 1, shape, dtype=dtype)


def _icc() -> bytes:
    from PIL import ImageCms

    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def _exif(orientation: int | None = None, **sub: int) -> bytes:
    ex = PILImage.Exif()
    ex[271] = "pclup-test-camera"  # Make
    if orientation is not None:
        ex[0x0112] = orientation
    exif_ifd: dict[int, object] = {0x9003: "2024:06:01 12:00:00"}  # DateTimeOriginal
    if "width" in sub:
        exif_ifd[0xA002] = sub["width"]
        exif_ifd[0xA003] = sub["height"]
    ex[0x8769] = exif_ifd
    return ex.tobytes()


def _parse_exif(raw: bytes | None) -> PILImage.Exif:
    assert raw is not None
    ex = PILImage.Exif()
    ex.load(raw)
    return ex


# ---- independent encoders / decoders for fixtures ----


def _chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))


def _png_bytes(arr: np.ndarray, *, interlace: bool = False) -> bytes:
    """Minimal PNG encoder (filter 0 only, optional Adam7) for (H, W, C) uint8/uint16."""
    h, w, c = arr.shape
    be = arr.astype(arr.dtype.newbyteorder(">"))

    def scanlines(sub: np.ndarray) -> bytes:
        return b"".join(b"\x00" + sub[y].tobytes() for y in range(sub.shape[0]))

    if interlace:
        adam7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4),
                 (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))  # (x0, y0, dx, dy) of each pass
        subs = [be[y0::dy, x0::dx] for x0, y0, dx, dy in adam7]
        raw = b"".join(scanlines(sub) for sub in subs if sub.size)
    else:
        raw = scanlines(be)
    colour_type = {1: 0, 2: 4, 3: 2, 4: 6}[c]
    ihdr = struct.pack(">IIBBBBB", w, h, arr.dtype.itemsize * 8, colour_type, 0, 0, int(interlace))
    return PNG_SIG + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(raw)) + _chunk(b"IEND", b"")


def _decode_png_py(data: bytes) -> tuple[np.ndarray, set[int]]:
    """Minimal pure-Python PNG decoder (non-interlaced); returns (H, W, C) array and filters seen."""
    assert data[:8] == PNG_SIG
    pos, idat, ihdr = 8, b"", b""
    while pos < len(data):
        (n,) = struct.unpack(">I", data[pos : pos + 4])
        tag, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + n]
        assert struct.unpack(">I", data[pos + 8 + n : pos + 12 + n])[0] == zlib.crc32(tag + body)
        if tag == b"IHDR":
            ihdr = body
        elif tag == b"IDAT":
            idat += body
        pos += 12 + n
    w, h, depth, ct, _, _, interlace = struct.unpack(">IIBBBBB", ihdr)
    assert interlace == 0
    c = {0: 1, 2: 3, 4: 2, 6: 4}[ct]
    bpp = c * depth // 8
    stride = w * bpp
    raw = zlib.decompress(idat)
    prev = [0] * stride
    rows, filters = [], set()
    for y in range(h):
        f = raw[y * (stride + 1)]
        filters.add(f)
        line = list(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
        for x in range(stride):
            a = line[x - bpp] if x >= bpp else 0
            b = prev[x]
            cc = prev[x - bpp] if x >= bpp else 0
            if f == 1:
                pred = a
            elif f == 2:
                pred = b
            elif f == 3:
                pred = (a + b) // 2
            elif f == 4:
                p = a + b - cc
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - cc)
                pred = a if pa <= pb and pa <= pc else (b if pb <= pc else cc)
            else:
                pred = 0
            line[x] = (line[x] + pred) & 0xFF
        rows.append(line)
        prev = line
    arr = np.array(rows, dtype=np.uint8)
    if depth == 16:
        arr = arr.view(">u2").astype(np.uint16)
    return arr.reshape(h, w, c), filters


def _tiff_bytes(arr: np.ndarray, byteorder: str = "<", alpha: bool = False, extra_sample: int = 2) -> bytes:
    """Minimal uncompressed single-strip TIFF encoder for (H, W, C) uint8/uint16.

    ``extra_sample``: 2 = unassociated alpha, 1 = premultiplied alpha.
    """
    h, w, c = arr.shape
    e = byteorder
    bits = arr.dtype.itemsize * 8
    data = arr.astype(arr.dtype.newbyteorder(e)).tobytes()
    n_entries = 9 + int(alpha)
    bits_offset = 8 + 2 + 12 * n_entries + 4
    data_offset = bits_offset + 2 * c

    def short(v: int) -> bytes:
        return struct.pack(e + "HH", v, 0)

    def long(v: int) -> bytes:
        return struct.pack(e + "I", v)

    entries = [
        (256, 4, 1, long(w)),
        (257, 4, 1, long(h)),
        (258, 3, c, long(bits_offset) if c > 2 else struct.pack(e + "HH", bits, bits if c == 2 else 0)),
        (259, 3, 1, short(1)),
        (262, 3, 1, short(2 if c >= 3 else 1)),
        (273, 4, 1, long(data_offset)),
        (277, 3, 1, short(c)),
        (278, 4, 1, long(h)),
        (279, 4, 1, long(len(data))),
    ]
    if alpha:
        entries.append((338, 3, 1, short(extra_sample)))
    out = (b"II*\x00" if e == "<" else b"MM\x00*") + struct.pack(e + "I", 8)
    out += struct.pack(e + "H", len(entries))
    for tag, typ, count, value in entries:
        out += struct.pack(e + "HHI", tag, typ, count) + value
    out += struct.pack(e + "I", 0)
    out += struct.pack(e + "H" * c, *([bits] * c))
    assert len(out) == data_offset
    return out + data


def _both(img: Image) -> np.ndarray:
    """Pixels with alpha appended, (H, W, C[+1])."""
    if img.alpha is None:
        return img.pixels
    return np.concatenate([img.pixels, img.alpha[:, :, None]], axis=2)


# --------------------------------------------------------------------------------------------------
# Reading every mode and bit depth


def _fixture(kind: str, path: Path) -> np.ndarray:
    """Write fixture ``kind`` to ``path`` with an encoder other than ours; return expected (H, W, C[+A])."""
    if kind == "L.png":
        a = _rand((6, 7))
        PILImage.fromarray(a).save(path)
        return a[:, :, None]
    if kind == "LA.png":
        a = _rand((6, 7, 2))
        PILImage.fromarray(a).save(path)
        return a
    if kind in ("RGB.png", "RGB.tif", "RGB.bmp", "RGB.webp"):
        a = _rand((6, 7, 3))
        kwargs = {"lossless": True} if kind.endswith("webp") else {}
        PILImage.fromarray(a).save(path, **kwargs)
        return a
    if kind in ("RGBA.png", "RGBA.tif", "RGBA.webp"):
        a = _rand((6, 7, 4))
        a[0, 0, 3] = 0
        kwargs = {"lossless": True, "exact": True} if kind.endswith("webp") else {}
        PILImage.fromarray(a).save(path, **kwargs)
        return a
    if kind == "L.tif-lzw":
        a = _rand((6, 7))
        PILImage.fromarray(a).save(path, format="TIFF", compression="tiff_lzw")
        return a[:, :, None]
    if kind == "L.bmp":
        a = _rand((6, 7))
        PILImage.fromarray(a).save(path)
        return a[:, :, None]
    if kind in ("I16.png", "I16.tif"):
        a = _rand((6, 7), np.uint16)
        PILImage.fromarray(a).save(path, format="PNG" if kind.endswith("png") else "TIFF")
        return a[:, :, None]
    if kind.startswith("png16-"):
        c = {"png16-LA": 2, "png16-RGB": 3, "png16-RGBA": 4, "png16-RGB-interlaced": 3}[kind]
        a = _rand((11, 13, c), np.uint16)
        path.write_bytes(_png_bytes(a, interlace="interlaced" in kind))
        return a
    if kind.startswith("tif16-"):
        _, layout, order = kind.split("-")
        c = 4 if layout == "RGBA" else 3
        a = _rand((5, 9, c), np.uint16)
        path.write_bytes(_tiff_bytes(a, "<" if order == "II" else ">", alpha=c == 4))
        return a
    raise AssertionError(kind)


READ_CASES = {
    # kind: (suffix, format, mode, dtype)
    "L.png": (".png", "PNG", "L", np.uint8),
    "LA.png": (".png", "PNG", "LA", np.uint8),
    "RGB.png": (".png", "PNG", "RGB", np.uint8),
    "RGBA.png": (".png", "PNG", "RGBA", np.uint8),
    "I16.png": (".png", "PNG", "I;16", np.uint16),
    "png16-LA": (".png", "PNG", "LA;16", np.uint16),
    "png16-RGB": (".png", "PNG", "RGB;16", np.uint16),
    "png16-RGBA": (".png", "PNG", "RGBA;16", np.uint16),
    "png16-RGB-interlaced": (".png", "PNG", "RGB;16", np.uint16),
    "RGB.tif": (".tif", "TIFF", "RGB", np.uint8),
    "RGBA.tif": (".tif", "TIFF", "RGBA", np.uint8),
    "L.tif-lzw": (".tif", "TIFF", "L", np.uint8),
    "I16.tif": (".tif", "TIFF", "I;16", np.uint16),
    "tif16-RGB-II": (".tif", "TIFF", "RGB;16", np.uint16),
    "tif16-RGB-MM": (".tif", "TIFF", "RGB;16", np.uint16),
    "tif16-RGBA-II": (".tif", "TIFF", "RGBA;16", np.uint16),
    "RGB.webp": (".webp", "WEBP", "RGB", np.uint8),
    "RGBA.webp": (".webp", "WEBP", "RGBA", np.uint8),
    "RGB.bmp": (".bmp", "BMP", "RGB", np.uint8),
    "L.bmp": (".bmp", "BMP", "L", np.uint8),
}


@pytest.mark.parametrize("kind", list(READ_CASES))
def test_read_every_mode_and_depth_exactly(tmp_path: Path, kind: str) -> None:
    suffix, fmt, mode, dtype = READ_CASES[kind]
    path = tmp_path / f"in{suffix}"
    expected = _fixture(kind, path)
    img = read_image(path)
    assert (img.format, img.mode, img.pixels.dtype) == (fmt, mode, dtype)
    assert img.bit_depth == (16 if dtype == np.uint16 else 8)
    assert img.pixels.shape[2] == (1 if expected.shape[2] in (1, 2) else 3)  # grey stays grey
    assert (img.alpha is not None) == (expected.shape[2] in (2, 4))
    np.testing.assert_array_equal(_both(img), expected)
    assert img.source == path
    assert img.pixels.flags.writeable and img.pixels.flags.c_contiguous


def test_read_premultiplied_16bit_tiff_gives_straight_colour(tmp_path: Path) -> None:
    rgb = _rand((4, 5, 3), np.uint16)
    alpha = RNG.integers(20000, 65536, (4, 5), dtype=np.uint16)
    alpha[0, 0] = 0
    premultiplied = np.rint(rgb * (alpha[:, :, None] / 65535.0)).astype(np.uint16)
    data = np.concatenate([premultiplied, alpha[:, :, None]], axis=2)
    (tmp_path / "p.tif").write_bytes(_tiff_bytes(data, alpha=True, extra_sample=1))
    img = read_image(tmp_path / "p.tif")
    np.testing.assert_array_equal(img.alpha, alpha)
    visible = alpha > 0
    assert np.abs(img.pixels[visible].astype(int) - rgb[visible]).max() <= 4


def test_read_palette_with_transparency_gives_rgba(tmp_path: Path) -> None:
    pal = PILImage.new("P", (4, 3))
    pal.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255] + [0] * 759)
    pal.putdata([0, 1, 2, 0, 1, 1, 1, 1, 2, 2, 0, 0])
    pal.save(tmp_path / "p.png", transparency=1)
    img = read_image(tmp_path / "p.png")
    assert img.mode == "P" and img.pixels.shape == (3, 4, 3) and img.pixels.dtype == np.uint8
    np.testing.assert_array_equal(img.alpha, [[255, 0, 255, 255], [0, 0, 0, 0], [255, 255, 255, 255]])
    np.testing.assert_array_equal(img.pixels[0, 0], [255, 0, 0])
    np.testing.assert_array_equal(img.pixels[2, 0], [0, 0, 255])


def test_read_palette_without_transparency_gives_rgb(tmp_path: Path) -> None:
    PILImage.fromarray(_rand((5, 6, 3))).quantize(8).save(tmp_path / "p.png")
    img = read_image(tmp_path / "p.png")
    assert img.mode == "P" and img.alpha is None and img.pixels.shape == (5, 6, 3)


def test_read_colour_key_becomes_alpha(tmp_path: Path) -> None:
    a = np.full((2, 3, 3), 7, np.uint8)
    a[0, 0] = (10, 20, 30)
    PILImage.fromarray(a).save(tmp_path / "k.png", transparency=(10, 20, 30))
    img = read_image(tmp_path / "k.png")
    np.testing.assert_array_equal(img.alpha, [[0, 255, 255], [255, 255, 255]])


def test_read_cmyk_jpeg_gives_rgb(tmp_path: Path) -> None:
    cmyk = np.zeros((8, 16, 4), np.uint8)
    cmyk[:, :8] = (255, 0, 0, 0)  # cyan ink -> (0, 255, 255)
    cmyk[:, 8:] = (0, 0, 0, 255)  # black ink -> (0, 0, 0)
    PILImage.fromarray(cmyk, mode="CMYK").save(tmp_path / "c.jpg", quality=95)
    img = read_image(tmp_path / "c.jpg")
    assert (img.format, img.mode, img.pixels.shape) == ("JPEG", "CMYK", (8, 16, 3))
    assert np.abs(img.pixels[2:6, 2:6].astype(int) - [0, 255, 255]).max() <= 6
    assert np.abs(img.pixels[2:6, 10:14].astype(int) - [0, 0, 0]).max() <= 6
    assert img.icc_profile is None


def test_read_cmyk_with_a_profile_that_does_not_fit_falls_back(tmp_path: Path) -> None:
    # An sRGB profile on CMYK data cannot drive the conversion: the formula is used instead.
    PILImage.new("CMYK", (4, 4), (0, 255, 0, 0)).save(tmp_path / "c.jpg", icc_profile=_icc())
    img = read_image(tmp_path / "c.jpg")
    assert np.abs(img.pixels.astype(int) - [255, 0, 255]).max() <= 6
    assert img.icc_profile is None


def test_read_jpeg_grey_and_rgb(tmp_path: Path) -> None:
    grey = np.tile(np.arange(0, 256, 16, dtype=np.uint8), (16, 1))
    PILImage.fromarray(grey).save(tmp_path / "g.jpg", quality=98)
    img = read_image(tmp_path / "g.jpg")
    assert (img.format, img.mode, img.pixels.shape) == ("JPEG", "L", (16, 16, 1))
    assert np.abs(img.pixels[:, :, 0].astype(int) - grey).max() <= 8


@pytest.mark.parametrize("rgb", [False, True])
def test_dark_16bit_png_stays_16bit(tmp_path: Path, rgb: bool) -> None:
    a = RNG.integers(0, 200, (4, 5, 3 if rgb else 1), dtype=np.uint16)  # every value < 256
    path = tmp_path / "dark.png"
    if rgb:
        path.write_bytes(_png_bytes(a))
    else:
        PILImage.fromarray(a[:, :, 0]).save(path)
    img = read_image(path)
    assert img.pixels.dtype == np.uint16 and img.bit_depth == 16
    np.testing.assert_array_equal(img.pixels, a)
    write_image(img, tmp_path / "out.png")
    assert (tmp_path / "out.png").read_bytes()[24] == 16  # IHDR bit depth
    again = read_image(tmp_path / "out.png")
    assert again.bit_depth == 16
    np.testing.assert_array_equal(again.pixels, a)


# --------------------------------------------------------------------------------------------------
# Writing and reading back

ROUND_TRIP_LOSSLESS = [
    (ext, dtype, c, alpha)
    for ext in ("png", "tif")
    for dtype in (np.uint8, np.uint16)
    for c in (1, 3)
    for alpha in (False, True)
] + [("bmp", np.uint8, c, False) for c in (1, 3)] + [("webp", np.uint8, 3, a) for a in (False, True)]


@pytest.mark.parametrize(("ext", "dtype", "channels", "alpha"), ROUND_TRIP_LOSSLESS)
def test_round_trip_lossless(tmp_path: Path, ext: str, dtype: type, channels: int, alpha: bool) -> None:
    pixels = _rand((9, 14, channels), dtype)
    pixels[0, 0] = 0
    pixels[0, 1] = np.iinfo(dtype).max
    a = _rand((9, 14), dtype) if alpha else None
    src = Image(pixels, a, dpi=(300.0, 300.0))
    notes = write_image(src, tmp_path / f"out.{ext}", quality=100)
    back = read_image(tmp_path / f"out.{ext}")
    assert back.pixels.dtype == dtype and back.bit_depth == src.bit_depth
    if ext == "tif" and dtype == np.uint16 and channels == 1 and alpha:
        assert notes and back.pixels.shape[2] == 3  # stored as 16-bit RGBA
        np.testing.assert_array_equal(back.pixels, np.repeat(pixels, 3, axis=2))
    else:
        assert notes == []
        np.testing.assert_array_equal(back.pixels, pixels)
    if alpha:
        np.testing.assert_array_equal(back.alpha, a)
    else:
        assert back.alpha is None
    if ext != "webp":
        assert back.dpi == (300.0, 300.0)


@pytest.mark.parametrize("channels", [1, 3])
def test_round_trip_jpeg(tmp_path: Path, channels: int) -> None:
    grad = np.linspace(0, 255, 24)
    pixels = np.stack([np.add.outer(grad, grad[::-1]) / 2] * channels, axis=2).astype(np.uint8)
    write_image(Image(pixels), tmp_path / "o.jpg")
    back = read_image(tmp_path / "o.jpg")
    assert back.format == "JPEG" and back.pixels.shape == pixels.shape
    assert np.abs(back.pixels.astype(int) - pixels).max() <= 4


def test_round_trip_webp_lossy_keeps_alpha(tmp_path: Path) -> None:
    pixels = np.full((16, 16, 3), (30, 140, 220), np.uint8)
    alpha = np.zeros((16, 16), np.uint8)
    alpha[4:12, 4:12] = 255
    assert write_image(Image(pixels, alpha), tmp_path / "o.webp", quality=90) == []
    back = read_image(tmp_path / "o.webp")
    assert back.alpha is not None and np.abs(back.alpha.astype(int) - alpha).max() <= 8
    assert np.abs(back.pixels[6:10, 6:10].astype(int) - (30, 140, 220)).max() <= 8


def test_png16_writer_matches_an_independent_decoder(tmp_path: Path) -> None:
    for c in (1, 2, 3, 4):
        smooth = np.linspace(0, 65535, 40)[None, :, None] * np.linspace(0.2, 1, 12)[:, None, None]
        a = (smooth + RNG.integers(0, 300, (12, 40, c))).clip(0, 65535).astype(np.uint16)
        a[6:] = _rand((6, 40, c), np.uint16)
        buf = io.BytesIO()
        png_tiff.write_png(buf, a[:, :, : 1 if c < 3 else 3], None if c in (1, 3) else a[:, :, -1])
        decoded, filters = _decode_png_py(buf.getvalue())
        np.testing.assert_array_equal(decoded, a)
        assert len(filters) > 1  # the adaptive filter choice is exercised


def test_16bit_to_8bit_rounds_correctly(tmp_path: Path) -> None:
    values = np.array([0, 1, 128, 129, 257, 32767, 32768, 32896, 65406, 65534, 65535], np.uint16)
    values = np.concatenate([values, RNG.integers(0, 65536, 53).astype(np.uint16)])
    pixels = values.reshape(8, 8, 1)
    notes = write_image(Image(pixels), tmp_path / "o.bmp")
    assert any("8 bits" in n for n in notes)
    back = read_image(tmp_path / "o.bmp")
    expected = np.rint(pixels.astype(np.float64) * 255 / 65535).astype(np.uint8)
    np.testing.assert_array_equal(back.pixels, expected)


def test_jpeg_with_alpha_is_flattened_on_white(tmp_path: Path) -> None:
    pixels = np.full((16, 16, 3), (0, 0, 255), np.uint8)
    alpha = np.zeros((16, 16), np.uint8)
    alpha[:, :8] = 255
    notes = write_image(Image(pixels, alpha), tmp_path / "o.jpg")
    assert any("flattened onto white" in n for n in notes)
    back = read_image(tmp_path / "o.jpg")
    assert back.alpha is None
    assert np.abs(back.pixels[4:12, 1:5].astype(int) - (0, 0, 255)).max() <= 8
    assert np.abs(back.pixels[4:12, 11:15].astype(int) - 255).max() <= 8


def test_jpeg_is_written_at_quality_95_with_444(tmp_path: Path) -> None:
    pixels = _rand((16, 16, 3))
    write_image(Image(pixels), tmp_path / "o.jpg")
    ref = io.BytesIO()
    PILImage.fromarray(pixels).save(ref, format="JPEG", quality=95, subsampling=0)
    with PILImage.open(tmp_path / "o.jpg") as out, PILImage.open(ref) as want:
        assert JpegImagePlugin.get_sampling(out) == 0
        assert out.quantization == want.quantization


def test_format_argument_overrides_extension(tmp_path: Path) -> None:
    write_image(Image(_rand((4, 4, 3))), tmp_path / "o.data", format="PNG")
    assert (tmp_path / "o.data").read_bytes().startswith(PNG_SIG)


# --------------------------------------------------------------------------------------------------
# Metadata


@pytest.mark.parametrize("orientation", [6, 8])
def test_exif_rotated_jpeg_comes_out_upright(tmp_path: Path, orientation: int) -> None:
    pixels = np.zeros((24, 40, 3), np.uint8)
    pixels[:8, :8] = 255  # a white top-left corner to follow
    PILImage.fromarray(pixels).save(tmp_path / "r.jpg", quality=95, exif=_exif(orientation))
    img = read_image(tmp_path / "r.jpg")
    with PILImage.open(tmp_path / "r.jpg") as pil:
        upright = np.asarray(ImageOps.exif_transpose(pil))
    assert img.pixels.shape == (40, 24, 3)
    np.testing.assert_array_equal(img.pixels, upright)
    assert _parse_exif(img.exif)[0x0112] == 1
    write_image(img, tmp_path / "o.jpg")
    with PILImage.open(tmp_path / "o.jpg") as out:
        assert out.size == (24, 40)
        ex = out.getexif()
        assert ex[0x0112] == 1
        assert ex[271] == "pclup-test-camera"
        assert ex.get_ifd(0x8769)[0x9003] == "2024:06:01 12:00:00"


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_orientation_matches_exif_transpose(tmp_path: Path, orientation: int) -> None:
    rgba = _rand((5, 7, 4))
    PILImage.fromarray(rgba).save(tmp_path / "o.png", exif=_exif(orientation), dpi=(100, 200))
    img = read_image(tmp_path / "o.png")
    with PILImage.open(tmp_path / "o.png") as pil:
        expected = np.asarray(ImageOps.exif_transpose(pil))
    np.testing.assert_array_equal(_both(img), expected)
    assert _parse_exif(img.exif)[0x0112] == 1
    assert img.dpi == ((200.0, 100.0) if orientation >= 5 else (100.0, 200.0))


@pytest.mark.parametrize(
    ("ext", "dtype", "alpha"),
    [("png", np.uint8, False), ("png", np.uint16, True), ("jpg", np.uint8, False), ("webp", np.uint8, True),
     ("tif", np.uint8, True), ("tif", np.uint16, False)],
)
def test_icc_and_exif_survive_a_write(tmp_path: Path, ext: str, dtype: type, alpha: bool) -> None:
    icc = _icc()
    pixels = _rand((6, 8, 3), dtype)
    src = Image(pixels, _rand((6, 8), dtype) if alpha else None, icc_profile=icc,
                exif=_exif(1, width=3, height=2))
    assert write_image(src, tmp_path / f"o.{ext}") == []
    back = read_image(tmp_path / f"o.{ext}")
    assert back.icc_profile == icc
    ex = _parse_exif(back.exif)
    assert ex[271] == "pclup-test-camera"
    sub = ex.get_ifd(0x8769)
    assert sub[0x9003] == "2024:06:01 12:00:00"
    assert (sub[0xA002], sub[0xA003]) == (8, 6)  # pixel dimensions updated to the written size
    assert ex.get(0x0112, 1) == 1


def test_bmp_reports_the_metadata_it_cannot_keep(tmp_path: Path) -> None:
    notes = write_image(Image(_rand((4, 4, 3)), icc_profile=_icc(), exif=_exif(1)), tmp_path / "o.bmp")
    assert any("ICC" in n for n in notes) and any("EXIF" in n for n in notes)


# --------------------------------------------------------------------------------------------------
# Alpha helpers


def _bicubic_2x(rgb: np.ndarray) -> np.ndarray:
    t = F.interpolate(to_tensor(rgb), scale_factor=2, mode="bicubic", align_corners=False)
    return from_tensor(t, rgb.dtype)


def test_hard_alpha_edge_has_no_dark_halo() -> None:
    h = w = 32
    yy, xx = np.mgrid[:h, :w]
    disc = (yy - 15.3) ** 2 + (xx - 14.7) ** 2 < 9.5**2
    colour = np.array([200, 120, 40])
    rgb = np.zeros((h, w, 3), np.uint8)  # black under the transparent pixels
    rgb[disc] = colour
    alpha = np.where(disc, 255, 0).astype(np.uint8)

    alpha2 = upscale_alpha(alpha, 2 * h, 2 * w)
    visible = alpha2 > 0
    assert visible.sum() > disc.sum() * 4  # the soft edge is there

    naive = _bicubic_2x(rgb).astype(int)
    assert np.abs(naive[visible] - colour).max() > 50  # what users see without the fill

    prepared = prepare_rgb_for_alpha(rgb, alpha)
    np.testing.assert_array_equal(prepared[disc], rgb[disc])
    out = _bicubic_2x(prepared).astype(int)
    assert np.abs(out[visible] - colour).max() <= 2


def test_fill_comes_from_the_nearest_colours_and_keeps_visible_pixels() -> None:
    rgb = np.zeros((16, 32, 3), np.uint16)
    alpha = np.zeros((16, 32), np.uint16)
    rgb[:, :4] = (65535, 0, 0)
    rgb[:, -4:] = (0, 0, 65535)
    alpha[:, :4] = 65535
    alpha[:, -4:] = 1000  # faint, still visible: must keep its colour
    out = prepare_rgb_for_alpha(rgb, alpha)
    assert out.dtype == np.uint16
    np.testing.assert_array_equal(out[:, :4], rgb[:, :4])
    np.testing.assert_array_equal(out[:, -4:], rgb[:, -4:])
    near_red, near_blue = out[8, 5].astype(int), out[8, 26].astype(int)
    assert near_red[0] > near_red[2]
    assert near_blue[2] > near_blue[0]


def test_fill_of_fully_opaque_or_fully_transparent_images_changes_nothing() -> None:
    rgb = _rand((5, 5, 3))
    for value in (0, 255):
        out = prepare_rgb_for_alpha(rgb, np.full((5, 5), value, np.uint8))
        np.testing.assert_array_equal(out, rgb)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_upscale_alpha_shape_dtype_and_range(dtype: type) -> None:
    top = np.iinfo(dtype).max
    a = np.zeros((8, 10), dtype)
    a[:, 5:] = top
    up = upscale_alpha(a, 24, 30)
    assert up.shape == (24, 30) and up.dtype == dtype
    assert up.min() == 0 and up.max() == top  # overshoot clamped
    flat = upscale_alpha(np.full((3, 4), top, dtype), 7, 9)
    assert (flat == top).all()


# --------------------------------------------------------------------------------------------------
# Tensors


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_tensor_round_trip_is_exact(dtype: type) -> None:
    top = np.iinfo(dtype).max
    pixels = np.concatenate([_rand((6, 7, 3), dtype).ravel(), [0, top]]).astype(dtype)[: 6 * 7 * 3]
    pixels = pixels.reshape(6, 7, 3)
    t = to_tensor(pixels)
    assert t.shape == (1, 3, 6, 7) and t.dtype == torch.float32
    assert 0.0 <= float(t.min()) and float(t.max()) <= 1.0
    np.testing.assert_array_equal(from_tensor(t, dtype), pixels)


def test_every_16bit_value_survives_the_tensor_round_trip() -> None:
    pixels = np.arange(65536, dtype=np.uint16).reshape(256, 256, 1)
    t = to_tensor(pixels)
    assert t.shape == (1, 3, 256, 256)  # grey expanded for the model
    back = from_tensor(t, np.uint16, channels=1)
    assert back.shape == (256, 256, 1)
    np.testing.assert_array_equal(back, pixels)


def test_from_tensor_clamps_rounds_and_handles_nan() -> None:
    t = torch.tensor([[[[-0.5, 0.0, 0.5 / 255 + 1e-4, 1.4 / 255, 2.0, float("nan")]]]])
    np.testing.assert_array_equal(from_tensor(t, np.uint8)[0, :, 0], [0, 0, 1, 1, 255, 0])
    assert to_tensor(np.zeros((2, 2, 1), np.uint8), expand_gray=False).shape == (1, 1, 2, 2)


# --------------------------------------------------------------------------------------------------
# Output extension


def _img(fmt: str, *, alpha: bool = False, dtype: type = np.uint8) -> Image:
    return Image(np.zeros((2, 2, 3), dtype), np.zeros((2, 2), dtype) if alpha else None, format=fmt)


@pytest.mark.parametrize(
    ("image", "ext", "want"),
    [
        (_img("JPEG"), "auto", "jpg"),
        (_img("PNG"), "auto", "png"),
        (_img("WEBP"), "auto", "webp"),
        (_img("TIFF"), "auto", "tif"),
        (_img("BMP"), "auto", "bmp"),
        (_img("JPEG", alpha=True), "auto", "png"),
        (_img("BMP", alpha=True), "auto", "png"),
        (_img("WEBP", alpha=True), "auto", "webp"),
        (_img("TIFF", alpha=True, dtype=np.uint16), "auto", "tif"),
        (_img("WEBP", dtype=np.uint16), "auto", "png"),
        (_img("PNG"), "JPEG", "jpg"),
        (_img("PNG"), ".jpg", "jpg"),
        (_img("PNG", alpha=True), "jpg", "jpg"),
        (_img("PNG"), "tiff", "tif"),
        (_img("PNG"), "webp", "webp"),
    ],
)
def test_choose_extension(image: Image, ext: str, want: str) -> None:
    assert choose_extension(image, ext) == want


def test_choose_extension_size_and_errors() -> None:
    assert choose_extension(_img("WEBP"), "auto", size=(20000, 100)) == "png"
    assert choose_extension(_img("WEBP"), "auto", size=(16000, 100)) == "webp"
    with pytest.raises(UsageError, match="gif"):
        choose_extension(_img("PNG"), "gif")


def test_choose_extension_from_the_format_alone() -> None:
    """Before decoding, ``auto`` keeps a format only where every file of it fits (a BMP may hold alpha)."""
    formats = ("PNG", "JPEG", "WEBP", "TIFF", "BMP", "GIF", None)
    want = ["png", "jpg", "webp", "tif", "png", "png", "png"]
    assert [choose_extension(f, "auto") for f in formats] == want
    assert choose_extension("WEBP", "auto", size=(16384, 10)) == "png"
    assert choose_extension("JPEG", "auto", size=(10, 65535)) == "jpg"
    assert choose_extension("JPEG", "auto", size=(10, 65536)) == "png"
    assert choose_extension(None, ".TIFF") == "tif"


# --------------------------------------------------------------------------------------------------
# Bad input


def _assert_one_line(exc: pytest.ExceptionInfo[BaseException], path: Path, cause: str) -> None:
    msg = str(exc.value)
    assert "\n" not in msg
    assert str(path) in msg
    assert cause in msg.lower()


def _bomb_png() -> bytes:
    ihdr = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0)
    idat = _chunk(b"IDAT", zlib.compress(b"\x00" * 64))
    return PNG_SIG + _chunk(b"IHDR", ihdr) + idat + _chunk(b"IEND", b"")


def _truncated_png() -> bytes:
    buf = io.BytesIO()
    PILImage.fromarray(_rand((64, 64, 3))).save(buf, format="PNG")
    data = buf.getvalue()
    return data[: len(data) // 2]


@pytest.mark.parametrize(
    ("name", "content", "cause"),
    [
        ("empty.png", b"", "empty file"),
        ("cut.png", None, "truncated"),
        ("cut-header.png", PNG_SIG + b"\x00\x00\x00\x0dIHD", "truncated"),
        ("notes.png", b"this is a text file, not a picture\n", "not an image"),
        ("bomb.png", None, "too large"),
    ],
)
def test_bad_input_gives_one_line_read_error(
    tmp_path: Path, name: str, content: bytes | None, cause: str
) -> None:
    if content is None:
        content = _bomb_png() if name == "bomb.png" else _truncated_png()
    path = tmp_path / name
    path.write_bytes(content)
    start = time.perf_counter()
    with pytest.raises(ImageReadError) as exc:
        read_image(path)
    assert time.perf_counter() - start < 2.0  # no giant allocation
    _assert_one_line(exc, path, cause)


def test_pixel_limit_is_configurable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    PILImage.fromarray(_rand((20, 20, 3))).save(tmp_path / "a.png")
    monkeypatch.setattr(images, "MAX_IMAGE_PIXELS", 399)
    with pytest.raises(ImageReadError) as exc:
        read_image(tmp_path / "a.png")
    _assert_one_line(exc, tmp_path / "a.png", "too large (20x20")
    monkeypatch.setattr(images, "MAX_IMAGE_PIXELS", 400)
    assert read_image(tmp_path / "a.png").pixels.shape == (20, 20, 3)


def test_pillow_bomb_warning_does_not_leak(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    PILImage.fromarray(_rand((20, 20, 3))).save(tmp_path / "a.png")
    monkeypatch.setattr(PILImage, "MAX_IMAGE_PIXELS", 300)  # 400 pixels: Pillow warns, no error
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert read_image(tmp_path / "a.png").pixels.shape == (20, 20, 3)
    monkeypatch.setattr(PILImage, "MAX_IMAGE_PIXELS", 100)  # over twice Pillow's limit
    with pytest.raises(ImageReadError) as exc:
        read_image(tmp_path / "a.png")
    _assert_one_line(exc, tmp_path / "a.png", "decompression bomb")


def test_missing_file_and_folder(tmp_path: Path) -> None:
    with pytest.raises(ImageReadError) as exc:
        read_image(tmp_path / "nope.png")
    _assert_one_line(exc, tmp_path / "nope.png", "no such file")
    with pytest.raises(ImageReadError) as exc:
        read_image(tmp_path)
    _assert_one_line(exc, tmp_path, "folder")


def test_unsupported_format_is_refused(tmp_path: Path) -> None:
    PILImage.new("RGB", (3, 3)).save(tmp_path / "a.tga")  # Pillow reads TGA; pclup does not
    with pytest.raises(ImageReadError) as exc:
        read_image(tmp_path / "a.tga")
    _assert_one_line(exc, tmp_path / "a.tga", "not a supported format")


# --------------------------------------------------------------------------------------------------
# Failed and atomic writes


def _names(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()}


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root can write anywhere")
def test_unwritable_folder(tmp_path: Path) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        with pytest.raises(ImageWriteError) as exc:
            write_image(Image(_rand((4, 4, 3))), folder / "o.png")
        _assert_one_line(exc, folder / "o.png", "permission denied")
        assert _names(folder) == set()
    finally:
        folder.chmod(0o700)


def test_permission_denied_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def deny(*args: object, **kwargs: object) -> tuple[int, str]:
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(os, "open", deny)
    with pytest.raises(ImageWriteError) as exc:
        write_image(Image(_rand((4, 4, 3))), tmp_path / "o.png")
    _assert_one_line(exc, tmp_path / "o.png", "permission denied")
    assert _names(tmp_path) == set()


def test_missing_output_folder(tmp_path: Path) -> None:
    with pytest.raises(ImageWriteError) as exc:
        write_image(Image(_rand((4, 4, 3))), tmp_path / "no" / "o.png")
    _assert_one_line(exc, tmp_path / "no" / "o.png", "does not exist")


@pytest.mark.parametrize("ext", ["png", "jpg", "webp", "bmp"])
def test_encoder_failure_halfway_leaves_no_output_and_no_temp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ext: str
) -> None:
    (tmp_path / f"keep.{ext}").write_bytes(b"old content")

    def broken_save(self: PILImage.Image, fp: io.BufferedWriter, *args: object, **kwargs: object) -> None:
        fp.write(b"half an image" * 100)
        raise OSError("encoder exploded")

    monkeypatch.setattr(PILImage.Image, "save", broken_save)
    for name in (f"new.{ext}", f"keep.{ext}"):
        with pytest.raises(ImageWriteError) as exc:
            write_image(Image(_rand((4, 4, 3))), tmp_path / name)
        _assert_one_line(exc, tmp_path / name, "encoder exploded")
    assert _names(tmp_path) == {f"keep.{ext}"}
    assert (tmp_path / f"keep.{ext}").read_bytes() == b"old content"


@pytest.mark.parametrize("ext", ["png", "tif"])
def test_own_writer_failure_halfway_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ext: str
) -> None:
    def broken_zlib(*args: object, **kwargs: object) -> bytes:
        raise MemoryError

    monkeypatch.setattr(zlib, "compressobj" if ext == "png" else "compress", broken_zlib)
    with pytest.raises(ImageWriteError) as exc:
        write_image(Image(_rand((4, 4, 3), np.uint16)), tmp_path / f"o.{ext}")
    _assert_one_line(exc, tmp_path / f"o.{ext}", "memory")
    assert _names(tmp_path) == set()


def test_disk_full_during_fsync(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(ImageWriteError) as exc:
        write_image(Image(_rand((4, 4, 3))), tmp_path / "o.png")
    _assert_one_line(exc, tmp_path / "o.png", "no space left on device")
    assert _names(tmp_path) == set()


def test_interrupt_propagates_and_cleans_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(image_write, "_encode_png", interrupted)
    monkeypatch.setitem(image_write._ENCODERS, "PNG", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_image(Image(_rand((4, 4, 3))), tmp_path / "o.png")
    assert _names(tmp_path) == set()


def test_write_goes_through_a_hidden_temp_file_and_gets_normal_permissions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[tuple[str, str]] = []
    real_replace = os.replace

    def spy(src: str, dst: str) -> None:
        seen.append((str(src), str(dst)))
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", spy)
    out = tmp_path / "photo.png"
    write_image(Image(_rand((4, 4, 3))), out)
    (src, dst), = seen
    assert Path(src).parent == tmp_path and dst == str(out)
    assert re.fullmatch(r"\.photo\.png\.pclup-.+\.tmp", Path(src).name)
    assert _names(tmp_path) == {"photo.png"}
    if os.name == "posix":
        umask = os.umask(0o022)
        os.umask(umask)
        assert stat.S_IMODE(out.stat().st_mode) == 0o666 & ~umask
        out.chmod(0o640)
        write_image(Image(_rand((4, 4, 3))), out)  # replacing keeps the old file's mode
        assert stat.S_IMODE(out.stat().st_mode) == 0o640


def test_write_refusals(tmp_path: Path) -> None:
    img = Image(_rand((2, 2, 3)))
    with pytest.raises(ImageWriteError) as exc:
        write_image(img, tmp_path / "o.gif")
    _assert_one_line(exc, tmp_path / "o.gif", "unknown image extension")
    with pytest.raises(UsageError):
        write_image(img, tmp_path / "o.jpg", quality=0)
    wide = Image(np.zeros((1, 16384, 3), np.uint8))
    with pytest.raises(ImageWriteError) as exc:
        write_image(wide, tmp_path / "o.webp")
    _assert_one_line(exc, tmp_path / "o.webp", "too large for webp")
    assert _names(tmp_path) == set()


# --------------------------------------------------------------------------------------------------
# The Image type


def test_image_validates_and_derives() -> None:
    img = Image(np.zeros((2, 3, 1), np.uint16), np.zeros((2, 3), np.uint16))
    got = (img.height, img.width, img.channels, img.bit_depth, img.has_alpha, img.mode)
    assert got == (2, 3, 1, 16, True, "LA;16")
    assert "pixels" not in repr(img)
    with pytest.raises(ValueError):
        Image(np.zeros((2, 3), np.uint8))
    with pytest.raises(ValueError):
        Image(np.zeros((2, 3, 4), np.uint8))
    with pytest.raises(ValueError):
        Image(np.zeros((2, 3, 3), np.float64))
    with pytest.raises(ValueError):
        Image(np.zeros((2, 3, 3), np.uint8), np.zeros((2, 3), np.uint16))
    bigger = dataclasses.replace(img, pixels=np.zeros((4, 6, 1), np.uint16), alpha=None)
    assert bigger.height == 4 and not bigger.has_alpha
