"""``pclup upscale`` and ``pclup bench`` refuse flag values and path combinations that cannot work: before
any work, with one line and exit 2, writing nothing."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage
from typer.testing import CliRunner

from pclup.cli import app

runner = CliRunner()


def _image(path: Path, size: tuple[int, int] = (12, 10)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.random.default_rng(len(path.name)).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    PILImage.fromarray(arr).save(path)
    return path


def _tree(root: Path) -> set[str]:
    """Every file and folder below ``root``, hidden ones (temporary files) included."""
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def _refused(result, *causes: str) -> str:  # noqa: ANN001 - click's Result
    """The one error line of a run that must have been refused as a usage error, naming ``causes``."""
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    errors = [line for line in result.stderr.splitlines() if line.startswith("pclup: error:")]
    assert len(errors) == 1 and "Traceback" not in result.output, result.output
    for cause in causes:
        assert cause in errors[0], (cause, errors[0])
    return errors[0]


def _upscale(model_dir: Path, *args: str):  # noqa: ANN202
    return runner.invoke(app, ["upscale", *args, "-m", str(model_dir)])


@pytest.mark.parametrize("tile", ["-1", "-5", "-16"])
def test_negative_tile_is_refused_by_upscale_and_bench(tile: str, model_dir: Path, tmp_path: Path) -> None:
    src = _image(tmp_path / "in" / "p.png", (32, 32))
    before = _tree(tmp_path)
    result = _upscale(model_dir, str(src), "-o", str(tmp_path / "out"), "--tile", tile)
    _refused(result, f"--tile {tile}", "at least 16")
    bench = ["bench", "-m", str(model_dir), "--set", str(tmp_path / "in"), "-s", "2", "--tile", tile]
    _refused(runner.invoke(app, [*bench, "--json", str(tmp_path / "bench.json")]), f"--tile {tile}")
    assert _tree(tmp_path) == before


@pytest.mark.parametrize(
    ("case", "names"),
    [
        ("jpg and jpeg", ["a.jpg", "a.jpeg"]),
        ("png and bmp", ["a.png", "a.bmp"]),
        ("png and bmp, --overwrite", ["a.png", "a.bmp"]),
        ("** over two folders", ["one/a.png", "two/a.png"]),
        ("two folder inputs", ["one/a.png", "two/a.png"]),
        ("an output replaces another input", ["a.png", "a_x2.png"]),
    ],
)
def test_outputs_that_would_collide_are_refused(
    case: str, names: list[str], model_dir: Path, tmp_path: Path
) -> None:
    for name in names:
        _image(tmp_path / name)
    args = [str(tmp_path / name) for name in names]
    if case == "** over two folders":
        args = [str(tmp_path / "**" / "*.png"), "-o", str(tmp_path / "out")]
    elif case == "two folder inputs":
        args = [str(tmp_path / "one"), str(tmp_path / "two"), "-o", str(tmp_path / "out")]
    if "overwrite" in case or "replaces" in case:
        args.append("--overwrite")
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    line = _refused(_upscale(model_dir, *args), "collide", *(str(tmp_path / name) for name in names))
    assert ("replace the input" in line) == ("replaces" in case), line
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before  # nothing written


def test_scale_must_be_finite_and_storable(model_dir: Path, tmp_path: Path) -> None:
    srcs = [str(_image(tmp_path / f"{n}.png")) for n in "ab"]
    before = _tree(tmp_path)
    for scale in ("inf", "nan", "1e308"):
        _refused(_upscale(model_dir, *srcs, "-s", scale), f"--scale {scale.replace('1e308', '1e+308')}")
        assert _tree(tmp_path) == before


def test_globstar_enters_no_linked_folder_and_ends_despite_cycles(
    model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "tree"
    _image(root / "top.png")
    _image(root / "x" / "p.png")
    _image(root / "x" / "y" / "q.png")
    _image(tmp_path / "elsewhere" / "r.png")
    os.symlink("..", root / "x" / "back")  # two cycles: x/back -> tree, x/y/back -> tree
    os.symlink("../..", root / "x" / "y" / "back")
    os.symlink("../elsewhere", root / "out-link")  # a link out of the folder
    # Bound the folders listed: a walk that follows the cycles lists them without end.
    scandir, listed = os.scandir, []

    def counting_scandir(path: object = ".") -> object:
        listed.append(path)
        if len(listed) > 1000:
            raise RuntimeError("the walk does not end")
        return scandir(path)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "scandir", counting_scandir)
    want = [root / "top.png", root / "x" / "p.png", root / "x" / "y" / "q.png"]
    for args in ([str(root / "**" / "*.png")], [str(root), "-r"]):
        result = _upscale(model_dir, *args, "-o", str(tmp_path / "out"), "--json", "-q")
        assert result.exit_code == 0, (result.output, result.exception)
        assert [Path(f["input"]) for f in json.loads(result.stdout)["files"]] == want
        for f in (tmp_path / "out").rglob("*.png"):
            f.unlink()


@pytest.mark.parametrize("suffix", ["/../../escaped", "_x2/../../escaped", "sub\\name", "_x2\0", "_x2\n"])
def test_suffix_that_is_not_a_plain_name_is_refused(suffix: str, model_dir: Path, tmp_path: Path) -> None:
    src = _image(tmp_path / "in" / "deep" / "p.png")
    before = _tree(tmp_path)
    result = _upscale(model_dir, str(src), "-o", str(tmp_path / "in" / "deep" / "out"), "--suffix", suffix)
    _refused(result, "--suffix")
    assert _tree(tmp_path) == before


@pytest.mark.parametrize(
    ("case", "inputs", "output", "causes"),
    [
        ("unwritable suffix, two inputs", 2, "out.gif", ["out.gif", "2 inputs"]),
        ("unwritable suffix, one input", 1, "out.gif", ["out.gif", "cannot write .gif", ".png"]),
        ("file name, two inputs", 2, "out.png", ["out.png", "2 inputs"]),
        ("existing non-image file, one input", 1, "notes.txt", ["notes.txt", "image suffix"]),
        ("existing non-image file, two inputs", 2, "notes.txt", ["notes.txt", "2 inputs"]),
        ("file as a parent folder", 1, "notes.txt/sub", ["notes.txt", "is a file, not a folder"]),
        ("file as a parent of the file", 1, "notes.txt/big.png", ["notes.txt", "is a file, not a folder"]),
    ],
)
def test_output_option_mistakes_name_the_real_cause(
    case: str, inputs: int, output: str, causes: list[str], model_dir: Path, tmp_path: Path
) -> None:
    srcs = [str(_image(tmp_path / f"{n}.png")) for n in "ab"[:inputs]]
    (tmp_path / "notes.txt").write_text("not a folder")
    before = _tree(tmp_path)
    line = _refused(_upscale(model_dir, *srcs, "-o", str(tmp_path / output)), *causes)
    assert "several" not in line
    assert _tree(tmp_path) == before


def test_existing_folder_with_an_image_suffix_is_a_folder(model_dir: Path, tmp_path: Path) -> None:
    src = _image(tmp_path / "p.png")
    (tmp_path / "shots.png").mkdir()
    result = _upscale(model_dir, str(src), "-o", str(tmp_path / "shots.png"))
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "shots.png").iterdir()) == ["p_x2.png"]


def test_a_bad_file_in_the_middle_of_a_batch_fails_alone(model_dir: Path, tmp_path: Path) -> None:
    """Regression guard (this already worked): the files before and after a corrupt one are written."""
    srcs = [_image(tmp_path / "a.png"), tmp_path / "b.png", _image(tmp_path / "c.png")]
    srcs[1].write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    result = _upscale(model_dir, *map(str, srcs), "-o", str(tmp_path / "out"))
    assert result.exit_code == 1, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("pclup: error:")]
    assert len(errors) == 1 and "b.png" in errors[0]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a_x2.png", "c_x2.png"]  # no temp file
