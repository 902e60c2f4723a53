"""A batch writes one file while the network works on the next: same files, same order of results, and a
file that cannot be written fails alone."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pclup.inference import run as run_module
from pclup.inference.run import plan_upscale
from pclup.inference.upscale import FileResult


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    folder = tmp_path / "in"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(4):
        Image.fromarray(rng.integers(0, 256, (20 + i, 24, 3), dtype=np.uint8)).save(folder / f"p{i}.png")
    return folder


def _run(folder: Path, out: Path, overlap: int) -> tuple[list[FileResult], dict[str, bytes], set[str]]:
    threads: set[str] = set()
    import pclup.images as images

    original = images.write_image

    def spy(*a, **k):  # type: ignore[no-untyped-def]
        threads.add(threading.current_thread().name)
        return original(*a, **k)

    run_module.OVERLAP_BYTES = overlap
    images.write_image = spy
    try:
        plan = plan_upscale([folder], model="default-x2", output=out, precision="fp32", tile=0)
        results = plan.run()
    finally:
        images.write_image = original
        run_module.OVERLAP_BYTES = 128 * 2**20
    return results, {p.name: p.read_bytes() for p in sorted(out.iterdir())}, threads


def test_overlapped_writes_give_the_same_files_in_order(photos: Path, tmp_path: Path) -> None:
    serial, serial_files, serial_threads = _run(photos, tmp_path / "serial", overlap=0)
    overlapped, files, threads = _run(photos, tmp_path / "overlap", overlap=2**30)
    assert serial_threads == {"MainThread"}
    assert any(t.startswith("pclup-write") for t in threads)  # the writes did run in the background
    assert files == serial_files and len(files) == 4
    assert [r.input.name for r in overlapped] == [r.input.name for r in serial] == [f"p{i}.png" for i in range(4)]
    assert [r.status for r in overlapped] == ["ok"] * 4
    assert [r.out_size for r in overlapped] == [r.out_size for r in serial]


def test_a_write_that_fails_in_the_background_fails_that_file_only(photos: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "p1_x2.png").mkdir()  # a folder where the output of p1 should go: its write fails
    plan = plan_upscale([photos], model="default-x2", output=out, precision="fp32", tile=0)
    results = plan.run(overwrite=True)
    assert [r.status for r in results] == ["ok", "failed", "ok", "ok"]
    assert "p1_x2.png" in (results[1].error or "")
    assert {p.name for p in out.iterdir() if p.is_file()} == {"p0_x2.png", "p2_x2.png", "p3_x2.png"}
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary file left behind
