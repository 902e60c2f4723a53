"""JPEG outputs use optimised Huffman tables up to a size; larger ones are written in one pass (libjpeg's
optimisation holds every coefficient of the image in memory)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage

from pclup import images
from pclup.images import write as write_module


def _photo() -> images.Image:
    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[0:96, 0:128]
    pixels = np.stack([yy * 2, xx * 2, (yy + xx)], -1) + rng.integers(0, 40, (96, 128, 3))
    return images.Image(pixels=np.clip(pixels, 0, 255).astype(np.uint8), format="PNG")


def test_large_jpegs_skip_the_optimisation_and_decode_the_same(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    image = _photo()
    images.write_image(image, tmp_path / "small.jpg", quality=90)
    monkeypatch.setattr(write_module, "JPEG_OPTIMIZE_MAX_PIXELS", 96 * 128 - 1)
    images.write_image(image, tmp_path / "large.jpg", quality=90)
    small, large = (tmp_path / "small.jpg").read_bytes(), (tmp_path / "large.jpg").read_bytes()
    assert len(small) < len(large)  # optimised tables: a smaller file
    with PILImage.open(tmp_path / "small.jpg") as a, PILImage.open(tmp_path / "large.jpg") as b:
        assert np.array_equal(np.asarray(a), np.asarray(b))  # the same pixels either way
