"""Today's formats: AVIF read and write, HEIC through the optional extra, still GIF, animations refused,
and the files of a folder that pclup cannot read named in the run's summary."""

from __future__ import annotations

import importlib.util
import io
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage
from PIL import features
from typer.testing import CliRunner

from pclup import images
from pclup.cli import app
from pclup.errors import ImageReadError, ImageWriteError
from pclup.images import Image, choose_extension, read_image, write_image
from pclup.images.formats import IMAGE_SUFFIXES, READ_SUFFIXES, WRITE_SUFFIXES, fits
from pclup.inference.batch import Unreadable, collect_jobs, output_extension

runner = CliRunner()
needs_avif = pytest.mark.skipif(not features.check("avif"), reason="this Pillow has no AVIF codec")
HAVE_HEIF = importlib.util.find_spec("pillow_heif") is not None


def _noise(h: int, w: int, c: int, dtype: type = np.uint8) -> np.ndarray:
    top = 65536 if dtype == np.uint16 else 256
    return np.random.default_rng(0).integers(0, top, (h, w, c)).astype(dtype)


def _smooth(h: int, w: int) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * 255 // max(w - 1, 1), y * 255 // max(h - 1, 1), (x + y) * 127 // max(h + w - 2, 1)], 2).astype(np.uint8)


def _one_line(exc: pytest.ExceptionInfo[BaseException], *parts: str) -> str:
    text = str(exc.value)
    assert "\n" not in text
    for part in parts:
        assert part in text, text
    return text


# --------------------------------------------------------------------------------------------------
# The suffix lists


def test_read_and_write_suffixes() -> None:
    assert set(WRITE_SUFFIXES) == {".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp", ".avif"}
    assert set(WRITE_SUFFIXES) < set(READ_SUFFIXES) == set(IMAGE_SUFFIXES)
    assert {READ_SUFFIXES[s] for s in (".gif", ".heic", ".heif", ".avif")} == {"GIF", "HEIF", "AVIF"}


# --------------------------------------------------------------------------------------------------
# AVIF


@needs_avif
@pytest.mark.parametrize("channels, alpha", [(3, False), (3, True), (1, False)])
def test_avif_round_trip_keeps_layout_icc_and_exif(tmp_path: Path, channels: int, alpha: bool) -> None:
    from PIL import ImageCms

    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    exif = PILImage.Exif()
    exif[0x010F] = "pclup test"
    pixels = _smooth(24, 32)[:, :, :channels]
    a = np.tile(np.arange(32, dtype=np.uint8) * 8, (24, 1)) if alpha else None
    notes = write_image(Image(pixels=pixels, alpha=a, icc_profile=icc, exif=b"Exif\0\0" + exif.tobytes()), tmp_path / "a.avif", quality=95)
    assert notes == []
    back = read_image(tmp_path / "a.avif")
    assert back.format == "AVIF" and back.pixels.shape == pixels.shape and back.pixels.dtype == np.uint8
    assert np.abs(back.pixels.astype(int) - pixels).max() <= 8
    assert (back.alpha is None) == (a is None)
    if a is not None:
        assert back.alpha is not None and np.abs(back.alpha.astype(int) - a).max() <= 8
    assert back.icc_profile == icc
    assert back.exif is not None and b"pclup test" in back.exif


@needs_avif
def test_avif_quality_applies_and_what_it_cannot_hold_is_noted(tmp_path: Path) -> None:
    pixels = _noise(32, 32, 3)
    write_image(Image(pixels=pixels), tmp_path / "lo.avif", quality=20)
    write_image(Image(pixels=pixels), tmp_path / "hi.avif", quality=95)
    assert (tmp_path / "lo.avif").stat().st_size < (tmp_path / "hi.avif").stat().st_size
    notes = write_image(Image(pixels=_noise(8, 8, 3, np.uint16)), tmp_path / "deep.avif")
    assert notes == ["AVIF holds 8 bits per sample: 16-bit samples were rounded to 8 bits"]
    notes = write_image(Image(pixels=_noise(8, 8, 1), alpha=_noise(8, 8, 1)[:, :, 0]), tmp_path / "la.avif")
    assert notes == ["AVIF has no grey+alpha mode: the image was stored as RGBA"]
    assert read_image(tmp_path / "la.avif").alpha is not None


