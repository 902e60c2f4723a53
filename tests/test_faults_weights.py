"""Hostile or broken model files: configs, weights files, model folders, and writing a model folder.

Each test builds its own bad files in ``tmp_path``; every failure must be one line naming the cause, never
a traceback, never a big allocation, never code run from a file, never a half-written model.
"""

from __future__ import annotations

import errno
import json
import os
import pickle
import random
import resource
import struct
import tracemalloc
from pathlib import Path
from typing import Any

import pytest
import safetensors.torch
import torch
from PIL import Image as PILImage
from typer.testing import CliRunner

from conftest import tiny_model
from pclup.cli import app
from pclup.errors import IncompatibleCheckpointError, ModelFileError, UnsafeCheckpointError
from pclup.models import swinir
from pclup.weights import load_model, load_pretrained, read_state_dict, save_pretrained

runner = CliRunner()


def _one_line(e: pytest.ExceptionInfo[BaseException]) -> str:
    message = str(e.value)
    assert "\n" not in message and "weights_only" not in message
    return message


def _model(tmp_path: Path, name: str = "m", **args: Any) -> Path:
    """A tiny EDSR x2 model folder whose config.json args are then replaced by ``args``."""
    folder = save_pretrained(tiny_model("edsr", 2), tmp_path / name)
    if args:
        config = json.loads((folder / "config.json").read_text())
        config.update(args.pop("top", {}))
        config["args"] = args.pop("replace_args", None) or {**config["args"], **args}
        (folder / "config.json").write_text(json.dumps(config))
    return folder


def _cli_fails(args: list[str], *, code: int = 1) -> str:
    """The error line of a command that must fail (the only line on stderr but for training's progress)."""
    result = runner.invoke(app, args)
    assert result.exit_code == code, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = result.stderr.strip().splitlines()
    errors = [line for line in lines if line.startswith("pclup: error: ")]
    assert errors == lines[-1:] and (len(lines) == 1 or args[0] == "finetune"), result.stderr
    assert "weights_only" not in lines[-1] and "Traceback" not in result.output
    return lines[-1]


# --- config.json values -------------------------------------------------------------------------------

BAD_CONFIGS = {
    "string": ({"n_feats": "abc"}, "n_feats must be an integer"),
    "negative": ({"n_feats": -1}, "n_feats must be an integer from 1"),
    "fraction": ({"n_feats": 64.5}, "n_feats must be an integer"),
    "bool": ({"n_resblocks": True}, "n_resblocks must be an integer"),
    "nan": ({"res_scale": float("nan")}, "res_scale must be a number"),
    "scale 0": ({"scale": 0, "top": {"scale": 0}}, "scale must be one of 2, 3, 4, 8, not 0"),
    "scale as text": ({"scale": "2", "top": {"scale": "2"}}, "scale must be one of"),
    "args a list": ({"replace_args": [1, 2]}, "'args' a JSON object"),
    "mean_shift a number": ({"mean_shift": 1}, "mean_shift must be true or false"),
    "architecture a list": ({"top": {"architecture": ["edsr"]}}, "'architecture' must be a name"),
}


@pytest.mark.parametrize("case", list(BAD_CONFIGS))
def test_bad_config_values_are_one_line_errors(case: str, tmp_path: Path) -> None:
    args, expected = BAD_CONFIGS[case]
    folder = _model(tmp_path, **dict(args))
    with pytest.raises(IncompatibleCheckpointError) as e:
        load_model(str(folder))
    assert "config.json" in _one_line(e) and expected in str(e.value)
    PILImage.new("RGB", (8, 8)).save(tmp_path / "in.png")  # (a missing input would be refused first)
    for command in (["info", str(folder)], ["upscale", str(tmp_path / "in.png"), "-m", str(folder)]):
        assert expected in _cli_fails(command)


