"""The file formats pclup reads and writes, what each can hold, and which one an output gets."""

from __future__ import annotations

from pathlib import Path

from ..errors import ImageWriteError, UsageError
from .image import Image

#: Formats :func:`~pclup.images.read_image` accepts (Pillow format names; a multi-picture JPEG, which
#: Pillow calls MPO, counts as JPEG). HEIF (HEIC) needs the optional extra ``pclup[heif]`` (pillow-heif).
READ_FORMATS: tuple[str, ...] = ("PNG", "JPEG", "WEBP", "TIFF", "BMP", "AVIF", "GIF", "HEIF")

#: Output extensions (without the dot) and the format each one writes.
OUTPUT_EXTENSIONS: dict[str, str] = {
    "png": "PNG",
    "jpg": "JPEG",
    "jpeg": "JPEG",
    "webp": "WEBP",
    "tif": "TIFF",
    "tiff": "TIFF",
    "bmp": "BMP",
    "avif": "AVIF",
}

#: File suffixes (lower case, with the dot) of the files pclup writes.
WRITE_SUFFIXES: tuple[str, ...] = tuple(f".{ext}" for ext in OUTPUT_EXTENSIONS)
#: File suffixes of the files pclup reads, and the format each suffix names: those it writes, GIF,
#: and HEIC/HEIF (with the extra).
READ_SUFFIXES: dict[str, str] = {
    **{f".{ext}": fmt for ext, fmt in OUTPUT_EXTENSIONS.items()},
    ".gif": "GIF",
    ".heic": "HEIF",
    ".heif": "HEIF",
}
#: File suffixes of images pclup reads (a folder contributes these files).
IMAGE_SUFFIXES: tuple[str, ...] = tuple(READ_SUFFIXES)
#: Files that come with photos and are not images (XMP and Apple edit sidecars, JSON and text notes):
#: a folder run passes over them without a word.
SIDECAR_SUFFIXES = frozenset({".xmp", ".aae", ".json", ".txt"})
#: The extra that reads HEIC/HEIF, as users install it.
HEIF_EXTRA = "pip install 'pclup[heif]'"

_CANONICAL_EXT = {"PNG": "png", "JPEG": "jpg", "WEBP": "webp", "TIFF": "tif", "BMP": "bmp", "AVIF": "avif"}
ALPHA_FORMATS = frozenset({"PNG", "WEBP", "TIFF", "AVIF"})
DEEP_FORMATS = frozenset({"PNG", "TIFF"})  # 16 bits per sample (Pillow writes AVIF at 8 bits)
#: Largest width or height each format can store. AVIF: libavif, which Pillow uses, refuses to read
#: a side over 32768 pixels (an AV1 encoder writes one, but nothing could open it).
MAX_SIDE = {
    "WEBP": 16383, "JPEG": 65535, "BMP": 2**31 - 1, "PNG": 2**31 - 1, "TIFF": 2**32 - 1, "AVIF": 32768,
}
#: Largest width x height a format can store, where it has such a bound (libavif's default decoder
#: limit, 16384 x 16384 pixels).
MAX_PIXELS = {"AVIF": 16384 * 16384}
# The most a file of each format can bring: (alpha, bits per sample). A BMP can hold alpha (32-bit).
# Pillow reads AVIF at 8 bits; a HEIC can bring 10 or 12 bits.
_MOST_HELD = {
    "PNG": (True, 16), "JPEG": (False, 8), "WEBP": (True, 8), "TIFF": (True, 16), "BMP": (True, 8),
    "AVIF": (True, 8), "GIF": (True, 8), "HEIF": (True, 16),
}


def fits(fmt: str, size: tuple[int, int]) -> bool:
    """Whether an image of ``size`` (width, height) can be stored in ``fmt``."""
    return max(size) <= MAX_SIDE[fmt] and size[0] * size[1] <= MAX_PIXELS.get(fmt, size[0] * size[1])


def image_files(folder: Path) -> list[Path]:
    """Images anywhere below ``folder`` (hidden files and folders skipped), sorted by relative path.

    A symbolic link is followed only when its target lies inside ``folder`` too: a link out of the folder
    (to another user's files, or to a device) is left out.
    """
    root = folder.resolve()

    def inside(p: Path) -> bool:
        if not p.is_symlink():  # (rglob does not descend into linked folders)
            return True
        try:
            p.resolve(strict=True).relative_to(root)
        except (OSError, RuntimeError, ValueError):
            return False
        return True

    return sorted(
        p
        for p in folder.rglob("*")
        if p.suffix.lower() in IMAGE_SUFFIXES
        and not any(part.startswith(".") for part in p.relative_to(folder).parts)
        and p.is_file()
        and inside(p)
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
            f"cannot write {path}: unknown image {what}; use png, jpg, webp, tif, bmp or avif"
        )
    return fmt


def choose_extension(source: Image | str | None, ext: str, *, size: tuple[int, int] | None = None) -> str:
    """Pick the output extension for ``--ext``.

    ``auto`` keeps the input's format (``jpg`` for JPEG input, ``tif`` for TIFF) unless it
    cannot hold the image: alpha into JPEG/BMP, 16 bits into JPEG/WebP/BMP/AVIF, or an output
    ``size`` beyond what WebP (16383 a side), JPEG (65535) or AVIF (32768 a side, 16384 x 16384
    pixels) can store; then it picks ``png``. GIF and HEIC input, which pclup does not write,
    gets ``png`` (16-bit where a HEIC has more than 8 bits). An explicit value is
    kept even if it loses something (:func:`~pclup.images.write_image` reports what).

    Args:
        source: the input image (its format, alpha and bit depth are used); or, before it is
            decoded, only its format (one of :data:`READ_FORMATS`), when ``auto`` assumes the most
            a file of that format can hold (BMP: alpha, so ``png``); or ``None``, an unknown format
            (``png``).
        ext: ``auto``, ``png``, ``jpg``/``jpeg``, ``webp``, ``tif``/``tiff``, ``bmp`` or ``avif``; any case,
            leading dot allowed.
        size: the output (width, height), if known.

    Returns:
        The extension without the dot: ``png``, ``jpg``, ``webp``, ``tif``, ``bmp`` or ``avif``.

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
        if size is not None and not fits(fmt, size):
            fmt = "PNG"
        return _CANONICAL_EXT[fmt]
    named = OUTPUT_EXTENSIONS.get(key)
    if named is None:
        raise UsageError(f"unknown output extension {ext!r}: use auto, png, jpg, webp, tif, bmp or avif")
    return _CANONICAL_EXT[named]
