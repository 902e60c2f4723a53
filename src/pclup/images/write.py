"""Writing image files: :func:`write_image`, what each format can hold, and the encoders.

JPEG, WebP, AVIF, BMP and 8-bit PNG are written by Pillow; 16-bit PNG and all TIFF by :mod:`.png_tiff`.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import numpy as np
from PIL import Image as PILImage
from PIL import features

from .._fs import atomic_write
from ..errors import ImageWriteError, UsageError
from .depth import max_value, to_uint8
from .exif import exif_for_write
from .formats import ALPHA_FORMATS, DEEP_FORMATS, MAX_PIXELS, MAX_SIDE, fits, format_for
from .image import Image
from .png_tiff import write_png, write_tiff
from .read import describe, os_cause

_MAX_JPEG_EXIF = 65533  # one APP1 marker


#: zlib level of 8-bit PNGs unless asked otherwise. Measured on a 12-megapixel upscaled photo (Pillow's
#: encoder, one core): level 1 0.58 s / 12.4 MB, 2 0.63 s / 11.9 MB, 3 0.86 s / 11.5 MB, 6 (Pillow's
#: default) 2.39 s / 10.7 MB: level 2 writes 11% more bytes than 6 in a quarter of the time.
PNG_LEVEL = 2


def write_image(
    image: Image,
    path: str | os.PathLike[str],
    *,
    format: str | None = None,
    quality: int = 95,
    overwrite: bool = True,
    parents: bool = False,
    png_level: int | None = None,
) -> list[str]:
    """Write an image atomically, keeping bit depth, alpha, ICC profile, EXIF and dpi where possible.

    The file goes through a temporary file ``.{name}.pclup-XXXXXXXXXXXX.tmp`` in the same folder and
    gets the permissions a new file would get (``0o666`` less the umask) or those of the file it
    replaces; with ``overwrite=False``, of two writers racing for one name only the first wins. On any
    failure the temporary file is removed and an existing ``path`` is left as it was: there is never a
    partial output (see :func:`pclup._fs.atomic_write`).

    Per format:

    * PNG: 8 or 16 bits, grey / grey+alpha / RGB / RGBA; ICC, EXIF (``eXIf``) and dpi kept.
    * TIFF: 8 or 16 bits, deflate-compressed with predictor; ICC, EXIF tags and dpi kept. 16-bit
      grey+alpha is written as 16-bit RGBA (Pillow, and so :func:`read_image`, cannot read 16-bit
      grey+alpha TIFF).
    * JPEG: quality ``quality``, 4:4:4 chroma (no subsampling), optimised Huffman tables; ICC, EXIF
      (if under 64 KiB) and dpi kept.
    * WebP: lossy at ``quality``, or lossless when ``quality`` is 100; ICC and EXIF kept; grey is
      stored as RGB; at most 16383 pixels a side.
    * AVIF: lossy at ``quality`` (4:4:4 chroma; grey stays grey), alpha kept; ICC and EXIF kept; at
      most 32768 pixels a side and 16384 x 16384 pixels in all (what libavif reads back).
    * BMP: no ICC or EXIF; dpi kept.

    JPEG, WebP, AVIF and BMP hold 8 bits: 16-bit samples become ``round(x * 255 / 65535)``. JPEG and BMP
    hold no alpha: the image is flattened onto white (what a viewer shows for a transparent area
    on a page); ``choose_extension(..., "auto")`` picks PNG for such images so this only happens
    when asked for. Every such loss is returned as a note.

    Args:
        image: the image; ``image.pixels`` (H, W, C) uint8/uint16, ``image.alpha`` (H, W) or None.
        path: the output file; its extension picks the format unless ``format`` is given.
        format: ``"png"``, ``"jpg"``/``"jpeg"``, ``"webp"``, ``"tif"``/``"tiff"``, ``"bmp"`` or ``"avif"``
            (any case), overriding the extension.
        quality: 1 to 100, for JPEG, WebP and AVIF.
        overwrite: replace an existing ``path``; when false, an existing one is left alone and
            :class:`FileExistsError` is raised.
        parents: create the missing folders above ``path`` (else the folder must exist).
        png_level: zlib level of a PNG, 0 (none, fastest) to 9 (smallest); None: :data:`PNG_LEVEL` for
            8 bits, 4 for 16 bits.

    Returns:
        One-line notes on what the format could not hold (empty when nothing was lost), for the
        caller to show or log.

    Raises:
        ImageWriteError: one line naming the file and the cause (unknown format, folder missing,
            a file where a folder should be, permission denied, disk full, image too large for the
            format, encoder failure).
        FileExistsError: ``overwrite`` is false and ``path`` exists (possibly written meanwhile by
            another program); nothing was changed.
        UsageError: ``quality`` or ``png_level`` out of range.
    """
    path = Path(path)
    if not isinstance(quality, int) or isinstance(quality, bool) or not 1 <= quality <= 100:
        raise UsageError(f"JPEG/WebP/AVIF quality must be a whole number from 1 to 100, got {quality!r}")
    if png_level is not None and (isinstance(png_level, bool) or png_level not in range(10)):
        raise UsageError(f"PNG level must be a whole number from 0 to 9, got {png_level!r}")
    fmt = format_for(path, format)
    if fmt == "AVIF" and not features.check("avif"):
        raise ImageWriteError(
            f"cannot write {path}: this Pillow {PILImage.__version__} has no AVIF codec "
            "(Pillow 11.3 or later has one)"
        )
    h, w = image.pixels.shape[:2]
    if not fits(fmt, (w, h)):
        area = f" and {MAX_PIXELS[fmt]} pixels in all" if fmt in MAX_PIXELS else ""
        raise ImageWriteError(
            f"cannot write {path}: {w}x{h} is too large for {fmt}, which holds at most "
            f"{MAX_SIDE[fmt]} pixels a side{area}; use PNG or TIFF"
        )
    pixels, alpha, notes = _fit_to_format(image, fmt)
    encoder = _ENCODERS[fmt]

    def write(fp: IO[bytes]) -> None:
        if fmt == "PNG":
            _encode_png(fp, image, pixels, alpha, quality, notes, level=png_level)
        else:
            encoder(fp, image, pixels, alpha, quality, notes)

    try:
        written = atomic_write(path, write, overwrite=overwrite, parents=parents)
    except ImageWriteError:
        raise
    except Exception as exc:  # noqa: BLE001 - every failure becomes one line; an interrupt goes on
        raise ImageWriteError(f"cannot write {path}: {_write_cause(exc, path.parent)}") from exc
    if not written:
        raise FileExistsError(errno.EEXIST, "the file exists", str(path))
    return notes


def _fit_to_format(image: Image, fmt: str) -> tuple[np.ndarray, np.ndarray | None, list[str]]:
    """Reduce pixels/alpha to what ``fmt`` can hold; return them with notes on what was lost."""
    pixels, alpha = image.pixels, image.alpha
    notes: list[str] = []
    if alpha is not None and fmt not in ALPHA_FORMATS:
        pixels = _flatten_on_white(pixels, alpha)
        alpha = None
        notes.append(f"{fmt} has no transparency: the image was flattened onto white")
    if pixels.dtype == np.uint16 and fmt not in DEEP_FORMATS:
        pixels = to_uint8(pixels)
        alpha = None if alpha is None else to_uint8(alpha)
        notes.append(f"{fmt} holds 8 bits per sample: 16-bit samples were rounded to 8 bits")
    if fmt == "WEBP" and pixels.shape[2] == 1:
        pixels = np.repeat(pixels, 3, axis=2)
        notes.append("WEBP has no grey mode: the grey image was stored as RGB")
    if fmt == "AVIF" and pixels.shape[2] == 1 and alpha is not None:
        pixels = np.repeat(pixels, 3, axis=2)
        notes.append("AVIF has no grey+alpha mode: the image was stored as RGBA")
    if fmt == "TIFF" and pixels.dtype == np.uint16 and pixels.shape[2] == 1 and alpha is not None:
        pixels = np.repeat(pixels, 3, axis=2)
        notes.append("16-bit grey with alpha is stored in TIFF as 16-bit RGBA")
    if fmt == "BMP":
        if image.icc_profile:
            notes.append("BMP output keeps no ICC profile")
        if image.exif:
            notes.append("BMP output keeps no EXIF data")
    return pixels, alpha, notes


def _flatten_on_white(pixels: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    m = max_value(pixels.dtype)
    a = alpha.astype(np.float32)[:, :, None] / np.float32(m)
    out = pixels.astype(np.float32) * a + np.float32(m) * (1.0 - a)
    return np.clip(np.rint(out), 0, m).astype(pixels.dtype)


def _write_cause(exc: Exception, folder: Path) -> str:
    if isinstance(exc, (FileNotFoundError, FileExistsError, NotADirectoryError)):
        blocker = _not_a_folder(folder)
        if blocker is not None:
            return f"{blocker} is {'a file, ' if blocker.is_file() else ''}not a folder"
    if isinstance(exc, FileNotFoundError):
        if not folder.is_dir():
            return f"the folder {folder} does not exist"
        return f"cannot create a file in {folder} (no such file or directory)"
    if isinstance(exc, IsADirectoryError):
        return "a folder of that name exists"
    if isinstance(exc, MemoryError):
        return "not enough memory to encode it"
    if isinstance(exc, (PermissionError, NotADirectoryError)) or (isinstance(exc, OSError) and exc.strerror):
        return os_cause(exc)
    return f"encoder failed ({describe(exc)})"


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


def _pil_image(pixels: np.ndarray, alpha: np.ndarray | None) -> PILImage.Image:
    arr = pixels if alpha is None else np.concatenate([pixels, alpha[:, :, None]], axis=2)
    if arr.shape[2] == 1:
        arr = arr[:, :, 0]
    return PILImage.fromarray(np.ascontiguousarray(arr))


def _encode_png(
    fp: IO[bytes], image: Image, pixels: np.ndarray, alpha: np.ndarray | None, quality: int, notes: list[str],
    level: int | None = None,
) -> None:
    exif = exif_for_write(image, pixels)
    if pixels.dtype == np.uint16:
        write_png(fp, pixels, alpha, icc_profile=image.icc_profile, exif=exif, dpi=image.dpi,
                  **({} if level is None else {"level": level}))
        return
    kwargs: dict[str, Any] = {"compress_level": PNG_LEVEL if level is None else level}
    if image.icc_profile:
        kwargs["icc_profile"] = image.icc_profile
    if exif:
        kwargs["exif"] = exif
    if image.dpi:
        kwargs["dpi"] = image.dpi
    _pil_image(pixels, alpha).save(fp, format="PNG", **kwargs)


#: The largest JPEG, in pixels, written with optimised Huffman tables (2-5% smaller files): libjpeg then
#: holds every DCT coefficient of the image before writing (6 bytes a pixel at 4:4:4, 576 MB for a 96 MP
#: image, more than the image itself), so larger ones are written in one pass with the standard tables.
JPEG_OPTIMIZE_MAX_PIXELS = 24_000_000


def _encode_jpeg(
    fp: IO[bytes], image: Image, pixels: np.ndarray, alpha: np.ndarray | None, quality: int, notes: list[str]
) -> None:
    optimize = pixels.shape[0] * pixels.shape[1] <= JPEG_OPTIMIZE_MAX_PIXELS
    kwargs: dict[str, Any] = {"quality": quality, "subsampling": 0, "optimize": optimize}
    if image.icc_profile:
        kwargs["icc_profile"] = image.icc_profile
    exif = exif_for_write(image, pixels)
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
    exif = exif_for_write(image, pixels)
    if exif:
        kwargs["exif"] = exif
    _pil_image(pixels, alpha).save(fp, format="WEBP", **kwargs)


def _encode_avif(
    fp: IO[bytes], image: Image, pixels: np.ndarray, alpha: np.ndarray | None, quality: int, notes: list[str]
) -> None:
    kwargs: dict[str, Any] = {"quality": quality}
    if pixels.shape[2] == 3:
        kwargs["subsampling"] = "4:4:4"
    if image.icc_profile:
        kwargs["icc_profile"] = image.icc_profile
    exif = exif_for_write(image, pixels)
    if exif:
        kwargs["exif"] = exif
    _pil_image(pixels, alpha).save(fp, format="AVIF", **kwargs)


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
    exif = exif_for_write(image, pixels)
    write_tiff(fp, pixels, alpha, icc_profile=image.icc_profile, exif=exif, dpi=image.dpi, notes=notes)


_ENCODERS: dict[str, Callable[..., None]] = {
    "PNG": _encode_png,
    "JPEG": _encode_jpeg,
    "WEBP": _encode_webp,
    "BMP": _encode_bmp,
    "TIFF": _encode_tiff,
    "AVIF": _encode_avif,
}
