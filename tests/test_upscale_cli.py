"""``pclup upscale`` end to end: files, folders, globs, metadata, bad inputs, exit codes."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage
from typer.testing import CliRunner

from pclup import images
from pclup.cli import app

runner = CliRunner()


def _png(path: Path, size: tuple[int, int] = (12, 10), mode: str = "RGB") -> Path:
    rng = np.random.default_rng(0)
    arr = rng.integers(0, 256, (size[1], size[0], len(mode)), dtype=np.uint8)
    PILImage.fromarray(arr.squeeze() if mode == "L" else arr, mode).save(path)
    return path


def _bomb(path: Path) -> Path:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 10)) + chunk(b"IEND", b""))
    return path


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pclup", "upscale", *args], capture_output=True, text=True, env=os.environ.copy())


def test_one_file_default_output_next_to_it(model_dir: Path, tmp_path: Path) -> None:
    src = _png(tmp_path / "photo.png")
    result = runner.invoke(app, ["upscale", str(src), "-m", str(model_dir)])
    assert result.exit_code == 0, result.output
    out = images.read_image(tmp_path / "photo_x2.png")
    assert out.pixels.shape == (20, 24, 3)
    # a second run skips the existing output, --overwrite replaces it
    result = runner.invoke(app, ["upscale", str(src), "-m", str(model_dir), "--json"])
    assert json.loads(result.stdout)["files"][0]["status"] == "skipped" and result.exit_code == 0
    result = runner.invoke(app, ["upscale", str(src), "-m", str(model_dir), "--json", "--overwrite"])
    assert json.loads(result.stdout)["files"][0]["status"] == "ok"


def test_scale_three_with_a_x2_model_and_ext(model_dir: Path, tmp_path: Path) -> None:
    src = _png(tmp_path / "a.png", (10, 7))
    result = runner.invoke(app, ["upscale", str(src), "-m", str(model_dir), "-s", "3", "--ext", "jpg", "-o", str(tmp_path / "out"), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["files"][0]["output_size"] == [30, 21] and summary["precision"] == "fp32"
    assert (tmp_path / "out" / "a_x3.jpg").is_file()


def test_recursive_mirrors_the_tree_and_skips_hidden_and_own_outputs(model_dir: Path, tmp_path: Path) -> None:
    root = tmp_path / "in"
    (root / "sub" / "deeper").mkdir(parents=True)
    (root / ".hidden").mkdir()
    _png(root / "a.png")
    _png(root / "sub" / "b.png", mode="L")
    _png(root / "sub" / "deeper" / "c.png", mode="RGBA")
    _png(root / ".hidden" / "d.png")
    _png(root / ".e.png")
    _png(root / "a_x2.png")  # an earlier run's output
    (root / "notes.txt").write_text("not an image")
    result = runner.invoke(app, ["upscale", str(root), "-r", "-m", str(model_dir), "-o", str(tmp_path / "out"), "--json"])
    assert result.exit_code == 0, result.output
    written = sorted(str(p.relative_to(tmp_path / "out")) for p in (tmp_path / "out").rglob("*") if p.is_file())
    assert written == ["a_x2.png", "sub/b_x2.png", "sub/deeper/c_x2.png"]
    assert images.read_image(tmp_path / "out" / "sub" / "b_x2.png").pixels.shape[2] == 1  # gray stays gray
    assert images.read_image(tmp_path / "out" / "sub" / "deeper" / "c_x2.png").alpha is not None


def test_glob_input(model_dir: Path, tmp_path: Path) -> None:
    for name in ("x.png", "y.png", "z.jpg"):
        _png(tmp_path / name) if name.endswith("png") else PILImage.new("RGB", (8, 8)).save(tmp_path / name)
    result = runner.invoke(app, ["upscale", str(tmp_path / "*.png"), "-m", str(model_dir), "--json", "-q"])
    assert result.exit_code == 0, result.output
    assert sorted(Path(f["input"]).name for f in json.loads(result.stdout)["files"]) == ["x.png", "y.png"]


def test_metadata_survives_upscaling(model_dir: Path, tmp_path: Path) -> None:
    from PIL import ImageCms

    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    # a landscape JPEG whose EXIF says 'rotate 90 degrees clockwise to view' (orientation 6)
    exif = PILImage.Exif()
    exif[0x0112] = 6
    PILImage.fromarray(np.full((8, 16, 3), 128, np.uint8)).save(tmp_path / "rot.jpg", exif=exif.tobytes(), icc_profile=icc)
    # a 16-bit PNG and 16-bit TIFF with low values (bit depth must come from the dtype, not the values)
    dark = np.random.default_rng(1).integers(0, 200, (9, 11, 3)).astype(np.uint16)
    images.write_image(images.Image(pixels=dark, format="PNG"), tmp_path / "deep.png")
    images.write_image(images.Image(pixels=dark, format="TIFF"), tmp_path / "deep.tif")
    result = runner.invoke(app, ["upscale", str(tmp_path / "rot.jpg"), str(tmp_path / "deep.png"), str(tmp_path / "deep.tif"), "-m", str(model_dir)])
    assert result.exit_code == 0, result.output
    rot = images.read_image(tmp_path / "rot_x2.jpg")
    assert rot.pixels.shape[:2] == (32, 16)  # upright: portrait
    assert rot.icc_profile == icc
    assert PILImage.open(tmp_path / "rot_x2.jpg").getexif().get(0x0112, 1) == 1
    for name in ("deep_x2.png", "deep_x2.tif"):
        assert images.read_image(tmp_path / name).pixels.dtype == np.uint16, name


def test_hard_alpha_edge_has_no_dark_halo(model_dir: Path, tmp_path: Path) -> None:
    """An opaque white square on a fully transparent black background upscales like an all-white image:
    the black under the transparent pixels must not bleed into the visible edge."""
    rgba = np.zeros((64, 64, 4), np.uint8)
    rgba[24:40, 24:40] = 255
    PILImage.fromarray(rgba, "RGBA").save(tmp_path / "logo.png")
    PILImage.fromarray(np.full((64, 64, 3), 255, np.uint8)).save(tmp_path / "white.png")
    result = runner.invoke(app, ["upscale", str(tmp_path / "logo.png"), str(tmp_path / "white.png"), "-m", str(model_dir)])
    assert result.exit_code == 0, result.output
    out = images.read_image(tmp_path / "logo_x2.png")
    reference = images.read_image(tmp_path / "white_x2.png").pixels.astype(int)
    assert out.alpha is not None and out.pixels.shape == (128, 128, 3)
    visible = out.alpha > 0
    assert visible.sum() >= 32 * 32
    assert np.abs(out.pixels.astype(int) - reference)[visible].max() <= 1


@pytest.mark.slow
def test_bad_inputs_fail_alone_with_one_line_each(model_dir: Path, tmp_path: Path) -> None:
    good = _png(tmp_path / "good.png")
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(_png(tmp_path / "whole.png", (40, 40)).read_bytes()[:200])
    text = tmp_path / "text.png"
    text.write_text("hello, I am not a picture\n")
    bomb = _bomb(tmp_path / "bomb.png")
    out = tmp_path / "out"
    run = _run(str(good), str(empty), str(truncated), str(text), str(bomb), "-m", str(model_dir), "-o", str(out))
    assert run.returncode == 1, run.stderr
    errors = [line for line in run.stderr.splitlines() if line.startswith("pclup: error:")]
    assert len(errors) == 4 and "Traceback" not in run.stderr
    for bad in (empty, truncated, text, bomb):
        assert sum(bad.name in line for line in errors) == 1, (bad, errors)
    assert sorted(p.name for p in out.iterdir()) == ["good_x2.png"]  # no partial or temporary files


@pytest.mark.slow
@pytest.mark.parametrize(
    ("case", "code", "expect"),
    [
        ("empty-folder", 2, "no images"),
        ("unwritable-output", 2, "out"),
        ("unknown-model", 2, "unknown model"),
        ("offline-hub", 1, "offline"),
        ("missing-input", 2, "no such file"),
        ("bad-tile", 2, "--tile"),
    ],
)
def test_usage_and_environment_errors(case: str, code: int, expect: str, model_dir: Path, tmp_path: Path) -> None:
    src = _png(tmp_path / "p.png")
    args = [str(src), "-m", str(model_dir)]
    if case == "empty-folder":
        (tmp_path / "empty").mkdir()
        (tmp_path / "empty" / "readme.txt").write_text("x")
        args = [str(tmp_path / "empty"), "-m", str(model_dir)]
    elif case == "unwritable-output":
        (tmp_path / "out").write_text("a file where a folder should be")
        args += ["-o", str(tmp_path / "out" / "sub")]
    elif case == "unknown-model":
        args = [str(src), "-m", "edsr-s-x9"]
    elif case == "offline-hub":
        args = [str(src), "-m", "someone/upscaler@v1"]
    elif case == "missing-input":
        args = [str(tmp_path / "nope.png"), "-m", str(model_dir)]
    else:
        args += ["--tile", "huge"]
    run = _run(*args)
    assert run.returncode == code, run.stderr
    lines = run.stderr.strip().splitlines()
    errors = [line for line in lines if line.startswith("pclup: error:")]
    assert len(errors) == 1 and expect in errors[0] and "Traceback" not in run.stderr, run.stderr


def test_never_overwrites_an_input(model_dir: Path, tmp_path: Path) -> None:
    src = _png(tmp_path / "same.png")
    before = src.read_bytes()
    result = runner.invoke(app, ["upscale", str(src), "-m", str(model_dir), "--suffix", "", "--overwrite", "--json"])
    assert result.exit_code == 1
    assert "overwrite the input" in json.loads(result.stdout)["files"][0]["error"]
    assert src.read_bytes() == before


def test_what_the_output_format_cannot_hold_is_said(model_dir: Path, tmp_path: Path) -> None:
    src = _png(tmp_path / "logo.png", mode="RGBA")
    out = tmp_path / "out"
    args = ["upscale", str(src), "-m", str(model_dir), "-o", str(out)]
    result = runner.invoke(app, [*args, "--ext", "jpg"], env={"COLUMNS": "400"})
    assert result.exit_code == 0, result.output
    note = "JPEG has no transparency: the image was flattened onto white"
    assert f"note {out / 'logo_x2.jpg'}: {note}" in " ".join(result.stderr.split())
    result = runner.invoke(app, [*args, "--ext", "jpg", "--json", "--overwrite"])
    assert json.loads(result.stdout)["files"][0]["notes"] == [note]
    result = runner.invoke(app, [*args, "--json"])  # PNG holds it all
    assert json.loads(result.stdout)["files"][0]["notes"] == []


def test_auto_ext_leaves_webp_when_the_output_is_too_wide_for_it(tmp_path: Path) -> None:
    from pclup.models import create_model
    from pclup.weights import save_pretrained

    model = save_pretrained(create_model("compact", scale=1, n_feats=8, n_convs=1), tmp_path / "x1")
    src = tmp_path / "strip.webp"
    PILImage.fromarray(np.full((1, 100, 3), 128, np.uint8)).save(src)  # x170: 17000 wide, WebP holds 16383
    result = runner.invoke(app, ["upscale", str(src), "-m", str(model), "-s", "170", "--json"])
    assert result.exit_code == 0, result.output
    file = json.loads(result.stdout)["files"][0]
    assert file["status"] == "ok" and file["output"] == str(tmp_path / "strip_x170.png")
    assert file["output_size"] == [17000, 170]
    result = runner.invoke(app, ["upscale", str(src), "-m", str(model), "-s", "160", "--json"])  # 16000: WebP
    assert json.loads(result.stdout)["files"][0]["output"] == str(tmp_path / "strip_x160.webp")
