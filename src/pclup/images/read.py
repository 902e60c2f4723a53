"""Reading image files: :func:`read_image` and its decoders.

Pillow decodes everything: PNG, JPEG, WebP, TIFF and BMP, including 16-bit grey (``I;16``). Pillow has
no 16-bit colour mode, so for 16-bit RGB / RGBA PNG and TIFF files it is run twice over the same
compressed data with two raw modes, one keeping the high byte of every sample and one the low byte
(Pillow's ``;16B`` and ``;16L`` unpackers), and the two are joined (16-bit grey+alpha PNG takes one
pass, its 4 bytes a pixel read as they are). Pillow's C code still does all the decompression and PNG
un-filtering, so this is fast and exact; it relies on Pillow's tile descriptors, which the tests pin
down against independent encoders.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import os
import stat
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

import numpy as np
from PIL import Image as PILImage
from PIL import ImageFile, PngImagePlugin, UnidentifiedImageError, features

from ..errors import ImageReadError
from .depth import max_value
from .exif import orient, read_dpi, read_exif
from .formats import HEIF_EXTRA, READ_FORMATS
from .image import Image

_SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"\xff\xd8\xff", "JPEG"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"II+\x00", "TIFF"),
    (b"MM\x00+", "TIFF"),
    (b"BM", "BMP"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
)
# ISO media (HEIF) brands of HEVC-coded images: such a file goes to pillow-heif; AVIF to Pillow.
_HEIF_BRANDS = frozenset({b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"hevm", b"hevs"})
_AVIF_BRANDS = frozenset({b"avif", b"avis"})
_PIL_FORMATS = [f for f in READ_FORMATS if f != "HEIF"]  # HEIF: only after pillow-heif registers it
# Formats whose files can be animations: pclup refuses those, as it upscales still images.
_ANIMATED = {"GIF": "GIF", "WEBP": "WebP", "PNG": "PNG (APNG)", "AVIF": "AVIF"}
_heif_registered = False
# Largest PNG metadata chunk (ICC profile, compressed text) decoded. Pillow's own bound, 1 MiB, refuses
# the ICC profiles of some printers and scanners (several MB); 32 MiB still stops a zip bomb hidden in
# a chunk. Pillow's total for text chunks (PngImagePlugin.MAX_TEXT_MEMORY) applies as before.
_MAX_PNG_CHUNK = 32 << 20
PngImagePlugin.MAX_TEXT_CHUNK = max(PngImagePlugin.MAX_TEXT_CHUNK, _MAX_PNG_CHUNK)


def read_image(path: str | os.PathLike[str]) -> Image:
    """Read an image file, upright and at its full bit depth.

    Reads PNG (1/2/4/8/16-bit, grey, grey+alpha, palette, RGB, RGBA, interlaced), JPEG (grey, RGB,
    CMYK), WebP, TIFF (8/16-bit grey, RGB, RGBA; palette, CMYK), BMP, AVIF (at 8 bits, as Pillow
    decodes it), GIF (still; palette and transparency become RGB(A)) and, with the optional extra
    ``pclup[heif]`` (pillow-heif, registered with Pillow the first time a HEIC file is met),
    HEIC/HEIF, 16-bit where the file has more than 8 bits. An animated GIF, WebP, PNG (APNG) or
    AVIF is refused; the first page of a multi-page TIFF or multi-picture JPEG is read. EXIF
    orientation is applied to pixels and alpha (``PIL.ImageOps.exif_transpose`` semantics) and then
    reset to 1; for orientations 5 to 8 the x and y dpi swap too.

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
            image, truncated, corrupt, larger than :data:`~pclup.images.MAX_IMAGE_PIXELS`, unsupported layout.
    """
    path = Path(path)
    try:
        st = os.stat(path)
    except OSError as exc:
        raise ImageReadError(f"cannot read {path}: {os_cause(exc)}") from exc
    if stat.S_ISDIR(st.st_mode):
        raise ImageReadError(f"cannot read {path}: it is a folder, not an image file")
    if st.st_size == 0:
        raise ImageReadError(f"cannot read {path}: empty file (0 bytes)")
    try:
        with open(path, "rb") as fp:
            head = fp.read(64)
    except OSError as exc:
        raise ImageReadError(f"cannot read {path}: {os_cause(exc)}") from exc

    with warnings.catch_warnings():
        # Pillow warns between its pixel limit and twice that; the check that matters is ours. Its
        # other warnings (odd EXIF, palette transparency) are not the user's business here.
        warnings.simplefilter("ignore", PILImage.DecompressionBombWarning)
        warnings.filterwarnings("ignore", category=UserWarning, module=r"(PIL|pillow_heif)(\.|$)")
        return _read(path, head)


def _read(path: Path, head: bytes) -> Image:
    heif = _is_heif(head)
    if heif:
        _register_heif(path)
    formats = ["HEIF"] if heif else _PIL_FORMATS
    try:
        with _open_pil(path, formats) as pil:
            _check_size(path, pil.size)
            _check_still(path, pil)
            return _decode(path, pil)
    except ImageReadError:
        raise
    except UnidentifiedImageError as exc:
        looks_like = next((fmt for sig, fmt in _SIGNATURES if head.startswith(sig)), None)
        if looks_like is None and head[:4] == b"RIFF" and head[8:12] == b"WEBP":
            looks_like = "WEBP"
        if looks_like is None and _iso_brands(head) & _AVIF_BRANDS:
            looks_like = "AVIF"
        if heif:
            looks_like = "HEIC/HEIF"
        if looks_like == "AVIF" and not features.check("avif"):
            cause = f"this Pillow {PILImage.__version__} has no AVIF codec (Pillow 11.3 or later has one)"
        elif looks_like is not None:
            cause = f"truncated or corrupt file: it starts like a {looks_like} but its header is unreadable"
        else:
            cause = "not an image, or not a supported format (PNG, JPEG, WebP, TIFF, BMP, AVIF, GIF, HEIC)"
        raise ImageReadError(f"cannot read {path}: {cause}") from exc
    except PILImage.DecompressionBombError as exc:
        detail = " ".join(str(exc).split()).rstrip(".")
        raise ImageReadError(
            f"cannot read {path}: image too large, a possible decompression bomb ({detail}; "
            "see PIL.Image.MAX_IMAGE_PIXELS)"
        ) from exc
    except Exception as exc:  # noqa: BLE001 - every decoder failure becomes one line
        raise ImageReadError(f"cannot read {path}: {_decode_cause(exc)}") from exc


def _iso_brands(head: bytes) -> set[bytes]:
    """The major and compatible brands of an ISO media file's ``ftyp`` box, as far as ``head`` goes."""
    if head[4:8] != b"ftyp":
        return set()
    end = min(max(int.from_bytes(head[:4], "big"), 16), len(head))
    return {head[8:12]} | {head[i : i + 4] for i in range(16, end - 3, 4)}