def test_finetune_from_a_bad_config_fails_before_training(tmp_path: Path) -> None:
    folder = _model(tmp_path, n_feats="abc")
    data = tmp_path / "data"
    data.mkdir()
    PILImage.new("RGB", (32, 32)).save(data / "a.png")
    args = ["-m", str(folder), "-s", "2", "--data", str(data), "--out", str(tmp_path / "run"), "--steps", "1"]
    line = _cli_fails(["finetune", *args, "--device", "cpu"])
    assert "n_feats must be an integer" in line


def _maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kilobytes on Linux


def test_a_config_asking_for_a_huge_network_fails_without_allocating(tmp_path: Path) -> None:
    # 20000 channels beside 8-channel weights: 14 GB if it were built; out of bounds, refused at once
    with pytest.raises(IncompatibleCheckpointError) as e:
        load_pretrained(_model(tmp_path, "huge", n_feats=20000))
    assert "n_feats must be an integer from 1 to 4096, not 20000" in _one_line(e)
    # within bounds but not what the weights file holds: refused from its header, before any real allocation
    folder = _model(tmp_path, "big", n_feats=1500)
    before = _maxrss_mb()
    with pytest.raises(IncompatibleCheckpointError) as e:
        load_pretrained(folder)
    assert _maxrss_mb() - before < 200
    assert "head.0.weight is (8, 3, 3, 3) in the file but (1500, 3, 3, 3) in the model" in _one_line(e)


# --- integer weights ------------------------------------------------------------------------------------


def test_integer_weights_are_refused_on_every_route(tmp_path: Path) -> None:
    folder = _model(tmp_path)
    state = safetensors.torch.load_file(folder / "model.safetensors")
    state["head.0.weight"] = state["head.0.weight"].round().to(torch.int64)
    safetensors.torch.save_file(state, folder / "model.safetensors")
    with pytest.raises(IncompatibleCheckpointError) as e:
        load_model(str(folder))
    assert "not floating point (head.0.weight is int64)" in _one_line(e)
    # a third-party pickle (detected layout) and a bare safetensors file
    for path in (tmp_path / "int.pth", tmp_path / "int.safetensors"):
        state = dict(tiny_model("edsr").state_dict())
        state["tail.1.weight"] = state["tail.1.weight"].to(torch.int32)
        torch.save(state, path) if path.suffix == ".pth" else safetensors.torch.save_file(state, path)
        with pytest.raises(IncompatibleCheckpointError) as e:
            load_model(str(path))
        assert "tail.1.weight is int32" in _one_line(e)
    # integer tables that a network recomputes (SwinIR's relative_position_index) still load
    model = tiny_model("swinir").eval()
    official = swinir.export_official(model.state_dict(), model.config)
    assert any(not v.is_floating_point() for v in official.values())
    torch.save({"params": official}, tmp_path / "swinir.pth")
    assert load_model(str(tmp_path / "swinir.pth")).model.config == model.config


# --- damaged and hostile weights files --------------------------------------------------------------


class _Exploit:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (os.system, (f"touch {self.marker}",))


def _safetensors_with_header(header_len: int, header: bytes) -> bytes:
    return struct.pack("<Q", header_len) + header


DAMAGED: dict[str, tuple[str, bytes | None, type[Exception], str]] = {
    "random bytes": (".pth", random.Random(0).randbytes(4096), ModelFileError,
                     "not a PyTorch checkpoint (not a zip or pickle file)"),
    "empty": (".pth", b"", ModelFileError, "empty file"),
    "truncated zip": (".pth", None, ModelFileError, "truncated or corrupt weights file"),
    "header longer than the file": (".safetensors", _safetensors_with_header(10_000, b"{}"), ModelFileError,
                                    "header length 10,000 does not fit a file of 10 bytes"),
    "header not JSON": (".safetensors", _safetensors_with_header(10, b"not json!!"), ModelFileError,
                        "its header is not JSON"),
    "100 MB header claimed": (".safetensors", _safetensors_with_header(100_000_000, b'{"a": 1}'),
                              ModelFileError, "header length 100,000,000 does not fit"),
}


