"""The training data pipeline: scanning the train set, deterministic patch batches, the loader."""

from __future__ import annotations

import pickle
from multiprocessing.reduction import ForkingPickler
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pclup.data import (
    PatchBatches,
    TrainImages,
    augment,
    default_workers,
    make_loader,
    unaugment,
)
from pclup.errors import UsageError
from pclup.imresize import bicubic_downscale_uint8


def _noise(h: int, w: int, seed: int, channels: int = 3) -> np.ndarray:
    """Smooth-ish random pixels (noise upsampled 4x), so that bicubic resizing does something."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, ((h + 3) // 4, (w + 3) // 4, channels), dtype=np.uint8)
    big = np.repeat(np.repeat(small, 4, axis=0), 4, axis=1)[:h, :w]
    big = np.clip(big.astype(np.int16) + rng.integers(-20, 21, big.shape), 0, 255).astype(np.uint8)
    return big[:, :, 0] if channels == 1 else big


def _save(path: Path, arr: np.ndarray, **kw: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path, **kw)
    return path


def _folder(root: Path, sizes: list[tuple[int, int]], seed: int = 0) -> Path:
    for i, (h, w) in enumerate(sizes):
        _save(root / f"img{i:02d}.png", _noise(h, w, seed + i))
    return root


@pytest.fixture
def images(tmp_path: Path) -> TrainImages:
    """Six images for x2 training with 8-pixel LR patches (16-pixel HR)."""
    folder = _folder(tmp_path / "train", [(40, 52), (33, 35), (64, 24), (20, 90), (17, 17), (48, 48)])
    return TrainImages.scan([folder], 2, min_hr_size=16)


def _batches(images: TrainImages, **kw: object) -> PatchBatches:
    args: dict[str, object] = {"batch_size": 8, "patch_size": 8, "steps": 10, "seed": 3}
    args.update(kw)
    return PatchBatches(images, **args)  # type: ignore[arg-type]


def _u8(t: torch.Tensor) -> np.ndarray:
    """(3, h, w) float in [0, 1] back to (h, w, 3) uint8 (exact: values are k / 255)."""
    return (t * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()


# --------------------------------------------------------------------------------------------------
# Scanning


def test_scan_recurses_reads_every_format_and_skips_hidden(tmp_path: Path) -> None:
    root = tmp_path / "train"
    rgb = _noise(20, 24, 1)
    _save(root / "a.png", rgb)
    _save(root / "sub" / "deeper" / "b.JPG", _noise(20, 24, 2), quality=95)
    _save(root / "sub" / "c.webp", _noise(20, 24, 3), lossless=True)
    _save(root / "sub" / "d.tif", _noise(20, 24, 4))
    _save(root / "e.bmp", _noise(20, 24, 5))
    grey = _noise(20, 24, 6, channels=1)
    _save(root / "f_grey.png", grey)
    rgba = np.dstack([rgb, np.full((20, 24), 7, np.uint8)])
    _save(root / "g_rgba.png", rgba)
    deep = np.arange(20 * 24, dtype=np.uint16).reshape(20, 24) * 131
    _save(root / "h_16bit.png", deep)
    _save(root / ".hidden" / "x.png", rgb)
    _save(root / "sub" / ".y.png", rgb)
    (root / "notes.txt").write_text("not an image")
    progress: list[tuple[int, int, Path]] = []

    data = TrainImages.scan([root], 2, min_hr_size=8, on_progress=lambda *a: progress.append(a))

    names = sorted(p.name for p in data.paths if p is not None)
    assert names == ["a.png", "b.JPG", "c.webp", "d.tif", "e.bmp", "f_grey.png", "g_rgba.png", "h_16bit.png"]
    assert data.stats.found == 8 and data.skipped_small == 0 and data.corrupt == []
    assert [p[:2] for p in progress] == [(i, 8) for i in range(1, 9)]
    by_name = {p.name: i for i, p in enumerate(data.paths) if p is not None}
    for hr, lr in zip(data.hr, data.lr, strict=True):
        assert hr.dtype == lr.dtype == np.uint8 and hr.shape == (20, 24, 3) and lr.shape == (10, 12, 3)
    np.testing.assert_array_equal(data.hr[by_name["a.png"]], rgb)
    np.testing.assert_array_equal(data.hr[by_name["f_grey.png"]], np.repeat(grey[:, :, None], 3, axis=2))
    np.testing.assert_array_equal(data.hr[by_name["g_rgba.png"]], rgb)  # alpha dropped
    expect = np.round(deep.astype(np.float64) * 255 / 65535).astype(np.uint8)
    np.testing.assert_array_equal(data.hr[by_name["h_16bit.png"]], np.repeat(expect[:, :, None], 3, axis=2))


def test_overlapping_folders_read_each_file_once(tmp_path: Path) -> None:
    root = _folder(tmp_path / "train", [(20, 20)])
    _folder(root / "sub", [(20, 20)], seed=5)
    data = TrainImages.scan([root, root / "sub"], 2, min_hr_size=8)
    assert len(data) == 2 and data.stats.found == 2


def test_small_images_are_skipped_and_counted_after_mod_crop(tmp_path: Path) -> None:
    # at x2 with 16-pixel HR patches: 15 px is too small, 17 px mod-crops to 16 and is kept
    root = _folder(tmp_path / "train", [(15, 40), (17, 17), (16, 100), (40, 9)])
    data = TrainImages.scan([root], 2, min_hr_size=16)
    assert data.skipped_small == 2 and len(data) == 2
    assert sorted(h.shape for h in data.hr) == [(16, 16, 3), (16, 100, 3)]
    assert "2 too small (HR side < 16 px)" in data.summary()


def test_corrupt_files_are_skipped_counted_and_named(tmp_path: Path) -> None:
    root = _folder(tmp_path / "train", [(20, 20)])
    good = (root / "img00.png").read_bytes()
    truncated = root / "truncated.png"
    truncated.write_bytes(good[: len(good) // 2])
    text = root / "sub" / "text.jpg"
    text.parent.mkdir()
    text.write_text("this is not a JPEG\n")

    data = TrainImages.scan([root], 2, min_hr_size=8)

    assert len(data) == 1 and data.stats.found == 3
    assert sorted(p for p, _ in data.corrupt) == sorted([truncated, text])
    for _, reason in data.corrupt:
        assert reason and "\n" not in reason and str(root) not in reason
    summary = data.summary()
    assert "2 unreadable" in summary and str(truncated) in summary and str(text) in summary


def test_no_usable_image_is_a_one_line_usage_error(tmp_path: Path) -> None:
    root = _folder(tmp_path / "train", [(10, 10), (12, 30), (8, 8)])
    (root / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 10)
    (root / "fake.jpg").write_text("hello")
    with pytest.raises(UsageError) as info:
        TrainImages.scan([root], 4, min_hr_size=48)
    message = str(info.value)
    assert "\n" not in message
    assert str(root) in message
    assert "5 found / 3 too small (HR side < 48 px) / 2 unreadable" in message

    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("x")
    with pytest.raises(UsageError, match="0 found / 0 too small"):
        TrainImages.scan([empty], 2, min_hr_size=16)
    with pytest.raises(UsageError, match="does not exist"):
        TrainImages.scan([tmp_path / "missing"], 2, min_hr_size=16)


def test_lr_is_computed_once_at_scan(images: TrainImages) -> None:
    assert images.stats.downscaled == len(images) == 6
    for hr, lr in zip(images.hr, images.lr, strict=True):
        np.testing.assert_array_equal(lr, bicubic_downscale_uint8(np.ascontiguousarray(hr), 2))
    batches = _batches(images)
    for step in range(len(batches)):
        batches[step]
    assert images.stats.downscaled == 6
    assert images.nbytes == sum(a.nbytes for a in images.hr + images.lr)
    assert f"{len(images)} training images" in images.summary()


# --------------------------------------------------------------------------------------------------
# Batches


def test_batches_shapes_and_ranges(images: TrainImages) -> None:
    batches = _batches(images, batch_size=6, patch_size=8)
    assert len(batches) == 10
    lr, hr = batches[4]
    assert lr.shape == (6, 3, 8, 8) and hr.shape == (6, 3, 16, 16)
    assert lr.dtype == hr.dtype == torch.float32 and lr.is_contiguous() and hr.is_contiguous()
    for t in (lr, hr):
        assert 0 <= t.min() and t.max() <= 1
        assert torch.equal(t * 255, (t * 255).round())
    with pytest.raises(IndexError):
        batches[10]


def test_batches_are_a_pure_function_of_seed_and_step(images: TrainImages) -> None:
    a, b = _batches(images), _batches(images)
    late = b[7]  # out of order, after nothing else: no hidden state
    for x, y in zip(a[7], late, strict=True):
        assert torch.equal(x, y)
    for x, y in zip(a[0], b[0], strict=True):
        assert torch.equal(x, y)
    assert not torch.equal(a[0][1], a[1][1])
    assert not torch.equal(a[0][1], _batches(images, seed=4)[0][1])
    torch.manual_seed(123)
    state = torch.get_rng_state()
    a[2]
    assert torch.equal(torch.get_rng_state(), state)  # the global RNG is never touched


def test_lr_and_hr_patches_are_aligned_and_augmented_alike(tmp_path: Path) -> None:
    for scale in (2, 3, 4):
        folder = _folder(tmp_path / f"x{scale}", [(80, 100), (96, 72), (75, 61)], seed=scale)
        data = TrainImages.scan([folder], scale, min_hr_size=12 * scale)
        batches = PatchBatches(data, batch_size=8, patch_size=12, steps=6, seed=scale)
        seen_flags = set()
        for step in range(len(batches)):
            plan = batches.plan(step)
            lr, hr = batches[step]
            for j in range(8):
                n, y, x = int(plan.image[j]), int(plan.y[j]), int(plan.x[j])
                flags = bool(plan.hflip[j]), bool(plan.vflip[j]), bool(plan.transpose[j])
                seen_flags.add(flags)
                lr_patch, hr_patch = _u8(lr[j]), _u8(hr[j])
                # the crops of the full images, on the scale grid, with the same symmetry
                np.testing.assert_array_equal(lr_patch, augment(data.lr[n][y : y + 12, x : x + 12], *flags))
                hr_crop = data.hr[n][y * scale : (y + 12) * scale, x * scale : (x + 12) * scale]
                np.testing.assert_array_equal(hr_patch, augment(hr_crop, *flags))
                # downscaling the HR patch gives the LR patch exactly, away from the patch border (2 LR
                # pixels: the reach of the bicubic taps, which there fall outside the patch)
                again = bicubic_downscale_uint8(np.ascontiguousarray(unaugment(hr_patch, *flags)), scale)
                np.testing.assert_array_equal(again[2:-2, 2:-2], unaugment(lr_patch, *flags)[2:-2, 2:-2])
        assert len(seen_flags) > 4  # the flips and transposition do vary


def test_loader_workers_and_resume_give_identical_batches(images: TrainImages) -> None:
    batches = _batches(images, steps=6)
    direct = [batches[s] for s in range(6)]
    torch.manual_seed(0)
    state = torch.get_rng_state()
    in_process = list(make_loader(batches, 0, 0))
    assert torch.equal(torch.get_rng_state(), state)
    with_workers = list(make_loader(batches, 0, 2))
    resumed = list(make_loader(batches, 3, 0))
    assert len(in_process) == len(with_workers) == 6 and len(resumed) == 3
    for got in (in_process, with_workers, [None] * 3 + resumed):
        for want, have in zip(direct, got, strict=True):
            if have is not None:
                assert torch.equal(want[0], have[0]) and torch.equal(want[1], have[1])
    assert list(make_loader(batches, 6, 0)) == []
    with pytest.raises(UsageError):
        make_loader(batches, 7, 0)
    assert default_workers() >= 0


def test_ddp_rank_slices_concatenate_to_the_global_batch(images: TrainImages) -> None:
    single = _batches(images, batch_size=8)
    for world in (2, 4, 8):
        ranks = [_batches(images, batch_size=8, rank=r, world_size=world) for r in range(world)]
        for step in (0, 5):
            parts = [r[step] for r in ranks]
            assert parts[0][0].shape[0] == 8 // world
            lr = torch.cat([p[0] for p in parts])
            hr = torch.cat([p[1] for p in parts])
            assert torch.equal(lr, single[step][0]) and torch.equal(hr, single[step][1])
    with pytest.raises(UsageError, match="divisible"):
        _batches(images, batch_size=8, world_size=3)
    with pytest.raises(UsageError):
        _batches(images, rank=2, world_size=2)


def test_area_and_uniform_sampling() -> None:
    tiny, large = _noise(16, 16, 1), _noise(160, 160, 2)  # 1 and 73 * 73 LR crop positions
    data = TrainImages.from_arrays([tiny, large], 2)
    counts = {}
    for sampling in ("area", "uniform"):
        b = PatchBatches(data, batch_size=50, patch_size=8, steps=20, sampling=sampling)  # type: ignore[arg-type]
        chosen = torch.cat([b.plan(s).image for s in range(20)])
        counts[sampling] = int((chosen == 0).sum())
        plans = [b.plan(s) for s in range(20)]
        assert all(int(p.y.max()) <= 72 and int(p.x.max()) <= 72 for p in plans)
    assert counts["area"] <= 3  # expected 1000 / 5330 ~ 0.2
    assert 400 < counts["uniform"] < 600


def test_batches_refuse_images_smaller_than_a_patch() -> None:
    data = TrainImages.from_arrays([_noise(32, 32, 1), _noise(14, 40, 2)], 2)
    with pytest.raises(UsageError, match="min_hr_size >= 16"):
        PatchBatches(data, batch_size=2, patch_size=8, steps=1)
    with pytest.raises(UsageError, match="x3"):
        PatchBatches(data, batch_size=2, patch_size=4, steps=1, scale=3)


# --------------------------------------------------------------------------------------------------
# Shared memory (spawn platforms) and validation


def test_shared_memory_pickles_by_reference(images: TrainImages) -> None:
    before = _batches(images)[3]
    plain = pickle.loads(pickle.dumps(images))
    images.share_memory()
    assert images.is_shared
    for hr in images.hr:
        assert hr.transpose(2, 0, 1).flags.c_contiguous
    clone = pickle.loads(ForkingPickler.dumps(images))
    after = _batches(clone)[3]
    assert torch.equal(before[0], after[0]) and torch.equal(before[1], after[1])
    assert torch.equal(_batches(plain)[3][1], before[1])
    assert all(a.transpose(2, 0, 1).flags.c_contiguous for a in plain.hr + plain.lr)
    # the clone maps the same memory: a write shows through
    old = int(images.hr[0][0, 0, 0])
    images.hr[0][0, 0, 0] = old ^ 0xFF
    assert int(clone.hr[0][0, 0, 0]) == old ^ 0xFF
    images.hr[0][0, 0, 0] = old


@pytest.mark.slow
def test_spawn_workers_give_identical_batches(images: TrainImages) -> None:
    batches = _batches(images, steps=3)
    got = list(make_loader(batches, 0, 1, multiprocessing_context="spawn"))
    assert images.is_shared
    for step, (lr, hr) in enumerate(got):
        assert torch.equal(lr, batches[step][0]) and torch.equal(hr, batches[step][1])
