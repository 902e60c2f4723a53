"""Image input and output for ``pclup upscale``.

Reading gives an :class:`Image`: pixels as a NumPy array of shape (H, W, C) with C = 1 (grey) or
C = 3 (colour), dtype ``uint8`` or ``uint16``, plus the alpha channel on its own (H, W), the ICC
profile, the EXIF block, the dots per inch and where it came from. Writing puts the same things
back, atomically.

Which library does what:

* Pillow decodes everything: PNG, JPEG, WebP, TIFF and BMP, including 16-bit grey (``I;16``).
  Pillow has no 16-bit colour mode, so for 16-bit RGB / RGBA PNG and TIFF files it is run twice
  over the same compressed data with two raw modes, one keeping the high byte of every sample and
  one the low byte (Pillow's ``;16B`` and ``;16L`` unpackers), and the two are joined (16-bit
  grey+alpha PNG takes one pass, its 4 bytes a pixel read as they are). Pillow's C code still does
  all the decompression and PNG un-filtering, so this is fast and exact; it relies on Pillow's tile
  descriptors, which the tests pin down against independent encoders.
* 16-bit PNG files are written by :func:`_write_png` here (zlib, adaptive PNG filters in NumPy),
  8-bit PNG by Pillow.
* All TIFF files are written by :func:`_write_tiff` here: deflate with horizontal predictor, the
  tags serialised by Pillow's public ``TiffImagePlugin.ImageFileDirectory_v2``.
* JPEG, WebP and BMP are written by Pillow. imageio is not needed and tifffile is not used.

Colour management: pixels are kept in the colour space they come in and the ICC profile is written
back unchanged; the only conversion is CMYK to RGB (through the embedded profile with LittleCMS
when there is one, else Pillow's ``(255 - C) * (255 - K) / 255`` formula).

Alpha: the network sees colour only. :func:`prepare_rgb_for_alpha` fills the colour under fully
transparent pixels from nearby visible ones (a pull-push pyramid), so that neither the network nor
any resize mixes the arbitrary colour hidden there (often black) into the visible edge: that mixing
is what gives the dark fringes users report. The alternative, upscaling premultiplied colour and
dividing by the upscaled alpha, feeds the network dark-edged colour it was never trained on and
amplifies noise where alpha is small. The alpha channel itself is resized by
:func:`upscale_alpha` (bicubic, clamped).
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import io
import os
import secrets
import stat
import struct
import sys
import warnings
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image as PILImage
from PIL import PngImagePlugin, UnidentifiedImageError

from pclup.errors import ImageReadError, ImageWriteError, UsageError

__all__ = [
    "MAX_IMAGE_PIXELS",
    "OUTPUT_EXTENSIONS",
    "READ_FORMATS",
    "Image",
    "choose_extension",
    "from_tensor",
    "prepare_rgb_for_alpha",
    "read_image",
    "to_tensor",
    "upscale_alpha",
    "write_image",
]

#: Largest input, in pixels (width × height), that :func:`read_image` decodes. The size is checked
#: from the file header, before any pixel memory is allocated. ``None`` switches the check off.
#: Pillow's own hard limit, 2 × ``PIL.Image.MAX_IMAGE_PIXELS`` (about 179 million pixels by
#: default), applies as well: raise that one too to go beyond it.
MAX_IMAGE_PIXELS: int | None = 178_956_970

#: Formats :func:`read_image` accepts (Pillow format names; a multi-picture JPEG, which Pillow
#: calls MPO, counts as JPEG).
READ_FORMATS: tuple[str, ...] = ("PNG", "JPEG", "WEBP", "TIFF", "BMP")

#: Output extensions (without the dot) and the format each one writes.
OUTPUT_EXTENSIONS: dict[str, str] = {
    "png": "PNG",
    "jpg": "JPEG",
    "jpeg": "JPEG",
    "webp": "WEBP",
    "tif": "TIFF",
    "tiff": "TIFF",
    "bmp": "BMP",
}

_CANONICAL_EXT = {"PNG": "png", "JPEG": "jpg", "WEBP": "webp", "TIFF": "tif", "BMP": "bmp"}
_ALPHA_FORMATS = frozenset({"PNG", "WEBP", "TIFF"})
_16BIT_FORMATS = frozenset({"PNG", "TIFF"})
# Largest width or height each format can store.
_MAX_SIDE = {"WEBP": 16383, "JPEG": 65535, "BMP": 2**31 - 1, "PNG": 2**31 - 1, "TIFF": 2**32 - 1}
_SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"\xff\xd8\xff", "JPEG"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"II+\x00", "TIFF"),
    (b"MM\x00+", "TIFF"),
    (b"BM", "BMP"),
)
_ORIENTATION = 0x0112
_EXIF_IFD = 0x8769
_GPS_IFD = 0x8825
# Descriptive (not structural) TIFF IFD0 tags carried between TIFF and the EXIF block of other formats.
_TIFF_EXIF_TAGS = (270, 271, 272, 305, 306, 315, 316, 33432)
_MAX_JPEG_EXIF = 65533  # one APP1 marker
# Largest PNG metadata chunk (ICC profile, compressed text) decoded. Pillow's own bound, 1 MiB, refuses
# the ICC profiles of some printers and scanners (several MB); 32 MiB still stops a zip bomb hidden in
# a chunk. Pillow's total for text chunks (PngImagePlugin.MAX_TEXT_MEMORY) applies as before.
_MAX_PNG_CHUNK = 32 << 20
PngImagePlugin.MAX_TEXT_CHUNK = max(PngImagePlugin.MAX_TEXT_CHUNK, _MAX_PNG_CHUNK)
# zlib level of the PNG and TIFF writers here: on 16-bit data (noisy low bytes) level 6 takes about
# three times as long as 4 for files under 1 % smaller.
_ZLIB_LEVEL = 4


# --------------------------------------------------------------------------------------------------
# The image


@dataclasses.dataclass(eq=False)
class Image:
    """A decoded image, upright, with what is needed to write it back faithfully.

    Attributes:
        pixels: (H, W, C) array, C = 1 (grey) or 3 (colour), dtype ``uint8`` or ``uint16``. Colour
            values are straight (not premultiplied by alpha).
        alpha: (H, W) array of the same dtype as ``pixels``, or ``None`` when the image has no
            transparency. Palette and colour-key transparency (PNG ``tRNS``) become an alpha channel.
        icc_profile: the embedded ICC profile, unchanged, or ``None`` (sRGB by convention).
        exif: the EXIF block, starting with ``b"Exif\\0\\0"``, with the orientation tag set to 1
            because the pixels are already upright; ``None`` when there is none.
        format: the file format read: ``"PNG"``, ``"JPEG"``, ``"WEBP"``, ``"TIFF"`` or ``"BMP"``.
        mode: the mode of the file before any conversion, for information: Pillow's (``"P"``,
            ``"CMYK"``, ``"I;16"``, ``"RGB"``, ...), or ``"LA;16"``, ``"RGB;16"``, ``"RGBA;16"`` for
            16-bit layouts Pillow has no mode for; derived from the pixels when left empty.
        dpi: (x, y) dots per inch, or ``None``.
        source: the file read, or ``None``.

    ``bit_depth`` (8 or 16) is a property derived from the dtype, never from the pixel values. Use
    :func:`dataclasses.replace` to swap in upscaled ``pixels`` and ``alpha``.
    """

    pixels: np.ndarray = dataclasses.field(repr=False)
    alpha: np.ndarray | None = dataclasses.field(default=None, repr=False)
    icc_profile: bytes | None = dataclasses.field(default=None, repr=False)
    exif: bytes | None = dataclasses.field(default=None, repr=False)
    format: str = "PNG"
    mode: str = ""
    dpi: tuple[float, float] | None = None
    source: Path | None = None

    def __post_init__(self) -> None:
        p = self.pixels
        if not isinstance(p, np.ndarray) or p.ndim != 3 or p.shape[2] not in (1, 3):
            shape = getattr(p, "shape", None)
            raise ValueError(f"pixels must be an (H, W, 1) or (H, W, 3) array, got shape {shape}")
        if p.dtype not in (np.uint8, np.uint16):
            raise ValueError(f"pixels must be uint8 or uint16, got {p.dtype}")
        if self.alpha is not None:
            a = self.alpha
            if not isinstance(a, np.ndarray) or a.shape != p.shape[:2] or a.dtype != p.dtype:
                raise ValueError(
                    f"alpha must be an {p.shape[:2]} {p.dtype} array, got "
                    f"{getattr(a, 'shape', None)} {getattr(a, 'dtype', None)}"
                )
        if not self.mode:
            self.mode = _mode_name(p.shape[2], self.alpha is not None, self.bit_depth)

    @property
    def height(self) -> int:
        """Height in pixels."""
        return int(self.pixels.shape[0])

    @property
    def width(self) -> int:
        """Width in pixels."""
        return int(self.pixels.shape[1])

    @property
    def channels(self) -> int:
        """Colour channels: 1 (grey) or 3 (RGB); alpha not counted."""
        return int(self.pixels.shape[2])

    @property
    def bit_depth(self) -> int:
        """Bits per sample, 8 or 16, from the dtype."""
        return 16 if self.pixels.dtype == np.uint16 else 8

    @property
    def has_alpha(self) -> bool:
        """Whether the image has an alpha channel."""
        return self.alpha is not None


def _mode_name(channels: int, alpha: bool, bits: int) -> str:
    base = "L" if channels == 1 else "RGB"
    if alpha:
        base += "A"
    return base + (";16" if bits == 16 else "")


def _max_value(dtype: np.dtype[Any] | type) -> float:
    dt = np.dtype(dtype)
    if dt == np.uint8:
        return 255.0
    if dt == np.uint16:
        return 65535.0
    if dt == np.float32:
        return 1.0
    raise ValueError(f"unsupported sample type {dt}: use uint8, uint16 or float32")


# --------------------------------------------------------------------------------------------------
# Reading


def read_image(path: str | os.PathLike[str]) -> Image:
    """Read an image file, upright and at its full bit depth.

    Reads PNG (1/2/4/8/16-bit, grey, grey+alpha, palette, RGB, RGBA, interlaced), JPEG (grey, RGB,
    CMYK), WebP, TIFF (8/16-bit grey, RGB, RGBA; palette, CMYK) and BMP. The first frame of an
    animated or multi-page file is read. EXIF orientation is applied to pixels and alpha
    (``PIL.ImageOps.exif_transpose`` semantics) and then reset to 1; for orientations 5 to 8 the
    x and y dpi swap too.

    Conversions: palette becomes RGB, or RGBA when it has transparency; 1-bit becomes 8-bit grey;
    CMYK becomes RGB (through the embedded ICC profile when it has one, which is then dropped as
    the pixels are sRGB); a colour-key (``tRNS``) becomes an alpha channel. Grey stays grey (C=1).
    The bit depth comes from the file, never from the pixel values.

    Not kept: XMP, PNG text chunks, IPTC; 32-bit integer and float samples are refused, as are
    16-bit CMYK (read as 8-bit) and Lab.

    Args:
        path: the file.

    Returns:
        The :class:`Image`.

    Raises:
        ImageReadError: a one-line message naming the file and the cause: missing, empty, not an
            image, truncated, corrupt, larger than :data:`MAX_IMAGE_PIXELS`, unsupported layout.
    """
    path = Path(path)
    try:
        st = os.stat(path)
    except OSError as exc:
        raise ImageReadError(f"cannot read {path}: {_os_cause(exc)}") from exc
    if stat.S_ISDIR(st.st_mode):
        raise ImageReadError(f"cannot read {path}: it is a folder, not an image file")
    if st.st_size == 0:
        raise ImageReadError(f"cannot read {path}: empty file (0 bytes)")
    try:
        with open(path, "rb") as fp:
            head = fp.read(16)
    except OSError as exc:
        raise ImageReadError(f"cannot read {path}: {_os_cause(exc)}") from exc

    with warnings.catch_warnings():
        # Pillow warns between its pixel limit and twice that; the check that matters is ours. Its
        # other warnings (odd EXIF, palette transparency) are not the user's business here.
        warnings.simplefilter("ignore", PILImage.DecompressionBombWarning)
        warnings.filterwarnings("ignore", category=UserWarning, module=r"PIL(\.|$)")
        return _read(path, head)


def _read(path: Path, head: bytes) -> Image:
    try:
        with _open_pil(path) as pil:
            _check_size(path, pil.size)
            return _decode(path, pil)
    except ImageReadError:
        raise
    except UnidentifiedImageError as exc:
        looks_like = next((fmt for sig, fmt in _SIGNATURES if head.startswith(sig)), None)
        if looks_like is None and head[:4] == b"RIFF" and head[8:12] == b"WEBP":
            looks_like = "WEBP"
        if looks_like is not None:
            cause = f"truncated or corrupt file: it starts like a {looks_like} but its header is unreadable"
        else:
            cause = "not an image, or not a supported format (PNG, JPEG, WebP, TIFF, BMP)"
        raise ImageReadError(f"cannot read {path}: {cause}") from exc
    except PILImage.DecompressionBombError as exc:
        detail = " ".join(str(exc).split()).rstrip(".")
        raise ImageReadError(
            f"cannot read {path}: image too large, a possible decompression bomb ({detail}; "
            "see PIL.Image.MAX_IMAGE_PIXELS)"
        ) from exc
    except Exception as exc:  # noqa: BLE001 - every decoder failure becomes one line
        raise ImageReadError(f"cannot read {path}: {_decode_cause(exc)}") from exc


@contextlib.contextmanager
def _open_pil(path: Path) -> Iterator[PILImage.Image]:
    im = PILImage.open(path, formats=list(READ_FORMATS))
    try:
        yield im
    finally:
        im.close()


def _check_size(path: Path, size: tuple[int, int]) -> None:
    w, h = size
    if w <= 0 or h <= 0:
        raise ImageReadError(f"cannot read {path}: corrupt header (size {w}x{h})")
    if MAX_IMAGE_PIXELS is not None and w * h > MAX_IMAGE_PIXELS:
        raise ImageReadError(f"cannot read {path}: {_too_large((w, h))}")


def _too_large(size: tuple[int, int]) -> str:
    return (
        f"image too large ({size[0]}x{size[1]} = {size[0] * size[1]} pixels): over the limit of "
        f"{MAX_IMAGE_PIXELS} pixels (pclup.images.MAX_IMAGE_PIXELS), a guard against decompression bombs"
    )


def _os_cause(exc: OSError) -> str:
    if isinstance(exc, FileNotFoundError):
        return "no such file"
    if isinstance(exc, PermissionError):
        return "permission denied"
    if isinstance(exc, IsADirectoryError):
        return "it is a folder"
    if isinstance(exc, NotADirectoryError):
        return "a part of the path is not a folder"
    return (exc.strerror or str(exc) or type(exc).__name__).rstrip(".").lower()


def _decode_cause(exc: BaseException) -> str:
    if isinstance(exc, MemoryError):
        return "not enough memory to decode it"
    if isinstance(exc, EOFError) or "truncat" in str(exc).lower():
        return "truncated file: the image data ends early"
    if "MAX_TEXT_CHUNK" in str(exc):  # Pillow's message for a chunk over the bound above
        return f"a metadata chunk (ICC profile or text) is over {_MAX_PNG_CHUNK >> 20} MiB, the limit"
    return f"corrupt image data ({_describe(exc)})"


def _describe(exc: BaseException) -> str:
    """``Type: message`` on one line, at most about 200 characters."""
    text = " ".join(str(exc).split())
    if len(text) > 160:
        text = text[:157] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _decode(path: Path, pil: PILImage.Image) -> Image:
    fmt = {"MPO": "JPEG", "DIB": "BMP"}.get(pil.format or "", pil.format or "")
    mode = _original_mode(pil)
    pixels, alpha, drop_icc = _decode_pixels(path, pil, fmt)
    # Everything below reads metadata of the loaded file (PNG chunks after IDAT included).
    info = pil.info
    icc = info.get("icc_profile") or None
    if drop_icc:
        icc = None
    exif, orientation = _read_exif(pil, fmt)
    dpi = _read_dpi(info)
    if orientation != 1:
        pixels = _orient(pixels, orientation)
        alpha = None if alpha is None else _orient(alpha, orientation)
        if dpi is not None and orientation >= 5:
            dpi = (dpi[1], dpi[0])
    # Pillow hands out read-only views of its buffers: give the caller arrays it can modify.
    need = ("C_CONTIGUOUS", "ALIGNED", "WRITEABLE")
    return Image(
        pixels=np.require(pixels, requirements=need),
        alpha=None if alpha is None else np.require(alpha, requirements=need),
        icc_profile=bytes(icc) if icc else None,
        exif=exif,
        format=fmt,
        mode=mode,
        dpi=dpi,
        source=path,
    )


def _original_mode(pil: PILImage.Image) -> str:
    """Pillow's mode, or LA;16 / RGB;16 / RGBA;16 for the 16-bit layouts Pillow has no mode for."""
    rawmode = _tile_rawmode(pil) or ""
    if pil.mode in ("RGB", "RGBA") and ";16" in rawmode:
        return "LA;16" if rawmode.startswith("LA") else f"{pil.mode};16"
    return pil.mode