def _is_heif(head: bytes) -> bool:
    """Whether the file is a HEVC-coded HEIF (HEIC), by its brands; AVIF is not."""
    return head[8:12] not in _AVIF_BRANDS and bool(_iso_brands(head) & _HEIF_BRANDS)


def _register_heif(path: Path) -> Any:
    """pillow-heif, registered with Pillow on first use.

    Raises:
        ImageReadError: the optional extra is not installed.
    """
    global _heif_registered
    try:
        heif = importlib.import_module("pillow_heif")
    except ImportError as exc:
        raise ImageReadError(
            f"cannot read {path}: HEIC/HEIF images need the optional extra pillow-heif ({HEIF_EXTRA})"
        ) from exc
    if not _heif_registered:
        heif.register_heif_opener()
        _heif_registered = True
    return heif


def _check_still(path: Path, pil: PILImage.Image) -> None:
    """Refuse an animation: which frame to upscale, and into what, is not pclup's to guess."""
    name = _ANIMATED.get(pil.format or "")
    if name is not None and getattr(pil, "is_animated", False):
        raise ImageReadError(f"cannot read {path}: animated {name}: pclup upscales still images")


@contextlib.contextmanager
def _open_pil(path: Path, formats: list[str] = _PIL_FORMATS) -> Iterator[ImageFile.ImageFile]:
    PILImage.init()
    im = PILImage.open(path, formats=[f for f in formats if f in PILImage.OPEN])  # AVIF: Pillow 11.2 on
    try:
        yield im
    finally:
        im.close()