@pytest.mark.parametrize("case", list(DAMAGED))
def test_damaged_weights_files_are_one_line_errors(case: str, tmp_path: Path) -> None:
    suffix, content, error, expected = DAMAGED[case]
    path = tmp_path / f"weights{suffix}"
    if content is None:  # a zip cut in half
        torch.save(tiny_model("edsr").state_dict(), path)
        content = path.read_bytes()[: path.stat().st_size // 2]
    path.write_bytes(content)
    tracemalloc.start()
    try:
        with pytest.raises(error) as e:
            read_state_dict(path)
        assert tracemalloc.get_traced_memory()[1] < 10_000_000
    finally:
        tracemalloc.stop()
    assert expected in _one_line(e)
    assert expected in _cli_fails(["info", str(path)])


@pytest.mark.parametrize("kind", ["pickle", "pickle protocol 0", "torch.save zip", "torch.save legacy"])
def test_a_pickle_that_would_run_code_is_refused_without_running_it(kind: str, tmp_path: Path) -> None:
    marker = tmp_path / "executed"
    path = tmp_path / "evil.pth"
    if kind.startswith("pickle"):
        path.write_bytes(pickle.dumps({"x": _Exploit(str(marker))}, protocol=0 if kind.endswith("0") else 4))
    else:
        payload = {"head.0.weight": torch.zeros(1), "x": _Exploit(str(marker))}
        torch.save(payload, path, _use_new_zipfile_serialization=kind.endswith("zip"))
    with pytest.raises(UnsafeCheckpointError) as e:
        read_state_dict(path)
    assert "refused to load: the pickle needs code beyond plain tensors to load (posix.system)" in (
        _one_line(e)
    )
    assert "posix.system" in _cli_fails(["info", str(path)])
    assert not marker.exists()


# --- model folders --------------------------------------------------------------------------------------


def test_a_training_run_folder_loads_its_model_or_says_it_is_unfinished(tmp_path: Path) -> None:
    run = tmp_path / "run"
    save_pretrained(tiny_model("edsr"), run / "checkpoint")  # a checkpoint holds config.json + weights too
    line = _cli_fails(["info", str(run)])
    hint = f"resume it with pclup train --resume {run}"
    assert line == f"pclup: error: {run} is an unfinished training run: {hint}"
    save_pretrained(tiny_model("edsr"), run / "model")
    loaded = load_model(str(run))
    assert loaded.name == "run" and loaded.source == str(run / "model") and loaded.scale == 2
    result = runner.invoke(app, ["info", str(run)])
    assert result.exit_code == 0 and f"source: {run / 'model'}" in result.output


@pytest.mark.parametrize("name", ["config.json", "model.safetensors"])
def test_links_out_of_a_model_folder_are_refused(name: str, tmp_path: Path) -> None:
    outside = _model(tmp_path, "elsewhere")
    folder = _model(tmp_path, "m")
    (folder / name).unlink()
    (folder / name).symlink_to(outside / name)
    with pytest.raises(ModelFileError) as e:
        load_model(str(folder))
    assert f"{folder / name}: a link to a file outside {folder}" in _one_line(e)
    with pytest.raises(ModelFileError):
        load_pretrained(folder)
    if name == "config.json":  # naming the weights file: its config.json beside it is not followed either
        with pytest.raises(ModelFileError, match="a link to a file outside"):
            load_model(str(folder / "model.safetensors"))
    # a link to a file inside the folder is fine
    (folder / name).unlink()
    (outside / name).rename(folder / f"real-{name}")
    (folder / name).symlink_to(f"real-{name}")
    assert load_model(str(folder)).scale == 2


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ('{"architecture": "edsr", "args": {}, "metadata": {"note": "' + "x" * 1_100_000 + '"}}',
         "too large for a model config"),
        (_nested(100_000), "not a readable JSON config (nested too deeply)"),
        ("[1, 2]", "not a JSON object"),
        ("{not json", "not a readable JSON config"),
    ],
    ids=["over 1 MB", "nested too deeply", "a list", "not JSON"],
)
def test_config_json_is_bounded_and_must_be_an_object(content: str, expected: str, tmp_path: Path) -> None:
    folder = _model(tmp_path)
    (folder / "config.json").write_text(content)
    with pytest.raises(ModelFileError) as e:
        load_pretrained(folder)
    assert expected in _one_line(e)
    assert expected in _cli_fails(["info", str(folder)])


