"""``pclup compare`` on small hand-made files in the ``pclup bench --json`` format."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from pclup.cli import app
from pclup.stats import arms_from_files, compare_arms, read_bench_json

runner = CliRunner()
SET14 = [f"img{i:02d}" for i in range(10)]
SET5 = ["baby", "bird", "butterfly", "head", "woman"]


def _bench_file(path: Path, rows: dict[str, dict[str, dict[str, float]]], scale: int = 4) -> Path:
    """rows: model -> dataset -> image -> PSNR, written as `pclup bench --json` writes it."""
    per_image = [
        {"model": m, "dataset": d, "scale": scale, "image": img, "psnr": p, "ssim": 0.8}
        for m, sets in rows.items() for d, imgs in sets.items() for img, p in imgs.items()
    ]
    results = [
        {"model": m, "dataset": d, "scale": scale, "psnr": sum(imgs.values()) / len(imgs), "ssim": 0.8,
         "images": len(imgs), "seconds": 1.0}
        for m, sets in rows.items() for d, imgs in sets.items()
    ]
    doc = {"pclup_version": "0", "device": "cpu", "results": results, "per_image": per_image}
    path.write_text(json.dumps(doc))
    return path


def _model(offset: float) -> dict[str, dict[str, float]]:
    return {
        "Set5": {name: 30.0 + i + offset * (1 + 0.1 * i) for i, name in enumerate(SET5)},
        "Set14": {name: 25.0 + 0.5 * i + offset * (1 + 0.1 * i) for i, name in enumerate(SET14)},
    }


def test_two_files_print_the_table(tmp_path: Path) -> None:
    a = _bench_file(tmp_path / "a.json", {"bicubic": _model(0.0)})
    b = _bench_file(tmp_path / "b.json", {"net": _model(0.5)})
    out = tmp_path / "cmp.json"
    result = runner.invoke(app, ["compare", str(a), str(b), "--json", str(out)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("baseline: bicubic")
    set5 = next(line for line in lines if line.startswith("Set5"))
    assert "+0.600" in set5 and "descriptive (n<6)" in set5 and "exact" in set5
    set14 = next(line for line in lines if line.startswith("Set14"))
    assert "0.0020" in set14 and "exact" in set14 and "descriptive" not in set14
    pooled = next(line for line in lines if line.startswith("pooled"))
    assert re.search(r"\b15\b", pooled)
    doc = json.loads(out.read_text())
    assert doc["baseline"] == "bicubic"
    rows = {r["dataset"]: r for r in doc["comparisons"]}
    assert rows["Set14"]["p_value"] == pytest.approx(2 / 2**10) and rows["Set14"]["p_method"] == "exact"
    assert rows["Set5"]["mean_diff"] == pytest.approx(0.6) and rows["Set5"]["descriptive"] is True
    assert rows["Set14"]["t_low"] < rows["Set14"]["mean_diff"] < rows["Set14"]["t_high"]


def test_one_file_several_models_with_baseline(tmp_path: Path) -> None:
    f = _bench_file(tmp_path / "b.json", {"bicubic": _model(0.0), "net": _model(0.3), "pcl": _model(0.4)})
    result = runner.invoke(app, ["compare", str(f), "--baseline", "net"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("baseline: net")
    assert "bicubic" in result.output and "pcl" in result.output and "-0.360" in result.output
    bad = runner.invoke(app, ["compare", str(f), "--baseline", "nope"])
    assert bad.exit_code == 2 and bad.output.count("\n") == 1 and "nope" in bad.output


def test_mismatched_image_names_refused_in_one_line(tmp_path: Path) -> None:
    a = _bench_file(tmp_path / "a.json", {"bicubic": _model(0.0)})
    other = _model(0.5)
    other["Set14"]["stranger"] = other["Set14"].pop("img03")
    b = _bench_file(tmp_path / "b.json", {"net": other})
    result = runner.invoke(app, ["compare", str(a), str(b)])
    assert result.exit_code == 2
    assert result.output.count("\n") == 1 and result.output.startswith("pclup: error: Set14 x4: image names")


def test_arms_of_seeds_add_a_bootstrap_ci(tmp_path: Path) -> None:
    files = {k: _bench_file(tmp_path / f"{k}.json", {"m": _model(off)})
             for k, off in {"l1a": 0.0, "l1b": 0.02, "pcla": 0.3, "pclb": 0.34}.items()}
    out = tmp_path / "cmp.json"
    args = ["compare", "--arm", f"l1={files['l1a']},{files['l1b']}",
            "--arm", f"pcl={files['pcla']},{files['pclb']}",
            "--draws", "500", "--seed", "3", "--json", str(out)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "bootstrap" in result.output and result.output.startswith("baseline: l1")
    doc = json.loads(out.read_text())
    pooled = next(r for r in doc["comparisons"] if r["dataset"] == "pooled")
    assert pooled["boot_low"] < pooled["mean_diff"] < pooled["boot_high"]
    assert doc["bootstrap"] == {"draws": 500, "seed": 3}
    again = runner.invoke(app, [*args[:-1], str(tmp_path / "again.json")])
    assert again.exit_code == 0
    assert json.loads((tmp_path / "again.json").read_text())["comparisons"] == doc["comparisons"]


def test_usage_errors_are_one_line(tmp_path: Path) -> None:
    a = _bench_file(tmp_path / "a.json", {"bicubic": _model(0.0)})
    two = _bench_file(tmp_path / "two.json", {"x": _model(0.0), "y": _model(0.1)})
    (tmp_path / "bad.json").write_text("{not json")
    cases = [
        ["compare"],
        ["compare", str(a)],
        ["compare", str(a), str(tmp_path / "missing.json")],
        ["compare", str(a), "--arm", f"x={a}"],
        ["compare", "--arm", f"x={a}", "--arm", f"y={two}"],
        ["compare", "--arm", "novalue", "--arm", f"y={a}"],
        ["compare", str(a), str(tmp_path / "bad.json")],
    ]
    for args in cases:
        result = runner.invoke(app, args)
        assert result.exit_code in (1, 2), (args, result.output)
        assert result.output.count("\n") == 1, (args, result.output)
        assert result.output.startswith("pclup: error:"), (args, result.output)


def test_no_shared_set_is_an_error(tmp_path: Path) -> None:
    a = _bench_file(tmp_path / "a.json", {"bicubic": _model(0.0)}, scale=2)
    b = _bench_file(tmp_path / "b.json", {"net": _model(0.0)}, scale=4)
    with pytest.raises(Exception, match="share no"):
        compare_arms(arms_from_files([str(a), str(b)]))
    assert set(read_bench_json(str(a))) == {"bicubic"}


def test_help_shows_defaults() -> None:
    result = runner.invoke(app, ["compare", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    text = " ".join(result.output.split())
    assert not re.search(r"<(bool|str|int|float|path)>", text)
    command = typer.main.get_command(app).commands["compare"]  # type: ignore[attr-defined]
    for param in command.params:
        if param.param_type_name == "option" and param.default not in (None, ()) and not param.is_flag:
            assert f"default: {param.default}" in text, param.name


@pytest.mark.slow
def test_compare_does_not_import_torch(tmp_path: Path) -> None:
    a = _bench_file(tmp_path / "a.json", {"bicubic": _model(0.0), "net": _model(0.5)})
    code = ("import sys; from pclup.cli import app; app(['compare', sys.argv[1]], standalone_mode=False); "
            "assert 'torch' not in sys.modules")
    run = subprocess.run([sys.executable, "-c", code, str(a)], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert "pooled" in run.stdout
