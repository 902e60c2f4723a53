"""``pclup upscale`` ends its process without the interpreter's teardown once everything is written: the
exit status and what was printed are those of a normal exit."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytestmark = pytest.mark.slow


def _python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize(("code", "status"), [("0", 0), ("None", 0), ("3", 3), ("'bad news'", 1)])
def test_quick_exit_keeps_the_status_and_the_output(code: str, status: int) -> None:
    run = _python("import torch\nfrom pclup.cli import quick_exit\nprint('done', end='')\n"
                  f"quick_exit({code})\nprint('not reached')")
    assert run.returncode == status
    assert run.stdout == "done"
    if code.startswith("'"):
        assert "bad news" in run.stderr


def test_no_quick_exit_while_another_thread_runs_or_without_torch() -> None:
    run = _python("import threading, time\nimport torch\nfrom pclup.cli import quick_exit\n"
                  "t = threading.Thread(target=time.sleep, args=(0.5,)); t.start()\n"
                  "quick_exit(0)\nprint('returned')")
    assert run.returncode == 0 and run.stdout.strip() == "returned"
    run = _python("from pclup.cli import quick_exit\nquick_exit(0)\nprint('returned')")
    assert run.stdout.strip() == "returned"


def test_upscale_through_the_entry_point_writes_and_exits(tmp_path: Path) -> None:
    src = tmp_path / "in.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (24, 32, 3), dtype=np.uint8)).save(src)
    cmd = [sys.executable, "-m", "pclup", "upscale", str(src), "-s", "2", "-o", str(tmp_path / "out.png")]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "1 upscaled" in run.stderr  # the report goes to stderr (stdout is for --json)
    with Image.open(tmp_path / "out.png") as out:
        assert out.size == (64, 48)
        out.load()
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=120)  # exists: skipped, status 0
    assert again.returncode == 0 and "skipped" in again.stderr
    missing = [*cmd[:4], str(tmp_path / "missing.png")]
    broken = subprocess.run(missing, capture_output=True, text=True, timeout=120)
    assert broken.returncode == 2 and "missing.png" in broken.stderr
