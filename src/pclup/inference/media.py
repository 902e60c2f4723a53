"""What the upscale command checks before any work, without torch: video containers and encoder settings,
the tile setting. (The modules that do the work import torch; these checks answer at once.)"""

from __future__ import annotations

from pathlib import Path

from ..errors import UsageError

#: The smallest tile side (pixels) a ``--tile`` may ask for.
MIN_TILE = 16
#: Video containers pclup reads and writes (an output keeps its input's container).
VIDEO_SUFFIXES: tuple[str, ...] = (".mp4", ".mkv", ".mov", ".webm", ".avi")
#: The extra that upscales videos, as users install it.
VIDEO_EXTRA = "pip install 'pclup[video]'"
#: Pixel formats an output video can have (``rgb24``: x264's RGB encoder, no chroma subsampling).
PIX_FMTS: tuple[str, ...] = ("yuv420p", "yuv422p", "yuv444p", "rgb24")
DEFAULT_CRF = 18


def is_video(path: Path) -> bool:
    """Whether ``path`` is named as a video pclup reads (by its suffix)."""
    return path.suffix.lower() in VIDEO_SUFFIXES


def available() -> bool:
    """Whether the extra ``pclup[video]`` (imageio-ffmpeg) is installed."""
    try:
        import imageio_ffmpeg  # noqa: F401
    except ImportError:
        return False
    return True


def check_settings(pix_fmt: str, crf: int) -> None:
    """Refuse a ``--pix-fmt`` or ``--crf`` pclup does not encode."""
    if pix_fmt not in PIX_FMTS:
        raise UsageError(f"--pix-fmt '{pix_fmt}' is not one of {', '.join(PIX_FMTS)}")
    if not 0 <= crf <= 51:
        raise UsageError(f"--crf {crf} must be between 0 (lossless) and 51")


def parse_tile(tile: int | str) -> int | str:
    """A tile setting: ``"auto"``, 0 (no tiling) or a side of at least ``MIN_TILE`` pixels."""
    if tile == "auto":
        return tile
    try:
        side = int(tile)
    except ValueError:
        raise UsageError(f"--tile '{tile}' must be 'auto', 0 or a number of pixels") from None
    if side != 0 and side < MIN_TILE:
        raise UsageError(f"--tile {side} is too small: at least {MIN_TILE} pixels, 0 (no tiling) or 'auto'")
    return side