def _decode_pixels(
    path: Path, pil: PILImage.Image, fmt: str
) -> tuple[np.ndarray, np.ndarray | None, bool]:
    """Decode to ((H, W, C) pixels, (H, W) alpha or None, whether the ICC no longer applies)."""
    mode = pil.mode
    if fmt in ("PNG", "TIFF") and mode in ("RGB", "RGBA"):
        rawmode = _tile_rawmode(pil)
        if rawmode is not None and ";16" in rawmode:
            arr = _decode_16bit_colour(path, pil, rawmode)
            return _split_alpha(arr) + (False,)

    pil.load()
    drop_icc = False
    if mode == "1":
        pil = pil.convert("L")
    elif mode in ("P", "PA"):
        pil = pil.convert("RGBA" if _has_transparency(pil) else "RGB")
    elif mode == "La":
        pil = pil.convert("LA")
    elif mode == "RGBa":
        pil = pil.convert("RGBA")
    elif mode in ("RGBX", "YCbCr"):
        pil = pil.convert("RGB")
    elif mode == "CMYK":
        pil, drop_icc = _cmyk_to_rgb(pil)
    elif mode in ("I;16", "I;16L", "I;16B", "I;16N"):
        pass
    elif mode not in ("L", "LA", "RGB", "RGBA"):
        raise ImageReadError(f"cannot read {path}: unsupported pixel format {mode!r} ({_mode_help(mode)})")

    arr = np.asarray(pil)
    if arr.dtype.kind == "u" and arr.dtype.itemsize == 2:
        arr = arr.astype(np.uint16, copy=False)  # native byte order
    if arr.ndim == 2:
        arr = arr[:, :, None]
    pixels, alpha = _split_alpha(arr)
    if alpha is None and (pil.mode in ("L", "RGB") or pil.mode.startswith("I;16")):
        key = pil.info.get("transparency")
        if isinstance(key, (int, tuple)) and not isinstance(key, bool):
            alpha = _colour_key_alpha(pixels, key)
    return pixels, alpha, drop_icc


