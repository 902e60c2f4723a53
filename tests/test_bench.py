"""pclup bench: the papers' bicubic figures, the JSON schema, pictures, and bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import data_dir
from pclup.models import create_model
from pclup.weights import save_pretrained

ROOT = Path(__file__).resolve().parents[1]


def _data_dir() -> Path:
    return data_dir("Set5")


def _bench(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pclup", "bench", *args], capture_output=True, text=True)


@pytest.mark.slow
def test_set5_bicubic_matches_the_papers(tmp_path: Path) -> None:
    """Acceptance: bicubic x4 on Set5 gives 28.42 dB / 0.8104 (EDSR, RCAN papers) within 0.01 / 0.001."""
    out = tmp_path / "out.json"
    run = _bench("-m", "bicubic", "--set", "Set5", "-s", "4", "--data-dir", str(_data_dir()), "--json", str(out))
    assert run.returncode == 0, run.stderr
    data = json.loads(out.read_text())
    assert set(data) == {"pclup_version", "device", "results", "per_image"}
    (row,) = data["results"]
    assert set(row) == {"model", "dataset", "scale", "psnr", "ssim", "images", "seconds"}
    assert row["dataset"] == "Set5" and row["images"] == 5 and row["scale"] == 4
    assert abs(row["psnr"] - 28.42) <= 0.01
    assert abs(row["ssim"] - 0.8104) <= 0.001
    assert {r["image"] for r in data["per_image"]} == {"baby", "bird", "butterfly", "head", "woman"}
    assert set(data["per_image"][0]) == {"model", "dataset", "scale", "image", "psnr", "ssim"}


@pytest.fixture
def hr_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "hr"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(2):
        yy, xx = np.mgrid[0:48, 0:40]
        img = np.stack([yy * 4, xx * 5, (yy + xx) * 2], -1) + rng.integers(0, 30, (48, 40, 3))
        Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(folder / f"img{i}.png")
    return folder


@pytest.mark.slow
def test_several_models_and_scales_with_pictures(hr_folder: Path, tmp_path: Path) -> None:
    torch.manual_seed(0)
    save_pretrained(create_model("edsr", scale=2, n_resblocks=1, n_feats=8), tmp_path / "tiny-x2")
    compare = tmp_path / "grid.png"
    run = _bench(
        "-m", "bicubic", "-m", str(tmp_path / "tiny-x2"), "--set", str(hr_folder), "-s", "2", "-s", "3",
        "--json", str(tmp_path / "r.json"), "--csv", str(tmp_path / "r.csv"), "--save-images", str(tmp_path / "sr"),
        "--compare", str(compare), "--crop", "16",
    )
    assert run.returncode == 0, run.stderr
    results = json.loads((tmp_path / "r.json").read_text())["results"]
    # the x2 model runs at x2 only; bicubic at both scales
    assert sorted((r["model"].split("/")[-1], r["scale"]) for r in results) == [
        ("bicubic", 2), ("bicubic", 3), ("tiny-x2", 2)
    ]
    assert len((tmp_path / "r.csv").read_text().splitlines()) == 4
    assert len(list((tmp_path / "sr").rglob("*.png"))) == 6
    grid = Image.open(compare)
    assert grid.width > 3 * 16 * 2 and grid.height > 2 * 16 * 2  # HR, bicubic, model; two rows (x2, x3)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("case", "expect", "codes"),
    [
        ("unknown-set", "Set5, Set14, B100, Urban100, Manga109", (2,)),
        ("empty-folder", "no images", (2,)),
        ("too-small", "too small", (2,)),
        ("unreadable", "broken.png", (1,)),
    ],
)
def test_bad_input(case: str, expect: str, codes: tuple[int, ...], tmp_path: Path) -> None:
    folder = tmp_path / "set"
    folder.mkdir()
    spec = str(folder)
    if case == "unknown-set":
        spec = "Set6"
    elif case == "too-small":
        Image.new("RGB", (7, 7)).save(folder / "tiny.png")
    elif case == "unreadable":
        Image.new("RGB", (32, 32)).save(folder / "fine.png")
        (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    run = _bench("-m", "bicubic", "--set", spec, "-s", "4")
    assert run.returncode in codes, run.stderr
    lines = [line for line in run.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("pclup: error:") and expect in lines[0], run.stderr


def test_an_image_too_small_for_ssim_after_the_border_is_one_line(tmp_path: Path) -> None:
    """An HR image that keeps fewer than 11x11 pixels once the border is cut is refused, not a traceback."""
    from PIL import Image
    from typer.testing import CliRunner

    from pclup.cli import app

    folder = tmp_path / "small"
    folder.mkdir()
    Image.new("RGB", (16, 16), (90, 120, 30)).save(folder / "a.png")  # 8x8 left after the border
    result = CliRunner().invoke(app, ["bench", "-m", "bicubic", "--set", str(folder), "-s", "4"])
    assert result.exit_code == 2 and "SSIM needs 11x11" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


# ---- degraded variants -------------------------------------------------------------------------------


def test_set_names_carry_their_variant() -> None:
    from pclup.datasets import split_variant

    assert split_variant("B100-real") == ("B100", "realistic")
    assert split_variant("Set14-jpeg30") == ("Set14", "jpeg30")
    assert split_variant("Set14") == ("Set14", None)
    assert split_variant("my-jpegs") == ("my-jpegs", None)
    assert split_variant("-real") == ("-real", None)


@pytest.mark.parametrize("bad", ["jpeg", "jpeg0", "jpeg96", "jpegx", "noisy", "ranges.yaml"])
def test_unknown_degradations_are_refused(bad: str) -> None:
    from pclup.datasets import check_degrade
    from pclup.errors import UsageError

    with pytest.raises(UsageError, match="use realistic, jpegQ"):
        check_degrade(bad)


def test_degraded_lr_is_seeded_by_the_seed_and_the_image_name() -> None:
    from pclup.bench import degraded_lr
    from pclup.imresize import bicubic_downscale_uint8

    rng = np.random.default_rng(0)
    hr = rng.integers(0, 256, (64, 48, 3), dtype=np.uint8)
    lr = bicubic_downscale_uint8(hr, 4)
    a = degraded_lr(hr, lr, 4, "realistic", 0, "baby")
    assert a.shape == lr.shape and a.dtype == np.uint8
    assert np.array_equal(a, degraded_lr(hr, lr, 4, "realistic", 0, "baby"))
    assert not np.array_equal(a, degraded_lr(hr, lr, 4, "realistic", 1, "baby"))
    assert not np.array_equal(a, degraded_lr(hr, lr, 4, "realistic", 0, "bird"))


def test_the_jpeg_variant_is_the_bicubic_lr_through_pillow() -> None:
    import io

    from pclup.bench import degraded_lr
    from pclup.imresize import bicubic_downscale_uint8

    rng = np.random.default_rng(1)
    hr = rng.integers(0, 256, (64, 48, 3), dtype=np.uint8)
    lr = bicubic_downscale_uint8(hr, 4)
    buf = io.BytesIO()
    Image.fromarray(lr).save(buf, format="JPEG", quality=30)
    expected = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))
    assert np.array_equal(degraded_lr(hr, lr, 4, "jpeg30", 0, "any"), expected)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "variant", "digest"),
    [("Set5", "realistic", "1324fa2d40680ded"), ("Set5", "jpeg30", "21fd5f84e7810bf7"),
     ("Set14", "jpeg30", "8aa2446d9abe4e02")],
)
def test_pinned_checksums_of_the_degraded_test_sets(name: str, variant: str, digest: str) -> None:
    """The published figures on degraded sets rest on these LR images: a change to the pipeline (or to
    Pillow's JPEG encoder) that moves them fails here, so it cannot pass unnoticed."""
    import hashlib

    from pclup.bench import degraded_lr, load_pair
    from pclup.datasets import resolve_dataset

    h = hashlib.sha256()
    for path in resolve_dataset(name, data_dir(name)).files:
        hr, lr = load_pair(path, 4)
        h.update(degraded_lr(hr, lr, 4, variant, 0, path.stem).tobytes())
    assert h.hexdigest()[:16] == digest


@pytest.mark.slow
def test_bench_on_degraded_variants_from_the_command_line(hr_folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.json"
    run = _bench("-m", "bicubic", "--set", str(hr_folder), "-s", "2", "--degrade", "jpeg30", "--json", str(out))
    assert run.returncode == 0, run.stderr
    rows = json.loads(out.read_text())["results"]
    assert [r["dataset"] for r in rows] == ["hr-jpeg30"]
    clean = _bench("-m", "bicubic", "--set", str(hr_folder), "-s", "2", "--json", str(tmp_path / "c.json"))
    assert clean.returncode == 0
    assert json.loads((tmp_path / "c.json").read_text())["results"][0]["psnr"] > rows[0]["psnr"]
    bad = _bench("-m", "bicubic", "--set", str(hr_folder), "--degrade", "jpeg0")
    assert bad.returncode == 2 and "use realistic, jpegQ" in bad.stderr and "Traceback" not in bad.stderr
