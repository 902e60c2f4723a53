"""The source passes the linter and the type checker, with the settings in pyproject.toml."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True)


@pytest.mark.slow
def test_ruff_check_src() -> None:
    run = _run("ruff", "check", "--no-cache", "src")
    assert run.returncode == 0, run.stdout + run.stderr


@pytest.mark.slow
def test_mypy_src(tmp_path: Path) -> None:
    run = _run("mypy", "--cache-dir", str(tmp_path / "mypy"), "src")
    assert run.returncode == 0, run.stdout + run.stderr