def _mode_help(mode: str) -> str:
    if mode in ("I", "F", "I;32", "I;16S", "I;16BS", "I;32S"):
        return "32-bit, signed or floating-point samples are not supported"
    return "only grey, grey+alpha, palette, RGB, RGBA and CMYK are supported"


def _split_alpha(arr: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    c = arr.shape[2]
    if c in (2, 4):
        return np.ascontiguousarray(arr[:, :, : c - 1]), np.ascontiguousarray(arr[:, :, c - 1])
    return arr, None


def _has_transparency(pil: PILImage.Image) -> bool:
    flag = getattr(pil, "has_transparency_data", None)
    if isinstance(flag, bool):
        return flag
    return "transparency" in pil.info or pil.mode == "PA"


def _colour_key_alpha(pixels: np.ndarray, key: int | tuple[int, ...]) -> np.ndarray | None:
    keys = (key,) if isinstance(key, int) else tuple(key)
    if len(keys) != pixels.shape[2]:
        return None
    match = np.all(pixels == np.asarray(keys, dtype=pixels.dtype), axis=2)
    if not match.any():
        return None
    alpha = np.full(pixels.shape[:2], int(_max_value(pixels.dtype)), dtype=pixels.dtype)
    alpha[match] = 0
    return alpha


def _cmyk_to_rgb(pil: PILImage.Image) -> tuple[PILImage.Image, bool]:
    icc = pil.info.get("icc_profile")
    if icc:
        try:
            from PIL import ImageCms

            src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            dst = ImageCms.createProfile("sRGB")
            out = ImageCms.profileToProfile(
                pil, src, dst, renderingIntent=ImageCms.Intent.PERCEPTUAL, outputMode="RGB"
            )
            if out is not None:
                return out, True
        except Exception:  # noqa: BLE001 - a broken or non-CMYK profile: fall back to the formula
            pass
    # Pillow's CMYK -> RGB is (255 - C) * (255 - K) / 255 per channel; the profile, if any, was
    # for CMYK values and does not describe these RGB values.
    return pil.convert("RGB"), True


# ---- 16-bit colour through Pillow, two passes ----


def _tile_args(tile: Any) -> Any:
    return tile[3]


def _tile_rawmode(pil: PILImage.Image) -> str | None:
    tiles = getattr(pil, "tile", None)
    if not tiles:
        return None
    args = _tile_args(tiles[0])
    raw = args if isinstance(args, str) else (args[0] if isinstance(args, tuple) and args else None)
    return raw if isinstance(raw, str) else None


def _set_rawmode(pil: PILImage.Image, rawmode: str, mode: str | None = None) -> None:
    new_tiles = []
    for tile in pil.tile:
        args = _tile_args(tile)
        new_args = rawmode if isinstance(args, str) else (rawmode, *args[1:])
        if hasattr(tile, "_replace"):
            new_tiles.append(tile._replace(args=new_args))
        else:  # Pillow < 11: plain tuples
            new_tiles.append((tile[0], tile[1], tile[2], new_args))
    pil.tile = new_tiles
    if mode is not None and mode != pil.mode:
        pil._mode = mode  # noqa: SLF001 - only for the byte-for-byte "RGBA" view of 16-bit LA


def _decode_16bit_colour(path: Path, pil: PILImage.Image, rawmode: str) -> np.ndarray:
    """Decode a 16-bit-per-sample RGB / RGBA / LA file as an (H, W, C) uint16 array."""
    base, _, suffix = rawmode.rpartition(";")
    if rawmode == "LA;16B":  # PNG grey+alpha, 32 bits a pixel: read the bytes as they are
        _set_rawmode(pil, "RGBA", "RGBA")
        pil.load()
        b = np.asarray(pil).astype(np.uint16)
        return np.stack([(b[..., 0] << 8) | b[..., 1], (b[..., 2] << 8) | b[..., 3]], axis=2)
    if suffix not in ("16B", "16L", "16N") or base not in ("RGB", "RGBA", "RGBX", "RGBa"):
        raise ImageReadError(f"cannot read {path}: unsupported 16-bit layout ({rawmode})")
    premultiplied = base == "RGBa"
    base = "RGBA" if premultiplied else base
    order = suffix[2]
    if order == "N":
        order = "L" if sys.byteorder == "little" else "B"
    other = "B" if order == "L" else "L"
    # Unpacker ';16B' keeps byte 0 of each sample and ';16L' byte 1: with data in order `order`,
    # ';16{order}' gives the high bytes and ';16{other}' the low bytes.
    halves = []
    for i, byte_order in enumerate((order, other)):
        im = pil if i == 0 else None
        with contextlib.ExitStack() as stack:
            if im is None:
                im = stack.enter_context(_open_pil(path))
            _set_rawmode(im, f"{base};16{byte_order}")
            im.load()
            halves.append(np.asarray(im))
    arr = (halves[0].astype(np.uint16) << 8) | halves[1]
    if premultiplied:
        arr = _unpremultiply16(arr)
    return arr


def _unpremultiply16(arr: np.ndarray) -> np.ndarray:
    a = arr[..., 3:4].astype(np.float64)
    rgb = arr[..., :3].astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(a > 0, rgb * 65535.0 / a, 0.0)
    arr = arr.copy()
    arr[..., :3] = np.clip(np.rint(out), 0, 65535).astype(np.uint16)
    return arr


# ---- metadata ----


def _read_dpi(info: dict[str, Any]) -> tuple[float, float] | None:
    dpi = info.get("dpi")
    try:
        x, y = (float(v) for v in dpi)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        return None
    if not (x > 0 and y > 0):
        return None
    # PNG stores dots per metre: 300 dpi comes back as 299.9994. Snap such values to the integer.
    x, y = (float(round(v)) if abs(v - round(v)) < 0.02 else v for v in (x, y))
    return (x, y)


def _read_exif(pil: PILImage.Image, fmt: str) -> tuple[bytes | None, int]:
    """Return (EXIF block with orientation 1 or None, the orientation that was there)."""
    try:
        exif = pil.getexif()
    except Exception:  # noqa: BLE001 - broken EXIF never stops a read
        return None, 1
    orientation = exif.get(_ORIENTATION, 1)
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
        if _ORIENTATION in ex:
            ex[_ORIENTATION] = 1
        return ex.tobytes(), orientation
    except Exception:  # noqa: BLE001 - unreadable EXIF is dropped rather than kept with a wrong orientation
        return None, orientation


def _tiff_exif_block(tags: PILImage.Exif) -> bytes | None:
    ex = PILImage.Exif()
    for tag in _TIFF_EXIF_TAGS:
        if tag in tags:
            ex[tag] = tags[tag]
    for tag in (_EXIF_IFD, _GPS_IFD):
        try:
            sub = tags.get_ifd(tag)
        except Exception:  # noqa: BLE001
            sub = {}
        if sub:
            ex[tag] = dict(sub)
    if not len(ex):
        return None
    if _ORIENTATION in tags:
        ex[_ORIENTATION] = 1
    return ex.tobytes()


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
        if tag == _ORIENTATION and count == 1:
            if typ == 3:
                struct.pack_into(e + "H", buf, pos + 8, 1)
            elif typ == 4:
                struct.pack_into(e + "I", buf, pos + 8, 1)
        elif tag == _EXIF_IFD and count == 1 and typ in (4, 13):
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


def _orient(arr: np.ndarray, orientation: int) -> np.ndarray:
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


# --------------------------------------------------------------------------------------------------
# Writing


def write_image(
    image: Image,
    path: str | os.PathLike[str],
    *,
    format: str | None = None,
    quality: int = 95,
    overwrite: bool = True,
    parents: bool = False,
) -> list[str]:
    """Write an image atomically, keeping bit depth, alpha, ICC profile, EXIF and dpi where possible.

    The file is written to a temporary file ``.{name}.pclup-XXXXXXXXXXXX.tmp`` in the same folder,
    flushed to disk, given the permissions a new file would get (``0o666`` less the umask) or those
    of the file it replaces, and then published as ``path``: renamed over it, or, with
    ``overwrite=False``, hard-linked to it, which fails if ``path`` exists, so that of two writers
    racing for one name only the first wins. On a file system without hard links (FAT, exFAT, some
    network shares) ``overwrite=False`` falls back to checking that ``path`` does not exist and
    renaming, which leaves a short window for a concurrent writer. On any failure the temporary file
    is removed and an existing ``path`` is left as it was: there is never a partial output.

    Per format:

    * PNG: 8 or 16 bits, grey / grey+alpha / RGB / RGBA; ICC, EXIF (``eXIf``) and dpi kept.
    * TIFF: 8 or 16 bits, deflate-compressed with predictor; ICC, EXIF tags and dpi kept. 16-bit
      grey+alpha is written as 16-bit RGBA (Pillow, and so :func:`read_image`, cannot read 16-bit
      grey+alpha TIFF).
    * JPEG: quality ``quality``, 4:4:4 chroma (no subsampling), optimised Huffman tables; ICC, EXIF
      (if under 64 KiB) and dpi kept.
    * WebP: lossy at ``quality``, or lossless when ``quality`` is 100; ICC and EXIF kept; grey is
      stored as RGB; at most 16383 pixels a side.
    * BMP: no ICC or EXIF; dpi kept.

    JPEG, WebP and BMP hold 8 bits: 16-bit samples become ``round(x * 255 / 65535)``. JPEG and BMP
    hold no alpha: the image is flattened onto white (what a viewer shows for a transparent area
    on a page); ``choose_extension(..., "auto")`` picks PNG for such images so this only happens
    when asked for. Every such loss is returned as a note.

    Args:
        image: the image; ``image.pixels`` (H, W, C) uint8/uint16, ``image.alpha`` (H, W) or None.
        path: the output file; its extension picks the format unless ``format`` is given.
        format: ``"png"``, ``"jpg"``/``"jpeg"``, ``"webp"``, ``"tif"``/``"tiff"`` or ``"bmp"``
            (any case), overriding the extension.
        quality: 1 to 100, for JPEG and WebP.
        overwrite: replace an existing ``path``; when false, an existing one is left alone and
            :class:`FileExistsError` is raised.
        parents: create the missing folders above ``path`` (else the folder must exist).

    Returns:
        One-line notes on what the format could not hold (empty when nothing was lost), for the
        caller to show or log.

    Raises:
        ImageWriteError: one line naming the file and the cause (unknown format, folder missing,
            a file where a folder should be, permission denied, disk full, image too large for the
            format, encoder failure).
        FileExistsError: ``overwrite`` is false and ``path`` exists (possibly written meanwhile by
            another program); nothing was changed.
        UsageError: ``quality`` out of range.
    """
    path = Path(path)
    if not isinstance(quality, int) or isinstance(quality, bool) or not 1 <= quality <= 100:
        raise UsageError(f"JPEG/WebP quality must be a whole number from 1 to 100, got {quality!r}")
    fmt = _format_for(path, format)
    h, w = image.pixels.shape[:2]
    if max(h, w) > _MAX_SIDE[fmt]:
        raise ImageWriteError(
            f"cannot write {path}: {w}x{h} is too large for {fmt}, which holds at most "
            f"{_MAX_SIDE[fmt]} pixels a side; use PNG or TIFF"
        )
    pixels, alpha, notes = _fit_to_format(image, fmt)
    encoder = _ENCODERS[fmt]

    def write(fp: IO[bytes]) -> None:
        encoder(fp, image, pixels, alpha, quality, notes)

    _atomic_write(path, write, overwrite=overwrite, parents=parents)
    return notes


def _format_for(path: Path, format: str | None) -> str:
    key = (format if format is not None else path.suffix).lower().lstrip(".")
    fmt = OUTPUT_EXTENSIONS.get(key)
    if fmt is None:
        what = f"format {format!r}" if format is not None else f"extension {path.suffix or '(none)'!r}"
        raise ImageWriteError(
            f"cannot write {path}: unknown image {what}; use png, jpg, webp, tif or bmp"
        )
    return fmt


def _fit_to_format(image: Image, fmt: str) -> tuple[np.ndarray, np.ndarray | None, list[str]]:
    """Reduce pixels/alpha to what ``fmt`` can hold; return them with notes on what was lost."""
    pixels, alpha = image.pixels, image.alpha
    notes: list[str] = []
    if alpha is not None and fmt not in _ALPHA_FORMATS:
        pixels = _flatten_on_white(pixels, alpha)
        alpha = None
        notes.append(f"{fmt} has no transparency: the image was flattened onto white")
    if pixels.dtype == np.uint16 and fmt not in _16BIT_FORMATS:
        pixels = _to_8bit(pixels)
        alpha = None if alpha is None else _to_8bit(alpha)
        notes.append(f"{fmt} holds 8 bits per sample: 16-bit samples were rounded to 8 bits")
    if fmt == "WEBP" and pixels.shape[2] == 1:
        pixels = np.repeat(pixels, 3, axis=2)
        notes.append("WEBP has no grey mode: the grey image was stored as RGB")
    if fmt == "TIFF" and pixels.dtype == np.uint16 and pixels.shape[2] == 1 and alpha is not None:
        pixels = np.repeat(pixels, 3, axis=2)
        notes.append("16-bit grey with alpha is stored in TIFF as 16-bit RGBA")
    if fmt == "BMP":
        if image.icc_profile:
            notes.append("BMP output keeps no ICC profile")
        if image.exif:
            notes.append("BMP output keeps no EXIF data")
    return pixels, alpha, notes


def _to_8bit(arr: np.ndarray) -> np.ndarray:
    """uint16 -> uint8 as round(x * 255 / 65535), exactly (x / 257 is never halfway)."""
    return ((arr.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)


def _flatten_on_white(pixels: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    m = _max_value(pixels.dtype)
    a = alpha.astype(np.float32)[:, :, None] / np.float32(m)
    out = pixels.astype(np.float32) * a + np.float32(m) * (1.0 - a)
    return np.clip(np.rint(out), 0, m).astype(pixels.dtype)


def _atomic_write(
    path: Path, write: Callable[[IO[bytes]], None], *, overwrite: bool = True, parents: bool = False
) -> None:
    folder = path.parent
    tmp: str | None = None
    try:
        if parents:
            folder.mkdir(parents=True, exist_ok=True)
        mode = _new_file_mode(path)
        # The name is set before the file is created, so that a signal arriving just after the
        # creation (SIGTERM, Ctrl+C) finds it to remove. Within the usual 255-byte limit of a name.
        tmp = os.path.join(folder, f".{path.name[:120]}.pclup-{secrets.token_hex(6)}.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o600)
        except FileExistsError:
            tmp = None  # not ours (a 48-bit random name taken: practically never)
            raise
        with os.fdopen(fd, "wb") as fp:
            write(fp)
            fp.flush()
            if mode is not None and hasattr(os, "fchmod"):
                os.fchmod(fp.fileno(), mode)
            os.fsync(fp.fileno())
        published = _publish(tmp, path, overwrite)
        tmp = None
        if published:
            _fsync_folder(folder)
    except BaseException as exc:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        if not isinstance(exc, Exception) or isinstance(exc, ImageWriteError):
            raise
        raise ImageWriteError(f"cannot write {path}: {_write_cause(exc, folder)}") from exc
    if not published:
        raise FileExistsError(errno.EEXIST, "the file exists", str(path))


# link() errors that mean "this file system has no hard links" (EPERM: Linux on FAT; EINVAL: Windows).
_NO_HARD_LINKS = frozenset(
    {errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.ENOSYS, errno.EXDEV, errno.EMLINK, errno.EINVAL}
)


def _publish(tmp: str, path: Path, overwrite: bool) -> bool:
    """Give the finished temporary file its name; it is gone afterwards. False: ``path`` exists (kept).

    Without ``overwrite`` the file is hard-linked to ``path``, which fails if anything has that name
    by then (no check-then-rename race); rename is the fallback where hard links are not supported.
    """
    if not overwrite:
        try:
            os.link(tmp, path)
        except FileExistsError:
            os.unlink(tmp)
            return False
        except OSError as exc:
            if exc.errno not in _NO_HARD_LINKS:
                raise
            if os.path.lexists(path):
                os.unlink(tmp)
                return False
        else:
            os.unlink(tmp)
            return True
    os.replace(tmp, path)
    return True


def _write_cause(exc: Exception, folder: Path) -> str:
    if isinstance(exc, (FileNotFoundError, FileExistsError, NotADirectoryError)):
        blocker = _not_a_folder(folder)
        if blocker is not None:
            return f"{blocker} is {'a file, ' if blocker.is_file() else ''}not a folder"
    if isinstance(exc, FileNotFoundError):
        if not folder.is_dir():
            return f"the folder {folder} does not exist"
        return f"cannot create a file in {folder} (no such file or directory)"
    if isinstance(exc, PermissionError):
        return "permission denied"
    if isinstance(exc, IsADirectoryError):
        return "a folder of that name exists"
    if isinstance(exc, NotADirectoryError):
        return "a part of the path is not a folder"
    if isinstance(exc, MemoryError):
        return "not enough memory to encode it"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.rstrip(".").lower()
    return f"encoder failed ({_describe(exc)})"


def _not_a_folder(folder: Path) -> Path | None:
    """The nearest existing one of ``folder`` and its parents, if it is not a folder (a file in the way)."""
    for p in (folder, *folder.parents):
        try:
            st = os.stat(p)
        except (FileNotFoundError, NotADirectoryError):
            continue
        except OSError:
            return None
        return None if stat.S_ISDIR(st.st_mode) else p
    return None


def _new_file_mode(path: Path) -> int | None:
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        pass
    except OSError:
        return None
    umask = _umask()
    return None if umask is None else 0o666 & ~umask


def _umask() -> int | None:
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    if os.name != "posix":
        return None
    current = os.umask(0o022)  # the only portable way to read it
    os.umask(current)
    return current


def _fsync_folder(folder: Path) -> None:
    if os.name != "posix":
        return
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _exif_for_write(image: Image, pixels: np.ndarray) -> bytes | None:
    if not image.exif:
        return None
    try:
        return _patch_exif(image.exif, size=(pixels.shape[1], pixels.shape[0]))
    except Exception:  # noqa: BLE001 - keep it as read
        return image.exif


def _pil_image(pixels: np.ndarray, alpha: np.ndarray | None) -> PILImage.Image:
    arr = pixels if alpha is None else np.concatenate([pixels, alpha[:, :, None]], axis=2)
    if arr.shape[2] == 1:
        arr = arr[:, :, 0]
    return PILImage.fromarray(np.ascontiguousarray(arr))


def _encode_png(
    fp: IO[bytes], image: Image, pixels: np.ndarray, alpha: np.ndarray | None, quality: int, notes: list[str]
) -> None:
    exif = _exif_for_write(image, pixels)
    if pixels.dtype == np.uint16:
        _write_png(fp, pixels, alpha, icc_profile=image.icc_profile, exif=exif, dpi=image.dpi)
        return
    kwargs: dict[str, Any] = {"compress_level": 6}
    if image.icc_profile:
        kwargs["icc_profile"] = image.icc_profile
    if exif:
        kwargs["exif"] = exif
    if image.dpi:
        kwargs["dpi"] = image.dpi
    _pil_image(pixels, alpha).save(fp, format="PNG", **kwargs)


def _encode_jpeg(
    fp: IO[bytes], image: Image, pixels: np.ndarray, alpha: np.ndarray | None, quality: int, notes: list[str]
) -> None:
    kwargs: dict[str, Any] = {"quality": quality, "subsampling": 0, "optimize": True}
    if image.icc_profile:
        kwargs["icc_profile"] = image.icc_profile
    exif = _exif_for_write(image, pixels)
    if exif and len(exif) > _MAX_JPEG_EXIF:
        notes.append(f"EXIF data of {len(exif)} bytes is too large for JPEG (64 KiB) and was left out")
        exif = None
    if exif:
        kwargs["exif"] = exif
    if image.dpi:
        kwargs["dpi"] = tuple(max(1, round(v)) for v in image.dpi)
    _pil_image(pixels, None).save(fp, format="JPEG", **kwargs)


def _encode_webp(
    fp: IO[bytes], image: Image, pixels: np.ndarray, alpha: np.ndarray | None, quality: int, notes: list[str]
) -> None:
    kwargs: dict[str, Any] = {"quality": quality, "method": 4}
    if quality >= 100:
        kwargs.update(lossless=True, quality=80, exact=True)
    if image.icc_profile:
        kwargs["icc_profile"] = image.icc_profile
    exif = _exif_for_write(image, pixels)
    if exif:
        kwargs["exif"] = exif
    _pil_image(pixels, alpha).save(fp, format="WEBP", **kwargs)


def _encode_bmp(
    fp: IO[bytes], image: Image, pixels: np.ndarray, alpha: np.ndarray | None, quality: int, notes: list[str]
) -> None:
    kwargs: dict[str, Any] = {}
    if image.dpi:
        kwargs["dpi"] = tuple(max(1, round(v)) for v in image.dpi)
    _pil_image(pixels, None).save(fp, format="BMP", **kwargs)


def _encode_tiff(
    fp: IO[bytes], image: Image, pixels: np.ndarray, alpha: np.ndarray | None, quality: int, notes: list[str]
) -> None:
    exif = _exif_for_write(image, pixels)
    _write_tiff(fp, pixels, alpha, icc_profile=image.icc_profile, exif=exif, dpi=image.dpi, notes=notes)


_ENCODERS: dict[str, Callable[..., None]] = {
    "PNG": _encode_png,
    "JPEG": _encode_jpeg,
    "WEBP": _encode_webp,
    "BMP": _encode_bmp,
    "TIFF": _encode_tiff,
}


# ---- PNG writer (used for 16-bit) ----


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


def _write_png(
    fp: IO[bytes],
    pixels: np.ndarray,
    alpha: np.ndarray | None,
    *,
    icc_profile: bytes | None = None,
    exif: bytes | None = None,
    dpi: tuple[float, float] | None = None,
) -> None:
    """Write an 8- or 16-bit grey / grey+alpha / RGB / RGBA PNG (non-interlaced)."""
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
    compressor = zlib.compressobj(_ZLIB_LEVEL)
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


# ---- TIFF writer ----


def _write_tiff(
    fp: IO[bytes],
    pixels: np.ndarray,
    alpha: np.ndarray | None,
    *,
    icc_profile: bytes | None = None,
    exif: bytes | None = None,
    dpi: tuple[float, float] | None = None,
    notes: list[str] | None = None,
    compress: bool = True,
    byteorder: str = "<",
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
            for tag in _TIFF_EXIF_TAGS:
                if tag in ex:
                    ifd[tag] = ex[tag]
            for tag in (_EXIF_IFD, _GPS_IFD):
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


# --------------------------------------------------------------------------------------------------
# Output extension


def choose_extension(image: Image, ext: str, *, size: tuple[int, int] | None = None) -> str:
    """Pick the output extension for ``--ext``.

    ``auto`` keeps the input's format (``jpg`` for JPEG input, ``tif`` for TIFF) unless it
    cannot hold the image: alpha into JPEG/BMP, 16 bits into JPEG/WebP/BMP, or an output ``size``
    beyond what WebP (16383) or JPEG (65535) can store; then it picks ``png``. An explicit value is
    kept even if it loses something (:func:`write_image` reports what).

    Args:
        image: the input image (its format, alpha and bit depth are used).
        ext: ``auto``, ``png``, ``jpg``/``jpeg``, ``webp``, ``tif``/``tiff`` or ``bmp``; any case,
            leading dot allowed.
        size: the output (width, height), if known.

    Returns:
        The extension without the dot: ``png``, ``jpg``, ``webp``, ``tif`` or ``bmp``.

    Raises:
        UsageError: an unknown value.
    """
    key = ext.strip().lower().lstrip(".")
    if key == "auto":
        fmt = image.format if image.format in _CANONICAL_EXT else "PNG"
        if image.alpha is not None and fmt not in _ALPHA_FORMATS:
            fmt = "PNG"
        if image.bit_depth > 8 and fmt not in _16BIT_FORMATS:
            fmt = "PNG"
        if size is not None and max(size) > _MAX_SIDE[fmt]:
            fmt = "PNG"
        return _CANONICAL_EXT[fmt]
    fmt = OUTPUT_EXTENSIONS.get(key)
    if fmt is None:
        raise UsageError(f"unknown output extension {ext!r}: use auto, png, jpg, webp, tif or bmp")
    return _CANONICAL_EXT[fmt]


# --------------------------------------------------------------------------------------------------
# Network side


def to_tensor(pixels: np.ndarray, *, expand_gray: bool = True) -> torch.Tensor:
    """Turn pixels into a network input.

    Args:
        pixels: (H, W, C) or (H, W) array, uint8 (divided by 255), uint16 (divided by 65535) or
            float32 (taken as is, expected in [0, 1]).
        expand_gray: repeat a single grey channel into 3, as colour models expect. Remember
            ``pixels.shape[2]`` and pass it as ``channels`` to :func:`from_tensor` to get grey back.

    Returns:
        (1, C, H, W) float32 CPU tensor in [0, 1], C = 3 for grey input when ``expand_gray``.
    """
    arr = pixels[:, :, None] if pixels.ndim == 2 else pixels
    if arr.ndim != 3:
        raise ValueError(f"pixels must be (H, W) or (H, W, C), got shape {pixels.shape}")
    scale = _max_value(arr.dtype)
    x = arr.astype(np.float32)
    if scale != 1.0:
        np.divide(x, np.float32(scale), out=x)
    t = torch.from_numpy(x).permute(2, 0, 1).unsqueeze(0)
    if expand_gray and t.shape[1] == 1:
        t = t.expand(-1, 3, -1, -1)
    return t.contiguous()


def from_tensor(
    t: torch.Tensor, dtype: np.dtype[Any] | type = np.uint8, *, channels: int | None = None
) -> np.ndarray:
    """Turn a network output back into pixels.

    Args:
        t: (1, C, H, W) or (C, H, W) tensor in [0, 1], any float dtype and device. NaN becomes 0;
            values are clamped to [0, 1].
        dtype: ``np.uint8``, ``np.uint16`` (scaled by 255 / 65535 and rounded to nearest) or
            ``np.float32``.
        channels: the channel count wanted; 1 averages a 3-channel output back to grey.

    Returns:
        (H, W, C) contiguous array of ``dtype`` on the CPU.
    """
    if t.ndim == 4:
        if t.shape[0] != 1:
            raise ValueError(f"expected a batch of one, got shape {tuple(t.shape)}")
        t = t[0]
    if t.ndim != 3:
        raise ValueError(f"expected (1, C, H, W) or (C, H, W), got shape {tuple(t.shape)}")
    t = t.detach()
    if channels == 1 and t.shape[0] != 1:
        t = t.float().mean(dim=0, keepdim=True)
    dt = np.dtype(dtype)
    scale = _max_value(dt)
    c, h, w = t.shape
    out = np.empty((h, w, c), dtype=dt)
    # strip by strip: a full-size float copy of a large output would double the peak memory
    rows = max(1, (1 << 22) // max(1, w * c))
    for top in range(0, h, rows):
        x = torch.nan_to_num(t[:, top : top + rows].to("cpu", torch.float32), nan=0.0).clamp_(0.0, 1.0)
        if dt != np.float32:
            x = x.mul_(scale).round_()
        out[top : top + rows] = x.permute(1, 2, 0).numpy().astype(dt)
    return out


def upscale_alpha(alpha: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """Resize an alpha channel on its own path: bicubic (antialiased when shrinking), clamped.

    Args:
        alpha: (H, W) array, uint8, uint16 or float32 in [0, 1].
        out_h: output height.
        out_w: output width.

    Returns:
        (out_h, out_w) array of the same dtype. Memory: two float32 copies of the output.
    """
    if alpha.ndim != 2:
        raise ValueError(f"alpha must be (H, W), got shape {alpha.shape}")
    scale = _max_value(alpha.dtype)
    x = torch.from_numpy(alpha.astype(np.float32))[None, None]
    if scale != 1.0:
        x = x / scale
    y = F.interpolate(x, size=(out_h, out_w), mode="bicubic", align_corners=False, antialias=True)
    y = y.clamp_(0.0, 1.0)[0, 0]
    if alpha.dtype == np.float32:
        return np.ascontiguousarray(y.numpy())
    return y.mul_(scale).round_().to(torch.int32).numpy().astype(alpha.dtype)


def prepare_rgb_for_alpha(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Fill the colour under fully transparent pixels from nearby visible colour.

    Run this on the colour before it goes through the network (or any resize) so that the colour
    hidden under transparent pixels, often black, cannot bleed into the visible edge as a dark
    halo. Pixels with alpha > 0 keep their colour bit for bit; those with alpha = 0 get a smooth
    extrapolation of the visible colours around them, by a pull-push pyramid: halve the image
    repeatedly averaging colour weighted by alpha, then come back up, filling each level's
    uncovered pixels from the bilinearly upsampled coarser level.

    Args:
        rgb: (H, W, C) array, C = 1 or 3, uint8, uint16 or float32.
        alpha: (H, W) array of the same scale (uint8 / uint16 / float32 in [0, 1]).

    Returns:
        A new (H, W, C) array of ``rgb``'s dtype. Memory: about 1.5 float32 copies of ``rgb``.
    """
    if rgb.ndim != 3 or alpha.shape != rgb.shape[:2]:
        raise ValueError(f"rgb (H, W, C) and alpha (H, W) must match, got {rgb.shape} and {alpha.shape}")
    hole = alpha == 0
    out = rgb.copy()
    if not hole.any() or hole.all():
        return out
    c = torch.from_numpy(rgb.astype(np.float32)).permute(2, 0, 1)[None]
    w = torch.from_numpy(alpha.astype(np.float32) / np.float32(_max_value(alpha.dtype)))[None, None]
    fill = _pull_push_fill(c, w.clamp_(0.0, 1.0))[0].permute(1, 2, 0)
    if rgb.dtype != np.float32:
        fill = fill.round_().clamp_(0.0, _max_value(rgb.dtype))
    out[hole] = fill.numpy()[hole].astype(rgb.dtype)
    return out


def _pull_push_fill(c: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Colour for the pixels of weight 0.

    Args:
        c: (1, C, H, W) colour.
        w: (1, 1, H, W) weight in [0, 1] (alpha).

    Returns:
        (1, C, H, W): at weight-0 pixels, the colour pulled from the visible ones around them
        (elsewhere a smoothed colour, not meant to be used).
    """
    levels = [(c, w)]
    while c.shape[-2] > 1 or c.shape[-1] > 1:
        h, wd = c.shape[-2:]
        pad = (0, wd % 2, 0, h % 2)
        sum_cw = F.avg_pool2d(F.pad(c * w, pad), 2)
        sum_w = F.avg_pool2d(F.pad(w, pad), 2)
        c = torch.where(sum_w > 0, sum_cw / sum_w.clamp_min(1e-12), torch.zeros_like(sum_cw))
        w = (sum_w * 4).clamp_(max=1.0)
        levels.append((c, w))
    filled = levels[-1][0]
    for i in range(len(levels) - 2, -1, -1):
        c, w = levels[i]
        h, wd = c.shape[-2:]
        up = F.interpolate(filled, scale_factor=2, mode="bilinear", align_corners=False)[..., :h, :wd]
        # At the finest level the holes have weight 0, so the blend would just give `up`.
        filled = up if i == 0 else w * c + (1 - w) * up
    return filled