def test_avif_size_limits(tmp_path: Path) -> None:
    assert fits("AVIF", (32768, 8)) and not fits("AVIF", (32769, 8))
    assert fits("AVIF", (16384, 16384)) and not fits("AVIF", (16385, 16384))
    with pytest.raises(ImageWriteError) as exc:
        write_image(Image(pixels=np.zeros((1, 32769, 1), np.uint8)), tmp_path / "wide.avif")
    _one_line(exc, "too large for AVIF", "32768 pixels a side")
    assert not (tmp_path / "wide.avif").exists()


def test_choose_extension_keeps_avif_where_it_can_hold_the_output() -> None:
    avif = Image(pixels=np.zeros((4, 4, 3), np.uint8), format="AVIF")
    assert choose_extension(avif, "auto") == "avif"
    assert choose_extension(Image(pixels=np.zeros((4, 4, 3), np.uint8), alpha=np.zeros((4, 4), np.uint8), format="AVIF"), "auto") == "avif"
    assert choose_extension(Image(pixels=np.zeros((4, 4, 3), np.uint16), format="AVIF"), "auto") == "png"
    assert choose_extension(avif, "auto", size=(32768, 100)) == "avif"
    assert choose_extension(avif, "auto", size=(32769, 100)) == "png"
    assert choose_extension(avif, "auto", size=(20000, 20000)) == "png"  # over 16384 x 16384 pixels
    assert choose_extension("AVIF", "auto") == "avif"
    assert choose_extension(Image(pixels=np.zeros((4, 4, 3), np.uint8), format="PNG"), ".AVIF") == "avif"
    # formats pclup reads but does not write
    assert choose_extension("GIF", "auto") == "png" and choose_extension("HEIF", "auto") == "png"
    assert choose_extension(Image(pixels=np.zeros((4, 4, 3), np.uint16), format="HEIF"), "auto") == "png"
    assert choose_extension(Image(pixels=np.zeros((4, 4, 3), np.uint8), format="HEIF"), "jpg") == "jpg"


@needs_avif
def test_auto_leaves_avif_when_the_output_is_too_wide_for_it(tmp_path: Path) -> None:
    src = tmp_path / "strip.avif"
    PILImage.fromarray(np.full((1, 200, 3), 128, np.uint8)).save(src)
    assert output_extension(src, "auto", 160) == "avif"  # 32000 wide
    assert output_extension(src, "auto", 170) == "png"  # 34000 wide: AVIF holds 32768
    assert output_extension(src, "webp", 170) == "webp"


@needs_avif
def test_truncated_avif_is_said_to_be_one(tmp_path: Path) -> None:
    buf = io.BytesIO()
    PILImage.fromarray(_smooth(16, 16)).save(buf, format="AVIF")
    (tmp_path / "cut.avif").write_bytes(buf.getvalue()[:40])
    with pytest.raises(ImageReadError) as exc:
        read_image(tmp_path / "cut.avif")
    _one_line(exc, str(tmp_path / "cut.avif"), "AVIF")


# --------------------------------------------------------------------------------------------------
# GIF and animations


def test_still_gif_reads_with_transparency_as_alpha(tmp_path: Path) -> None:
    im = PILImage.new("P", (5, 4))
    im.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    im.putpixel((1, 1), 1)
    im.save(tmp_path / "s.gif", transparency=0)
    out = read_image(tmp_path / "s.gif")
    assert out.format == "GIF" and out.mode == "P" and out.pixels.shape == (4, 5, 3)
    assert out.alpha is not None and out.alpha[1, 1] == 255 and out.alpha[0, 0] == 0
    assert out.pixels[1, 1].tolist() == [255, 0, 0]
    assert choose_extension(out, "auto") == "png"


@pytest.mark.parametrize(
    "ext, name", [("gif", "GIF"), ("webp", "WebP"), ("png", "PNG (APNG)"), pytest.param("avif", "AVIF", marks=needs_avif)]
)
def test_animations_are_refused_with_the_reason(tmp_path: Path, ext: str, name: str) -> None:
    frames = [PILImage.new("RGB", (6, 5), c) for c in ("red", "blue")]
    frames[0].save(tmp_path / f"a.{ext}", save_all=True, append_images=frames[1:], duration=100)
    with pytest.raises(ImageReadError) as exc:
        read_image(tmp_path / f"a.{ext}")
    _one_line(exc, str(tmp_path / f"a.{ext}"), f"animated {name}: pclup upscales still images")


def test_multi_page_tiff_still_reads_its_first_page(tmp_path: Path) -> None:
    pages = [PILImage.new("RGB", (6, 5), c) for c in ("red", "blue")]
    pages[0].save(tmp_path / "p.tif", save_all=True, append_images=pages[1:])
    assert read_image(tmp_path / "p.tif").pixels[0, 0].tolist() == [255, 0, 0]


