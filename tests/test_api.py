"""The public Python API: the names ``pclup`` exports, and the example of docs/usage.md, run as written."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

import pclup

ROOT = Path(__file__).resolve().parents[1]
CORE = ("load_model", "upscale_file", "train", "finetune", "benchmark")


def _usage_example() -> str:
    usage = (ROOT / "docs" / "usage.md").read_text()
    section = usage.split("\n## Python API\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert len(blocks) == 1, "the Python API section has one example"
    return blocks[0]


def test_every_exported_name_resolves() -> None:
    assert set(CORE) <= set(pclup.__all__)
    for name in pclup.__all__:
        assert getattr(pclup, name) is not None, name
    assert set(pclup.__all__) <= set(dir(pclup))


@pytest.mark.slow
def test_importing_pclup_does_not_import_torch() -> None:
    code = f"import sys, pclup; from pclup import __all__; assert 'torch' not in sys.modules; print({CORE!r})"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr


def test_the_usage_example_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    exec(compile(_usage_example(), "docs/usage.md", "exec"), {"__name__": "usage_example"})  # noqa: S102
    printed = capsys.readouterr().out
    assert "ok (128, 96) []" in printed
    assert "photos/1.png -> out/1_x2.png ok" in printed
    assert re.search(r"^bicubic photos \d+\.\d\d dB$", printed, flags=re.M)
    assert (tmp_path / "runs" / "photos" / "model" / "model.safetensors").is_file()
