"""Degraded and paired training data: batches, pairing by name, real-world negatives, the flags."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pclup.config import config_from_mapping
from pclup.contrastive import FrequencySampler
from pclup.data import PatchBatches, TrainImages, step_generator
from pclup.data.degrade import Degradation
from pclup.errors import UsageError
from pclup.images import image_files
from pclup.training.loop import degraded_negatives, train


def _img(h: int, w: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([yy * 2, xx * 2, (yy + xx)], -1) % 256
    return np.clip(base + rng.integers(0, 30, (h, w, 3)), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def images() -> TrainImages:
    return TrainImages.from_arrays([_img(96, 112, 0), _img(120, 96, 1)], 2)


def _batches(images: TrainImages, **kw: object) -> PatchBatches:
    args: dict = dict(batch_size=4, patch_size=8, steps=5, seed=3, degradation=Degradation(), margin=4)
    args.update(kw)
    return PatchBatches(images, **args)


def test_degraded_batches_have_the_patch_sizes_and_8_bit_levels(images: TrainImages) -> None:
    lr, hr = _batches(images)[0]
    assert lr.shape == (4, 3, 8, 8) and hr.shape == (4, 3, 16, 16)
    for t in (lr, hr):
        assert t.dtype == torch.float32 and float(t.min()) >= 0 and float(t.max()) <= 1
        assert torch.equal(t, t.mul(255).round().div(255))


def test_degraded_batches_are_a_pure_function_of_seed_and_step(images: TrainImages) -> None:
    a, b = _batches(images), _batches(images)
    assert all(torch.equal(x, y) for x, y in zip(a[2], b[2], strict=True))
    assert not torch.equal(a[2][0], a[3][0])
    assert not torch.equal(a[2][0], _batches(images, seed=4)[2][0])


def test_degraded_hr_is_the_windows_centre_and_lr_is_not_the_bicubic(images: TrainImages) -> None:
    batches = _batches(images, batch_size=2, augment=False)
    plan = batches.plan(1)
    lr, hr = batches[1]
    for j in range(2):
        n, y, x = int(plan.image[j]), int(plan.y[j]), int(plan.x[j])
        hy, hx = (y + 4) * 2, (x + 4) * 2
        expected = images.hr[n][hy : hy + 16, hx : hx + 16].transpose(2, 0, 1)
        assert np.array_equal(hr[j].mul(255).round().numpy().astype(np.uint8), expected)
        bicubic = images.lr[n][y + 4 : y + 12, x + 4 : x + 12].transpose(2, 0, 1)
        assert not np.array_equal(lr[j].mul(255).round().numpy().astype(np.uint8), bicubic)


def test_each_sample_is_degraded_by_its_own_generator(images: TrainImages) -> None:
    batches = _batches(images, batch_size=2, augment=False, margin=0)
    plan = batches.plan(0)
    lr, _ = batches[0]
    for j in range(2):
        n, y, x = int(plan.image[j]), int(plan.y[j]), int(plan.x[j])
        window = torch.from_numpy(
            np.ascontiguousarray(images.hr[n][y * 2 : y * 2 + 16, x * 2 : x * 2 + 16].transpose(2, 0, 1))
        )
        expected = Degradation().apply(
            window, 2, step_generator(3, 0, f"patches/degradation/{j}"), dtype=torch.float32
        )
        assert torch.equal(lr[j], expected)


def test_rank_slices_of_degraded_batches_concatenate_to_the_global_batch(images: TrainImages) -> None:
    whole = _batches(images)[1]
    parts = [_batches(images, rank=r, world_size=2)[1] for r in range(2)]
    for k in range(2):
        assert torch.equal(torch.cat([p[k] for p in parts]), whole[k])


def test_degraded_batches_need_room_for_the_margin() -> None:
    small = TrainImages.from_arrays([_img(40, 40, 0)], 2)  # LR 20 px: a patch of 8 + 2 * 8 margin is 24
    with pytest.raises(UsageError, match="smaller than a 48 px HR window"):
        PatchBatches(small, batch_size=1, patch_size=8, steps=1, degradation=Degradation(), margin=8)
    PatchBatches(small, batch_size=1, patch_size=8, steps=1)  # no degradation: no margin needed


# ---- paired data ------------------------------------------------------------------------------------


def _pair_folders(
    root: Path,
    names: list[str],
    lr_names: list[str] | None = None,
    scale: int = 2,
    size: tuple[int, int] = (48, 40),
) -> tuple[Path, Path]:
    hr_dir, lr_dir = root / "hr", root / "lr"
    hr_dir.mkdir()
    lr_dir.mkdir()
    for i, name in enumerate(names):
        Image.fromarray(_img(size[0], size[1], i)).save(hr_dir / name)
    for i, name in enumerate(lr_names if lr_names is not None else names):
        Image.fromarray(_img(size[0] // scale, size[1] // scale, 100 + i)).save(lr_dir / name)
    return hr_dir, lr_dir


def test_paired_loading_matches_by_name_and_keeps_the_given_lr(tmp_path: Path) -> None:
    hr_dir, lr_dir = _pair_folders(tmp_path, ["a.png", "b.png"], ["b.png", "a.webp"])
    data = TrainImages.scan_pairs([hr_dir], [lr_dir], 2, min_hr_size=16)
    assert [p.name for p in data.paths if p] == ["a.png", "b.png"]
    # a.png pairs with a.webp (written second, seed 101), b.png with b.png (seed 100)
    assert np.array_equal(np.asarray(data.lr[0]), np.asarray(Image.open(lr_dir / "a.webp").convert("RGB")))
    assert np.array_equal(np.asarray(data.lr[1]), _img(24, 20, 100))
    lr, hr = PatchBatches(data, batch_size=2, patch_size=8, steps=1)[0]
    assert lr.shape == (2, 3, 8, 8) and hr.shape == (2, 3, 16, 16)


def test_paired_loading_accepts_div2k_names(tmp_path: Path) -> None:
    hr_dir, lr_dir = _pair_folders(tmp_path, ["0001.png"], ["0001x2.png"])
    assert len(TrainImages.scan_pairs([hr_dir], [lr_dir], 2, min_hr_size=16)) == 1


def test_paired_loading_refuses_unmatched_names_and_names_them(tmp_path: Path) -> None:
    hr_dir, lr_dir = _pair_folders(tmp_path, ["a.png", "b.png", "c.png"], ["a.png", "x.png"])
    with pytest.raises(UsageError) as e:
        TrainImages.scan_pairs([hr_dir], [lr_dir], 2, min_hr_size=16)
    msg = str(e.value)
    assert "2 image(s) in" in msg and "b, c" in msg and "\n" not in msg


def test_paired_loading_refuses_lr_without_hr(tmp_path: Path) -> None:
    hr_dir, lr_dir = _pair_folders(tmp_path, ["a.png"], ["a.png", "extra.png"])
    with pytest.raises(UsageError, match=r"in .*lr have no image of the same name in .*hr: extra"):
        TrainImages.scan_pairs([hr_dir], [lr_dir], 2, min_hr_size=16)


def test_paired_loading_refuses_sizes_that_do_not_match(tmp_path: Path) -> None:
    hr_dir, lr_dir = _pair_folders(tmp_path, ["a.png"], scale=3)  # LR 16x13 for an x2 HR 40x48
    with pytest.raises(UsageError, match=r"a.png and a.png do not match at x2: HR 40x48, LR 13x16"):
        TrainImages.scan_pairs([hr_dir], [lr_dir], 2, min_hr_size=16)


def test_paired_loading_needs_one_lr_folder_per_hr_folder(tmp_path: Path) -> None:
    hr_dir, lr_dir = _pair_folders(tmp_path, ["a.png"])
    with pytest.raises(UsageError, match="1 HR folder"):
        TrainImages.scan_pairs([hr_dir], [lr_dir, lr_dir], 2, min_hr_size=16)


def test_image_files_do_not_follow_links_out_of_the_folder(tmp_path: Path) -> None:
    inside = tmp_path / "in"
    inside.mkdir()
    Image.fromarray(_img(8, 8, 0)).save(tmp_path / "outside.png")
    Image.fromarray(_img(8, 8, 0)).save(inside / "a.png")
    os.symlink(tmp_path / "outside.png", inside / "out.png")
    os.symlink(inside / "a.png", inside / "again.png")
    os.symlink(tmp_path, inside / "up")  # a linked folder is not entered
    assert [p.name for p in image_files(inside)] == ["a.png", "again.png"]


# ---- real-world negatives ---------------------------------------------------------------------------


def test_degraded_negatives_keep_the_blurs_and_add_noise_and_jpeg() -> None:
    hr = (
        torch.from_numpy(_img(32, 32, 0).transpose(2, 0, 1).copy())
        .float()
        .div(255)
        .unsqueeze(0)
        .repeat(2, 1, 1, 1)
    )
    lr = torch.nn.functional.avg_pool2d(hr, 2)
    blur = FrequencySampler()
    real = FrequencySampler(degraded=True)
    p1, n1 = blur.sample(hr, lr, torch.Generator().manual_seed(5))
    p2, n2 = real.sample(hr, lr, torch.Generator().manual_seed(5))
    assert torch.equal(p1, p2) and torch.equal(n1[0], n2[0])  # positives and the upsampled input unchanged
    assert n2.shape == n1.shape
    assert not torch.equal(n1[1:], n2[1:])
    assert torch.equal(n2[1:], n2[1:].mul(255).round().div(255))
    # the degraded copies are the blurred ones plus damage: close on average, further than rounding
    diff = (n2[1:] - n1[1:]).abs().mean()
    assert 1 / 255 < float(diff) < 40 / 255
    again = real.sample(hr, lr, torch.Generator().manual_seed(5))[1]
    assert torch.equal(again, n2)


def test_negatives_from_follows_the_data() -> None:
    base = {"data": ("x",), "val_set": None}
    assert not degraded_negatives(config_from_mapping(base))
    assert degraded_negatives(config_from_mapping({**base, "degradation": "realistic"}))
    assert degraded_negatives(config_from_mapping({**base, "data_lr": ("y",)}))
    assert not degraded_negatives(
        config_from_mapping({**base, "degradation": "realistic", "pcl_negatives_from": "blur"})
    )
    assert degraded_negatives(config_from_mapping({**base, "pcl_negatives_from": "degraded"}))


@pytest.mark.parametrize(
    ("settings", "words"),
    [
        ({"degradation": "gritty"}, "degradation 'gritty' is not bicubic, realistic or a .toml file"),
        ({"degradation": "realistic", "data_lr": ("y",)}, "cannot be used with paired data"),
        ({"data_lr": ("y", "z")}, "gives 2 folder(s) for 1 HR folder(s)"),
        ({"pcl_negatives_from": "noise"}, "'noise' is not one of auto, blur, degraded"),
        ({"val_degrade": "jpeg200"}, "val_degrade 'jpeg200' is not realistic, jpegQ or a .toml file"),
    ],
)
def test_bad_degradation_settings_are_refused(settings: dict, words: str) -> None:
    with pytest.raises(UsageError) as e:
        config_from_mapping({"data": ("x",), "val_set": None, **settings})
    assert words in str(e.value)


@pytest.mark.slow
@pytest.mark.parametrize("paired", [False, True])
def test_a_tiny_run_on_degraded_or_paired_data(tmp_path: Path, paired: bool) -> None:
    hr_dir, lr_dir = _pair_folders(tmp_path, ["a.png", "b.png"], size=(64, 64))
    extra = {"data_lr": (str(lr_dir),)} if paired else {"degradation": "realistic"}
    cfg = config_from_mapping(
        dict(
            data=(str(hr_dir),),
            arch="compact",
            arch_args={"n_feats": 8, "n_convs": 1},
            scale=2,
            patch_size=8,
            batch_size=2,
            steps=2,
            val_set=None,
            out=str(tmp_path / "run"),
            log_every=1,
            disc_width=8,
            precision="fp32",
            lr=1e-3,
            **extra,
        )
    )
    train(cfg)
    lines = [json.loads(x) for x in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines if "step" in x and "l1" in x] == [1, 2]
    assert "degradation" in (tmp_path / "run" / "config.toml").read_text()
