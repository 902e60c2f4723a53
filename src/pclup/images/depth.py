"""Sample depths: the value of full intensity, 16 bits to 8 (NumPy only: reading and writing files does
not need torch)."""

from __future__ import annotations

from typing import Any

import numpy as np


def max_value(dtype: np.dtype[Any] | type) -> float:
    """The value of full intensity: 255 for ``uint8``, 65535 for ``uint16``, 1 for ``float32``."""
    dt = np.dtype(dtype)
    if dt == np.uint8:
        return 255.0
    if dt == np.uint16:
        return 65535.0
    if dt == np.float32:
        return 1.0
    raise ValueError(f"unsupported sample type {dt}: use uint8, uint16 or float32")


def to_uint8(arr: np.ndarray) -> np.ndarray:
    """uint16 -> uint8 as round(x * 255 / 65535), exactly (x / 257 is never halfway)."""
    return ((arr.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