# --- writing a model folder -------------------------------------------------------------------------------


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o027, 0o640)])
def test_saved_files_follow_the_umask(umask: int, mode: int, tmp_path: Path) -> None:
    old = os.umask(umask)
    try:
        folder = save_pretrained(tiny_model("edsr"), tmp_path / "m")
        result = runner.invoke(app, ["convert", str(folder), str(tmp_path / "converted")])
    finally:
        os.umask(old)
    assert result.exit_code == 0, result.output
    for out in (folder, tmp_path / "converted"):
        assert {p.name: p.stat().st_mode & 0o777 for p in out.iterdir()} == {
            "config.json": mode,
            "model.safetensors": mode,
        }


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_a_full_disk_leaves_the_old_model_intact(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = _model(tmp_path)
    (folder / "README.md").write_text("card")
    before = _snapshot(folder)

    def full_disk(tensors: Any, filename: str, metadata: Any = None) -> None:
        Path(filename).write_bytes(b"partial")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(safetensors.torch, "save_file", full_disk)
    bigger = tiny_model("edsr", 4)
    with pytest.raises(ModelFileError) as e:
        save_pretrained(bigger, folder)
    assert _one_line(e) == f"cannot write {folder}: No space left on device"
    assert _snapshot(folder) == before  # no temporary folder, nothing replaced
    # a fresh folder (and its parents) is not left behind either
    with pytest.raises(ModelFileError):
        save_pretrained(bigger, tmp_path / "new" / "sub")
    assert not (tmp_path / "new").exists()
    # the same through pclup convert
    line = _cli_fails(["convert", str(folder), str(tmp_path / "out")])
    assert line == f"pclup: error: cannot write {tmp_path / 'out'}: No space left on device"
    assert not (tmp_path / "out").exists()


def test_a_silently_short_write_is_caught(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = _model(tmp_path)
    before = _snapshot(folder)
    real = safetensors.torch.save_file

    def short_write(tensors: Any, filename: str, metadata: Any = None) -> None:
        real(tensors, filename, metadata)
        with open(filename, "r+b") as f:  # what a failed final flush leaves
            f.truncate(os.path.getsize(filename) // 2)

    monkeypatch.setattr(safetensors.torch, "save_file", short_write)
    with pytest.raises(ModelFileError, match=f"cannot write {folder}: the weights file came out incomplete"):
        save_pretrained(tiny_model("edsr", 4), folder)
    assert _snapshot(folder) == before


def test_a_file_in_the_way_is_a_one_line_error(tmp_path: Path) -> None:
    blocker = tmp_path / "taken"
    blocker.write_text("mine")
    with pytest.raises(ModelFileError) as e:
        save_pretrained(tiny_model("edsr"), blocker)
    assert _one_line(e) == f"cannot write {blocker}: it is a file, not a folder"
    with pytest.raises(ModelFileError, match=f"cannot write {blocker / 'sub'}: Not a directory"):
        save_pretrained(tiny_model("edsr"), blocker / "sub")
    assert blocker.read_text() == "mine"
    source = _model(tmp_path)
    assert "it is a file, not a folder" in _cli_fails(["convert", str(source), str(blocker)])
