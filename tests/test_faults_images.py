"""Faults around image files and the upscaling engine: races, signals, big ICC profiles, file modes,
messages, x1 models, memory. Each test builds its own small files in tmp_path."""

from __future__ import annotations

import errno
import os
import signal
import stat
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from types import SimpleNamespace

import numpy as np
import psutil
import pytest
import torch
from PIL import Image as PILImage
from PIL import ImageCms

from pclup import images
from pclup.inference import tiling
from pclup.inference.upscale import Upscaler, resize, upscale_file
from pclup.models import create_model, get_arch
from pclup.weights import LoadedModel, save_pretrained


def _upscaler(scale: int = 2, tile: int | str = 0) -> Upscaler:
    torch.manual_seed(0)
    spec = get_arch("edsr")  # its config class itself, which also takes x1 (a restoration network)
    model = spec.build(spec.config_cls(scale=scale, n_resblocks=1, n_feats=8))
    return Upscaler(LoadedModel(model, f"tiny-x{scale}", "test"), device="cpu", tile=tile)


def _png(path: Path, size: tuple[int, int] = (12, 10), **save: object) -> Path:
    arr = np.random.default_rng(0).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    PILImage.fromarray(arr).save(path, **save)
    return path


def _temp_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*.tmp"))


# --- 1. two runs racing for one output -----------------------------------------------------------------


def test_a_run_that_loses_the_race_for_an_output_skips_it(tmp_path: Path) -> None:
    """The output appears after the 'exists' check, while the image is being upscaled: it is kept."""
    src, dst = _png(tmp_path / "a.png"), tmp_path / "a_x2.png"

    def other_run_finishes_first(done: int, total: int) -> None:
        dst.write_bytes(b"the other run's output")

    result = upscale_file(_upscaler(), src, dst, progress=other_run_finishes_first)
    assert (result.status, result.error) == ("skipped", f"{dst} exists (use --overwrite)")
    assert dst.read_bytes() == b"the other run's output"
    assert _temp_files(tmp_path) == []
    # with --overwrite the newer result replaces it
    result = upscale_file(_upscaler(), src, dst, overwrite=True, progress=other_run_finishes_first)
    assert result.status == "ok" and images.read_image(dst).pixels.shape == (20, 24, 3)


def test_without_hard_links_publishing_falls_back_to_check_and_rename(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_links(src: object, dst: object) -> None:
        raise OSError(errno.EPERM, "Operation not permitted")  # what Linux says on FAT

    monkeypatch.setattr(os, "link", no_links)
    image = images.Image(np.zeros((4, 4, 3), np.uint8))
    images.write_image(image, tmp_path / "new.png", overwrite=False)
    assert images.read_image(tmp_path / "new.png").pixels.shape == (4, 4, 3)
    (tmp_path / "old.png").write_bytes(b"keep")
    with pytest.raises(FileExistsError):
        images.write_image(image, tmp_path / "old.png", overwrite=False)
    assert (tmp_path / "old.png").read_bytes() == b"keep"
    assert _temp_files(tmp_path) == []


# --- 2. SIGTERM --------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.skipif(os.name != "posix", reason="SIGTERM is POSIX")
def test_sigterm_while_writing_leaves_no_temporary_file(tmp_path: Path) -> None:
    torch.manual_seed(0)
    save_pretrained(create_model("edsr", scale=2, n_resblocks=1, n_feats=8), tmp_path / "model")
    # 16-bit colour: the output is written by pclup's own PNG writer, for about a second
    pixels = np.random.default_rng(0).integers(0, 65536, (1000, 1000, 3)).astype(np.uint16)
    src = tmp_path / "in" / "big.png"
    src.parent.mkdir()
    images.write_image(images.Image(pixels), src)
    out = tmp_path / "out"
    out.mkdir()
    command = ["upscale", str(src), "-m", str(tmp_path / "model"), "-o", str(out), "-q"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "pclup", *command], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 120
        while not _temp_files(out) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        assert _temp_files(out), "the run ended (or timed out) before it started writing"
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 128 + signal.SIGTERM
    assert stderr.splitlines() == ["pclup: error: terminated"] and stdout == ""
    assert list(out.iterdir()) == []


# --- 3. a large ICC profile ------------------------------------------------------------------------------


def test_png_with_an_icc_profile_over_1_mb_is_read_and_the_profile_kept(tmp_path: Path) -> None:
    icc = bytearray(ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())
    icc += bytes(3_000_000 - len(icc))  # padding after the tags, as large printer profiles have LUTs
    struct.pack_into(">I", icc, 0, len(icc))  # the profile size in the header
    src = _png(tmp_path / "big-icc.png", icc_profile=bytes(icc))
    assert images.read_image(src).icc_profile == icc
    result = upscale_file(_upscaler(), src, tmp_path / "out.png")
    assert result.status == "ok", result.error
    assert images.read_image(tmp_path / "out.png").icc_profile == icc


# --- 4. file modes follow the umask ---------------------------------------------------------------------


@pytest.mark.skipif(os.name != "posix", reason="umask is POSIX")
@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o027, 0o640)])
def test_outputs_get_the_mode_the_umask_gives(tmp_path: Path, umask: int, mode: int) -> None:
    src = _png(tmp_path / "a.png")
    old = os.umask(umask)
    try:
        new = upscale_file(_upscaler(), src, tmp_path / "new" / "a_x2.png")  # published by a hard link
        again = upscale_file(_upscaler(), src, tmp_path / "again.png", overwrite=True)  # by a rename
    finally:
        os.umask(old)
    assert new.status == again.status == "ok"
    assert stat.S_IMODE((tmp_path / "new" / "a_x2.png").stat().st_mode) == mode
    assert stat.S_IMODE((tmp_path / "again.png").stat().st_mode) == mode
    assert stat.S_IMODE((tmp_path / "new").stat().st_mode) == 0o777 & ~umask


