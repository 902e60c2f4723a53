"""Image input and output for ``pclup upscale``, and the network side of images.

Reading gives an :class:`Image`: pixels as a NumPy array of shape (H, W, C) with C = 1 (grey) or
C = 3 (colour), dtype ``uint8`` or ``uint16``, plus the alpha channel on its own (H, W), the ICC
profile, the EXIF block, the dots per inch and where it came from. Writing puts the same things
back, atomically.

The file side: :mod:`.read` (decoding), :mod:`.write` (what each format holds, Pillow's encoders),
:mod:`.png_tiff` (pclup's own 16-bit PNG and TIFF encoders), :mod:`.exif` (EXIF, orientation, dpi),
:mod:`.formats` (the formats, their suffixes, the output format). The array side: :mod:`.arrays`
(tensors, alpha, 16 to 8 bits).

Which library does what: Pillow decodes everything (PNG, JPEG, WebP, TIFF, BMP, AVIF and GIF, 16-bit
colour included; HEIC through pillow-heif, the optional extra ``pclup[heif]``) and writes JPEG, WebP,
AVIF, BMP and 8-bit PNG; 16-bit PNG and all TIFF are written here, the
TIFF tags serialised by Pillow. imageio is not needed and tifffile is not used.

Colour management: pixels are kept in the colour space they come in and the ICC profile is written
back unchanged; the only conversion is CMYK to RGB (through the embedded profile with LittleCMS
when there is one, else Pillow's ``(255 - C) * (255 - K) / 255`` formula).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .depth import to_uint8
from .formats import IMAGE_SUFFIXES, OUTPUT_EXTENSIONS, READ_FORMATS, choose_extension, image_files
from .image import Image
from .read import read_image
from .write import write_image

#: Largest input, in pixels (width × height), that :func:`read_image` decodes. The size is checked
#: from the file header, before any pixel memory is allocated. ``None`` switches the check off.
#: Pillow's own hard limit, 2 × ``PIL.Image.MAX_IMAGE_PIXELS`` (about 179 million pixels by
#: default), applies as well: raise that one too to go beyond it.
MAX_IMAGE_PIXELS: int | None = 178_956_970

# The tensor side needs torch, which takes a second or more to import: loaded on first use, so that reading,
# writing and listing images (and the commands that only check their inputs) do not pay for it.
_TENSOR_SIDE = ("from_tensor", "prepare_rgb_for_alpha", "quantize_into", "to_tensor", "upscale_alpha")

if TYPE_CHECKING:
    from .arrays import from_tensor, prepare_rgb_for_alpha, quantize_into, to_tensor, upscale_alpha


def __getattr__(name: str) -> Any:
    if name in _TENSOR_SIDE:
        from . import arrays

        value = getattr(arrays, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'pclup.images' has no attribute '{name}'")

__all__ = [
    "IMAGE_SUFFIXES",
    "MAX_IMAGE_PIXELS",
    "OUTPUT_EXTENSIONS",
    "READ_FORMATS",
    "Image",
    "choose_extension",
    "from_tensor",
    "quantize_into",
    "image_files",
    "prepare_rgb_for_alpha",
    "read_image",
    "to_tensor",
    "to_uint8",
    "upscale_alpha",
    "write_image",
]
