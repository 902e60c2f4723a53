"""The command line: start-up cost, exit codes, one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import tiny_model
from typer.testing import CliRunner

from pclup.cli import app
from pclup.weights import save_pretrained

runner = CliRunner()


def _pclup(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pclup", *args], capture_output=True, text=True, env={**os.environ, **(env or {})}
    )


@pytest.mark.slow
def test_help_and_version_do_not_import_torch() -> None:
    for args in (["--help"], ["--version"]):
        run = subprocess.run(
            [sys.executable, "-X", "importtime", "-m", "pclup", *args], capture_output=True, text=True
        )
        assert run.returncode == 0, run.stderr
        imported = [line.split("|")[-1].strip() for line in run.stderr.splitlines() if "|" in line]
        assert not [m for m in imported if m == "torch" or m.startswith("torch.")], args
    assert _pclup("--version").stdout.strip().startswith("pclup ")


def test_models_lists_builtins_and_architectures() -> None:
    result = runner.invoke(app, ["models", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    names = {m["name"] for m in data["models"]}
    assert {"edsr-s-x4", "edsr-l-x2"} <= names
    assert all(m["local"] in (True, False) and m["parameters"] > 0 for m in data["models"])
    assert {"edsr-s", "edsr-l"} <= {a["name"] for a in data["architectures"]}


def test_info_and_convert(tmp_path: Path) -> None:
    model = tiny_model("edsr", 4)
    torch.save({"params_ema": model.state_dict()}, tmp_path / "net.pth")
    result = runner.invoke(app, ["info", str(tmp_path / "net.pth"), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["architecture"] == "edsr"
    result = runner.invoke(app, ["convert", str(tmp_path / "net.pth"), str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "out" / "model.safetensors").is_file()
    result = runner.invoke(app, ["convert", str(tmp_path / "net.pth"), str(tmp_path / "out")])
    assert result.exit_code == 2 and "--overwrite" in result.output


class _Exploit:
    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (os.system, ("echo pwned",))


@pytest.mark.slow
@pytest.mark.parametrize("case", ["unknown-name", "unknown-arch", "truncated", "evil-pickle", "offline-hub"])
def test_bad_models_give_one_line_and_non_zero_exit(case: str, tmp_path: Path) -> None:
    if case == "unknown-name":
        spec, expect, code = "edsr-s-x44", "did you mean", 2
    elif case == "unknown-arch":
        spec, expect, code = str(tmp_path / "x.pth"), "unknown architecture", 1
        torch.save({"encoder.weight": torch.zeros(3)}, spec)
    elif case == "truncated":
        folder = save_pretrained(tiny_model("edsr"), tmp_path / "m")
        data = (folder / "model.safetensors").read_bytes()
        (folder / "model.safetensors").write_bytes(data[: len(data) // 2])
        spec, expect, code = str(folder), "truncated or corrupt", 1
    elif case == "evil-pickle":
        spec, expect, code = str(tmp_path / "evil.pt"), "refused", 1
        torch.save({"w": torch.zeros(1), "x": _Exploit()}, spec)
    else:
        spec, expect, code = "someone/some-model", "offline", 1
    run = _pclup("info", spec)
    assert run.returncode == code, run.stderr
    assert run.stderr.startswith("pclup: error: ") and run.stderr.count("\n") == 1, run.stderr
    assert expect in run.stderr and "Traceback" not in run.stderr
    assert "pwned" not in run.stdout
