"""The decoded image: pixels, alpha and the metadata written back with them."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np


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
