"""PNG compression level: a faster default, --png-level for smaller files, pixels unchanged."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image as PILImage

from pclup import images
from pclup.errors import UsageError
from pclup.images.write import PNG_LEVEL


def _photo(dtype: type = np.uint8) -> images.Image:
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:96, 0:128]
    base = np.stack([yy * 2, xx * 2, (yy + xx)], -1).astype(np.float64) + rng.normal(0, 3, (96, 128, 3))
    top = 65535 if dtype == np.uint16 else 255
    pixels = np.clip(base * top / 255, 0, top).astype(dtype)
    return images.Image(pixels=pixels, format="PNG")


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_every_level_keeps_the_pixels_and_higher_levels_write_smaller_files(tmp_path, dtype) -> None:
    image = _photo(dtype)
    sizes = {}
    for level in (0, 1, PNG_LEVEL, 9):
        out = tmp_path / f"l{level}.png"
        images.write_image(image, out, png_level=level)
        assert np.array_equal(images.read_image(out).pixels, image.pixels)
        sizes[level] = out.stat().st_size
    assert sizes[0] > sizes[1] >= sizes[9]


def test_the_default_level_is_png_level(tmp_path) -> None:
    image = _photo()
    images.write_image(image, tmp_path / "default.png")
    images.write_image(image, tmp_path / "explicit.png", png_level=PNG_LEVEL)
    assert (tmp_path / "default.png").read_bytes() == (tmp_path / "explicit.png").read_bytes()
    PILImage.fromarray(image.pixels).save(tmp_path / "pillow.png", compress_level=PNG_LEVEL)
    assert (tmp_path / "default.png").stat().st_size == (tmp_path / "pillow.png").stat().st_size


@pytest.mark.parametrize("bad", [-1, 10, True, 2.5])
def test_levels_out_of_range_are_refused_before_writing(tmp_path, bad) -> None:
    with pytest.raises(UsageError, match="PNG level must be a whole number from 0 to 9"):
        images.write_image(_photo(), tmp_path / "x.png", png_level=bad)
    assert list(tmp_path.iterdir()) == []


def test_upscale_takes_png_level(tmp_path) -> None:
    from typer.testing import CliRunner

    from pclup.cli import app

    PILImage.fromarray(_photo().pixels[:24, :20]).save(tmp_path / "in.png")
    sizes = []
    for level in ("0", "9"):
        out = tmp_path / f"out{level}.png"
        run = CliRunner().invoke(app, ["upscale", str(tmp_path / "in.png"), "-s", "2", "-o", str(out),
                                       "--png-level", level, "-q"])
        assert run.exit_code == 0, run.output
        sizes.append(out.stat().st_size)
    assert sizes[0] > sizes[1]
    run = CliRunner().invoke(app, ["upscale", str(tmp_path / "in.png"), "--png-level", "12"])
    assert run.exit_code == 2