# --------------------------------------------------------------------------------------------------
# HEIC


def _fake_heic(path: Path) -> Path:
    ftyp = b"\x00\x00\x00\x18ftypmif1\x00\x00\x00\x00mif1heic"
    path.write_bytes(ftyp + b"\x00" * 64)
    return path


def test_heic_without_the_extra_names_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pillow_heif", None)  # import fails, as without the extra
    with pytest.raises(ImageReadError) as exc:
        read_image(_fake_heic(tmp_path / "a.heic"))
    _one_line(exc, str(tmp_path / "a.heic"), "pip install 'pclup[heif]'")


def test_avif_brands_are_not_taken_for_heic() -> None:
    from pclup.images.read import _is_heif

    assert _is_heif(b"\x00\x00\x00\x18ftypmif1\x00\x00\x00\x00mif1heic")
    assert _is_heif(b"\x00\x00\x00\x1cftypheix\x00\x00\x00\x00mif1heixmiaf")
    assert not _is_heif(b"\x00\x00\x00\x1cftypavif\x00\x00\x00\x00avifmif1miaf")
    assert not _is_heif(b"\x00\x00\x00\x18ftypmif1\x00\x00\x00\x00mif1avif")
    assert not _is_heif(b"\x89PNG\r\n\x1a\n" + b"\x00" * 16)


@pytest.mark.skipif(not HAVE_HEIF, reason="the heif extra (pillow-heif) is not installed")
def test_heic_decodes_8_and_10_bit(tmp_path: Path) -> None:
    import pillow_heif

    rgba = np.concatenate([_smooth(16, 24), np.full((16, 24, 1), 200, np.uint8)], axis=2)
    pillow_heif.from_bytes(mode="RGBA", size=(24, 16), data=rgba.tobytes()).save(tmp_path / "a.heic", quality=95)
    out = read_image(tmp_path / "a.heic")
    assert out.format == "HEIF" and out.pixels.dtype == np.uint8 and out.pixels.shape == (16, 24, 3)
    assert out.alpha is not None and np.abs(out.alpha.astype(int) - 200).max() <= 4
    assert np.abs(out.pixels.astype(int) - rgba[:, :, :3]).max() <= 24
    assert choose_extension(out, "auto") == "png"

    # libheif turns the image upright and pillow-heif resets the EXIF orientation: no second turn
    exif = PILImage.Exif()
    exif[0x0112] = 6
    PILImage.fromarray(_smooth(8, 16)).save(tmp_path / "o.heic", exif=exif.tobytes(), quality=95)
    assert read_image(tmp_path / "o.heic").pixels.shape == (16, 8, 3)

    deep = np.full((16, 24, 3), 1023 << 6, np.uint16)  # white, at 10 bits
    pillow_heif.from_bytes(mode="RGB;16", size=(24, 16), data=deep.tobytes()).save(tmp_path / "d.heic", quality=-1)
    out = read_image(tmp_path / "d.heic")
    assert out.pixels.dtype == np.uint16 and out.bit_depth == 16 and out.mode == "RGB;16"
    assert out.pixels.min() >= 65000  # white stays white over the full 16-bit range
    assert choose_extension(out, "auto") == "png"
    write_image(out, tmp_path / "d.png")
    assert read_image(tmp_path / "d.png").pixels.dtype == np.uint16


# --------------------------------------------------------------------------------------------------
# Folders: files pclup cannot read are named once


def _png(path: Path, size: tuple[int, int] = (8, 6), mode: str = "RGB") -> Path:
    PILImage.fromarray(_noise(size[1], size[0], len(mode)).squeeze() if mode == "L" else _noise(size[1], size[0], len(mode)), mode).save(path)
    return path


def test_folder_lists_what_it_cannot_read_once(tmp_path: Path) -> None:
    _png(tmp_path / "a.png")
    (tmp_path / "b.psd").write_bytes(b"8BPS not really")
    (tmp_path / "c").write_bytes(b"no suffix")
    for name in ("a.xmp", "a.aae", "meta.json", "notes.txt", ".hidden.psd", "z_x2.psd"):
        (tmp_path / name).write_bytes(b"x")
    unreadable: list[Unreadable] = []
    jobs = collect_jobs([str(tmp_path), str(tmp_path)], recursive=False, suffix="_x2", unreadable=unreadable)
    assert [j.src.name for j in jobs] == ["a.png"]
    assert [(u.path.name, u.reason) for u in unreadable] == [("b.psd", "unsupported format"), ("c", "unsupported format")]
    # a file named on its own is always a job (and its read error says why)
    assert [j.src.name for j in collect_jobs([str(tmp_path / "b.psd")], recursive=False, suffix="_x2")] == ["b.psd"]


