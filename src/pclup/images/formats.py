"""The file formats pclup reads and writes, what each can hold, and which one an output gets."""

from __future__ import annotations

from pathlib import Path

from ..errors import ImageWriteError, UsageError
from .image import Image

#: Formats :func:`~pclup.images.read_image` accepts (Pillow format names; a multi-picture JPEG, which
#: Pillow calls MPO, counts as JPEG).
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

#: File suffixes of images, lower case, with the dot: those of the formats pclup reads, which are the
#: ones it writes.
IMAGE_SUFFIXES: tuple[str, ...] = tuple(f".{ext}" for ext in OUTPUT_EXTENSIONS)

_CANONICAL_EXT = {"PNG": "png", "JPEG": "jpg", "WEBP": "webp", "TIFF": "tif", "BMP": "bmp"}
ALPHA_FORMATS = frozenset({"PNG", "WEBP", "TIFF"})
DEEP_FORMATS = frozenset({"PNG", "TIFF"})  # 16 bits per sample
#: Largest width or height each format can store.
MAX_SIDE = {"WEBP": 16383, "JPEG": 65535, "BMP": 2**31 - 1, "PNG": 2**31 - 1, "TIFF": 2**32 - 1}
# The most a file of each format can bring: (alpha, bits per sample). A BMP can hold alpha (32-bit).
_MOST_HELD = {"PNG": (True, 16), "JPEG": (False, 8), "WEBP": (True, 8), "TIFF": (True, 16), "BMP": (True, 8)}


def image_files(folder: Path) -> list[Path]:
    """Images anywhere below ``folder`` (hidden files and folders skipped), sorted by relative path."""
    return sorted(
        p
        for p in folder.rglob("*")
        if p.is_file()
        and p.suffix.lower() in IMAGE_SUFFIXES
        and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )


def format_for(path: Path, format: str | None) -> str:
    """The format to write ``path`` in: ``format`` (an extension) if given, else the extension of ``path``.

    Raises:
        ImageWriteError: an unknown format or extension.
    """
    key = (format if format is not None else path.suffix).lower().lstrip(".")
    fmt = OUTPUT_EXTENSIONS.get(key)
    if fmt is None:
        what = f"format {format!r}" if format is not None else f"extension {path.suffix or '(none)'!r}"
        raise ImageWriteError(
            f"cannot write {path}: unknown image {what}; use png, jpg, webp, tif or bmp"
        )
    return fmt


def choose_extension(source: Image | str | None, ext: str, *, size: tuple[int, int] | None = None) -> str:
    """Pick the output extension for ``--ext``.

    ``auto`` keeps the input's format (``jpg`` for JPEG input, ``tif`` for TIFF) unless it
    cannot hold the image: alpha into JPEG/BMP, 16 bits into JPEG/WebP/BMP, or an output ``size``
    beyond what WebP (16383) or JPEG (65535) can store; then it picks ``png``. An explicit value is
    kept even if it loses something (:func:`~pclup.images.write_image` reports what).

    Args:
        source: the input image (its format, alpha and bit depth are used); or, before it is
            decoded, only its format (one of :data:`READ_FORMATS`), when ``auto`` assumes the most
            a file of that format can hold (BMP: alpha, so ``png``); or ``None``, an unknown format
            (``png``).
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
        if isinstance(source, Image):
            fmt, alpha, bits = source.format, source.alpha is not None, source.bit_depth
        else:
            fmt = source or ""
            alpha, bits = _MOST_HELD.get(fmt, (False, 8))
        if fmt not in _CANONICAL_EXT:
            fmt = "PNG"
        if alpha and fmt not in ALPHA_FORMATS:
            fmt = "PNG"
        if bits > 8 and fmt not in DEEP_FORMATS:
            fmt = "PNG"
        if size is not None and max(size) > MAX_SIDE[fmt]:
            fmt = "PNG"
        return _CANONICAL_EXT[fmt]
    named = OUTPUT_EXTENSIONS.get(key)
    if named is None:
        raise UsageError(f"unknown output extension {ext!r}: use auto, png, jpg, webp, tif or bmp")
    return _CANONICAL_EXT[named]