def _check_size(path: Path, size: tuple[int, int]) -> None:
    w, h = size
    if w <= 0 or h <= 0:
        raise ImageReadError(f"cannot read {path}: corrupt header (size {w}x{h})")
    limit = _pixel_limit()
    if limit is not None and w * h > limit:
        raise ImageReadError(f"cannot read {path}: {_too_large((w, h), limit)}")


def _pixel_limit() -> int | None:
    """The package's ``MAX_IMAGE_PIXELS``, read at each call: that is where callers change it."""
    from . import MAX_IMAGE_PIXELS

    return MAX_IMAGE_PIXELS


def _too_large(size: tuple[int, int], limit: int) -> str:
    return (
        f"image too large ({size[0]}x{size[1]} = {size[0] * size[1]} pixels): over the limit of "
        f"{limit} pixels (pclup.images.MAX_IMAGE_PIXELS), a guard against decompression bombs"
    )


def os_cause(exc: OSError) -> str:
    """A file-system error in a few plain words ("permission denied", "no such file")."""
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
    return f"corrupt image data ({describe(exc)})"


def describe(exc: BaseException) -> str:
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
    exif, orientation = read_exif(pil, fmt)
    dpi = read_dpi(info)
    if orientation != 1:
        pixels = orient(pixels, orientation)
        alpha = None if alpha is None else orient(alpha, orientation)
        if dpi is not None and orientation >= 5:
            dpi = (dpi[1], dpi[0])
    # Pillow hands out read-only views of its buffers: give the caller arrays it can modify.
    need: Final = ("C_CONTIGUOUS", "ALIGNED", "WRITEABLE")
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
    if _deep_heif(pil):
        return {"L": "I;16", "LA": "LA;16"}.get(pil.mode, f"{pil.mode};16")
    rawmode = _tile_rawmode(pil) or ""
    if pil.mode in ("RGB", "RGBA") and ";16" in rawmode:
        return "LA;16" if rawmode.startswith("LA") else f"{pil.mode};16"
    return pil.mode


def _decode_pixels(
    path: Path, pil: PILImage.Image, fmt: str
) -> tuple[np.ndarray, np.ndarray | None, bool]:
    """Decode to ((H, W, C) pixels, (H, W) alpha or None, whether the ICC no longer applies)."""
    mode = pil.mode
    if _deep_heif(pil):
        return _split_alpha(_decode_deep_heif(path, int(pil.info["bit_depth"]))) + (False,)
    if fmt in ("PNG", "TIFF") and mode in ("RGB", "RGBA") and isinstance(pil, ImageFile.ImageFile):
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


def _deep_heif(pil: PILImage.Image) -> bool:
    depth = pil.info.get("bit_depth")
    return pil.format == "HEIF" and isinstance(depth, int) and 8 < depth <= 16


def _decode_deep_heif(path: Path, bits: int) -> np.ndarray:
    """A HEIC of 10 or 12 bits as (H, W, C) uint16 over the full 16-bit range. pillow-heif hands
    Pillow 8 bits, so its own reader is asked for the samples (shifted to the top of 16 bits)."""
    heif = _register_heif(path)
    arr = np.asarray(heif.open_heif(path, convert_hdr_to_8bit=False))
    if arr.dtype != np.uint16:
        raise ImageReadError(f"cannot read {path}: unsupported {bits}-bit HEIF layout ({arr.dtype})")
    if arr.ndim == 2:
        arr = arr[:, :, None]
    top = (1 << bits) - 1
    samples = (arr >> (16 - bits)).astype(np.uint32)
    return ((samples * 65535 + top // 2) // top).astype(np.uint16)


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
    alpha = np.full(pixels.shape[:2], int(max_value(pixels.dtype)), dtype=pixels.dtype)
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


def _set_rawmode(pil: ImageFile.ImageFile, rawmode: str, mode: str | None = None) -> None:
    new_tiles: list[Any] = []
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


def _decode_16bit_colour(path: Path, pil: ImageFile.ImageFile, rawmode: str) -> np.ndarray:
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