def test_cli_summary_names_skipped_files(model_dir: Path, tmp_path: Path) -> None:
    root = tmp_path / "in"
    root.mkdir()
    _png(root / "a.png")
    (root / "b.psd").write_bytes(b"8BPS")
    (root / "a.xmp").write_text("<x/>")
    args = ["upscale", str(root), "-m", str(model_dir), "-o", str(tmp_path / "out")]
    result = runner.invoke(app, args, env={"COLUMNS": "400"})
    assert result.exit_code == 0, result.output
    stderr = " ".join(result.stderr.split())
    assert "skipped 1 file pclup cannot read: b.psd (unsupported format)" in stderr
    assert stderr.count("b.psd") == 1 and "a.xmp" not in stderr
    result = runner.invoke(app, [*args, "--json", "--overwrite"])
    summary = json.loads(result.stdout)
    assert summary["unreadable"] == [{"path": str(root / "b.psd"), "reason": "unsupported format"}]
    assert summary["ok"] == 1 and summary["failed"] == 0


def test_cli_formats(model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "in"
    root.mkdir()
    im = PILImage.new("P", (6, 5))
    im.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    im.save(root / "still.gif", transparency=0)
    frames = [PILImage.new("RGB", (6, 5), c) for c in ("red", "blue")]
    frames[0].save(root / "moving.gif", save_all=True, append_images=frames[1:])
    _fake_heic(root / "phone.heic")
    monkeypatch.setitem(sys.modules, "pillow_heif", None)
    result = runner.invoke(app, ["upscale", str(root), "-m", str(model_dir), "-o", str(tmp_path / "out"), "--json"])
    assert result.exit_code == 1
    files = {Path(f["input"]).name: f for f in json.loads(result.stdout)["files"]}
    assert files["still.gif"]["status"] == "ok" and files["still.gif"]["output"].endswith("still_x2.png")
    assert read_image(tmp_path / "out" / "still_x2.png").alpha is not None
    assert files["moving.gif"]["status"] == "failed" and "animated GIF: pclup upscales still images" in files["moving.gif"]["error"]
    assert files["phone.heic"]["status"] == "failed" and "pip install 'pclup[heif]'" in files["phone.heic"]["error"]


@needs_avif
def test_cli_avif_in_and_out(model_dir: Path, tmp_path: Path) -> None:
    PILImage.fromarray(_smooth(12, 16)).save(tmp_path / "a.avif")
    _png(tmp_path / "b.png", (16, 12))
    out = tmp_path / "out"
    result = runner.invoke(app, ["upscale", str(tmp_path / "a.avif"), "-m", str(model_dir), "-o", str(out), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["files"][0]["output"] == str(out / "a_x2.avif")
    assert images.read_image(out / "a_x2.avif").pixels.shape == (24, 32, 3)
    for q in ("20", "95"):
        args = ["upscale", str(tmp_path / "b.png"), "-m", str(model_dir), "-o", str(out / f"b{q}.avif"), "--quality", q]
        assert runner.invoke(app, args).exit_code == 0
    assert (out / "b20.avif").stat().st_size < (out / "b95.avif").stat().st_size
    result = runner.invoke(app, ["upscale", str(tmp_path / "b.png"), "-m", str(model_dir), "-o", str(out), "--ext", "avif", "--json"])
    assert result.exit_code == 0 and (out / "b_x2.avif").is_file()


@needs_avif
def test_a_pillow_without_avif_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from PIL import AvifImagePlugin

    PILImage.fromarray(_smooth(8, 8)).save(tmp_path / "a.avif")
    monkeypatch.setattr(AvifImagePlugin, "SUPPORTED", False)
    monkeypatch.setattr(features, "check", lambda name: name != "avif")
    with pytest.raises(ImageReadError) as exc:
        read_image(tmp_path / "a.avif")
    _one_line(exc, str(tmp_path / "a.avif"), "no AVIF codec", "Pillow 11.3")
    with pytest.raises(ImageWriteError) as exc:
        write_image(Image(pixels=_smooth(8, 8)), tmp_path / "b.avif")
    _one_line(exc, str(tmp_path / "b.avif"), "no AVIF codec")