# --- 5. messages -----------------------------------------------------------------------------------


@pytest.mark.parametrize("below", ["", "sub"])
def test_a_file_where_the_output_folder_should_be(tmp_path: Path, below: str) -> None:
    src = _png(tmp_path / "a.png")
    (tmp_path / "taken").write_text("a file")
    dst = tmp_path / "taken" / below / "a_x2.png"
    result = upscale_file(_upscaler(), src, dst)
    expected = f"cannot write {dst}: {tmp_path / 'taken'} is a file, not a folder"
    assert (result.status, result.error) == ("failed", expected)
    assert (tmp_path / "taken").read_text() == "a file" and _temp_files(tmp_path) == []


def test_an_output_folder_that_cannot_be_created(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def denied(path: object, mode: int = 0o777) -> None:  # as for a user without write access (not root)
        raise PermissionError(errno.EACCES, "Permission denied", str(path))

    monkeypatch.setattr(os, "mkdir", denied)
    src, dst = _png(tmp_path / "a.png"), tmp_path / "new" / "a_x2.png"
    result = upscale_file(_upscaler(), src, dst)
    assert (result.status, result.error) == ("failed", f"cannot write {dst}: permission denied")


def test_an_output_too_large_for_memory_says_its_size_and_the_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(psutil, "virtual_memory", lambda: SimpleNamespace(total=4096, available=4096))
    monkeypatch.setattr(psutil, "swap_memory", lambda: SimpleNamespace(total=0, free=0))
    seen: list[int] = []
    src, dst = _png(tmp_path / "a.png"), tmp_path / "a_x2.png"
    result = upscale_file(_upscaler(), src, dst, progress=lambda done, total: seen.append(done))
    assert result.status == "failed" and seen == []  # refused before any work
    assert result.error is not None and "tile" not in result.error
    assert result.error.startswith(f"cannot upscale {src}: the output, 24x20 pixels, is too large")
    assert result.error.endswith("more than this computer's 0.0 GiB of memory and swap")
    assert not (tmp_path / "a_x2.png").exists()


@pytest.mark.parametrize("path", ["float", "direct"])
def test_an_output_buffer_that_cannot_be_allocated_is_not_blamed_on_tiles(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, path: str
) -> None:
    real_zeros, real_empty = torch.zeros, np.empty

    def zeros(*size: int, **kwargs: object) -> torch.Tensor:
        if int(np.prod(size)) >= 3 * 80 * 80:  # the 80x80 output: more than this process may allocate
            raise RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 76800 B")
        return real_zeros(*size, **kwargs)

    def empty(shape: Any, *args: Any, **kwargs: Any) -> np.ndarray:
        if int(np.prod(shape)) >= 3 * 80 * 80:  # the 8-bit output the direct path writes into
            raise MemoryError("Unable to allocate 18.8 KiB for an array")
        return real_empty(shape, *args, **kwargs)

    monkeypatch.setattr(torch, "zeros", zeros)
    monkeypatch.setattr(np, "empty", empty)
    src = _png(tmp_path / "a.png", (40, 40))
    up = _upscaler(tile=16)
    up.tta = path == "float"  # TTA takes the float path; the plain run writes straight into the output
    result = upscale_file(up, src, tmp_path / "a_x2.png")
    assert result.status == "failed" and result.error is not None and "tile" not in result.error
    assert result.error.startswith(f"cannot upscale {src}: not enough memory for a 80x80-pixel image")


def test_a_failure_in_one_file_leaves_nothing_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    result = upscale_file(_upscaler(), tmp_path / "broken.png", tmp_path / "out" / "broken_x2.png")
    assert result.status == "failed" and result.error is not None and "cannot read" in result.error

    def disk_full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    dst = tmp_path / "out" / "a_x2.png"
    result = upscale_file(_upscaler(), _png(tmp_path / "a.png"), dst)
    assert (result.status, result.error) == ("failed", f"cannot write {dst}: no space left on device")
    assert list((tmp_path / "out").iterdir()) == []


# --- 6. x1 models ----------------------------------------------------------------------------------------


def test_a_x1_model_restores_at_the_input_size_then_resizes() -> None:
    up = _upscaler(scale=1)
    x = torch.rand(1, 3, 10, 12)
    assert up.upscale_tensor(x).shape == (1, 3, 10, 12)
    y = up.upscale_tensor(x, 2.5)
    assert y.shape == (1, 3, 25, 30)
    assert torch.equal(y, resize(up.upscale_tensor(x), (25, 30)))  # restored at 10x12, then resized


# --- 7. free memory without os.sysconf ------------------------------------------------------------------


def test_free_memory_on_the_cpu_is_portable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(os, "sysconf", raising=False)  # Windows has none
    monkeypatch.setattr(psutil, "virtual_memory", lambda: SimpleNamespace(total=8 << 30, available=1 << 29))
    assert tiling.free_memory(torch.device("cpu")) == 1 << 29
    assert 0.4 * (1 << 29) < tiling.CPU_BUDGET  # (40% of what is free is the smaller budget here)
    assert tiling.auto_tile(1000.0, torch.device("cpu")) == int((0.4 * (1 << 29) / 1000) ** 0.5) // 8 * 8


def test_a_x1_compact_model_loads_from_its_folder_and_restores(tmp_path: Path) -> None:
    """A restoration model (scale 1) saved as a model folder loads and upscales like any other."""
    from pclup.weights import load_model

    spec = get_arch("compact")
    save_pretrained(spec.build(spec.make_config(scale=1, n_feats=8, n_convs=1)), tmp_path / "x1")
    loaded = load_model(str(tmp_path / "x1"))
    assert loaded.scale == 1
    out = Upscaler(loaded, device="cpu", tile=0).upscale_tensor(torch.rand(1, 3, 12, 10), 2)
    assert out.shape == (1, 3, 24, 20)


def test_a_gray_model_upscales_each_channel_and_other_channel_counts_are_refused(tmp_path: Path) -> None:
    """A 1-channel model upscales RGB channel by channel; a 2- or 4-channel model is refused in one line."""
    from pclup.errors import IncompatibleCheckpointError

    spec = get_arch("compact")
    gray = spec.build(spec.make_config(scale=2, n_feats=8, n_convs=1, n_colors=1))
    upscaler = Upscaler(LoadedModel(gray, "gray", "test"), device="cpu", tile=0)
    x = torch.rand(1, 3, 10, 12)
    out = upscaler.upscale_tensor(x)
    assert out.shape == (1, 3, 20, 24)
    assert torch.equal(out[:, 1:2], upscaler.upscale_tensor(x[:, 1:2]))
    four = spec.build(spec.make_config(scale=2, n_feats=8, n_convs=1, n_colors=4))
    with pytest.raises(IncompatibleCheckpointError, match="4-channel"):
        Upscaler(LoadedModel(four, "four", "test"), device="cpu", tile=0)
