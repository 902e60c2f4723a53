"""The README's commands are the ones CI runs."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _bash_blocks(text: str) -> list[str]:
    return [b.strip() for b in re.findall(r"```bash\n(.*?)```", text, flags=re.S)]


def test_ci_runs_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text()
    quick_start = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    install, tests = _bash_blocks(quick_start)[:2]
    assert "pytest" in tests and "pytest" not in install
    ci = (ROOT / ".ci" / "run").read_text()
    assert tests in ci.splitlines()
    assert "torch==2.13.0" in install and "torch==2.13.0" in tests  # never a multi-GB CUDA build
