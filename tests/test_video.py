"""``pclup upscale`` on videos (the extra ``pclup[video]``): frames streamed, rate and first audio track
kept, lossless check against the image path, atomic output, and the message without the extra."""

from __future__ import annotations

import math
import shutil
import struct
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage
from typer.testing import CliRunner

from pclup import images
from pclup.cli import app
from pclup.errors import ImageReadError

runner = CliRunner()
W, H, FRAMES, FPS = 64, 48, 24, 24


def _ffmpeg_module():  # type: ignore[no-untyped-def]
    return pytest.importorskip("imageio_ffmpeg")


def _wav(path: Path, seconds: float = 1.0, rate: int = 8000, hz: float = 440.0) -> Path:
    n = int(seconds * rate)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(b"".join(struct.pack("<h", int(8000 * math.sin(2 * math.pi * hz * i / rate))) for i in range(n)))
    return path


def _frame(i: int) -> np.ndarray:
    yy, xx = np.mgrid[0:H, 0:W]
    return np.stack([(xx * 4 + i * 5) % 256, (yy * 5) % 256, ((xx + yy) * 3 + i) % 256], -1).astype(np.uint8)


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 1-second 64x48 H.264 clip at 24 frames/s with a sine audio track."""
    ffm = _ffmpeg_module()
    folder = tmp_path_factory.mktemp("clip")
    path = folder / "clip.mp4"
    writer = ffm.write_frames(str(path), (W, H), fps=FPS, audio_path=str(_wav(folder / "a.wav")), ffmpeg_log_level="error")
    writer.send(None)
    for i in range(FRAMES):
        writer.send(_frame(i))
    writer.close()
    return path


def _streams(path: Path) -> str:
    ffm = _ffmpeg_module()
    done = subprocess.run([ffm.get_ffmpeg_exe(), "-hide_banner", "-i", str(path)], capture_output=True, text=True)
    return done.stderr


def _first_frame(path: Path) -> np.ndarray:
    ffm = _ffmpeg_module()
    gen = ffm.read_frames(str(path))
    meta = next(gen)
    frame = np.frombuffer(next(gen), np.uint8).reshape(meta["size"][1], meta["size"][0], 3)
    gen.close()
    return frame


@pytest.mark.slow
def test_video_upscaled_lossless_matches_image_path(clip: Path, model_dir: Path, tmp_path: Path) -> None:
    ffm = _ffmpeg_module()
    out = tmp_path / "out.mp4"
    args = ["upscale", str(clip), "-m", str(model_dir), "-s", "2", "-o", str(out), "--pix-fmt", "rgb24", "--crf", "0"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    frames, _ = ffm.count_frames_and_secs(str(out))
    assert frames == FRAMES
    meta = next(ffm.read_frames(str(out)))
    assert tuple(meta["size"]) == (2 * W, 2 * H)
    assert meta["fps"] == FPS
    info = _streams(out)
    assert "Audio:" in info and "gbrp" in info  # x264rgb stores rgb24 as planar GBR
    # frame 0 through the image path: extract it as PNG, upscale it with the same model
    PILImage.fromarray(_first_frame(clip)).save(tmp_path / "f0.png")
    result = runner.invoke(app, ["upscale", str(tmp_path / "f0.png"), "-m", str(model_dir), "-s", "2"])
    assert result.exit_code == 0, result.output
    want = np.asarray(PILImage.open(tmp_path / "f0_x2.png").convert("RGB"), dtype=np.int16)
    got = _first_frame(out).astype(np.int16)
    assert np.abs(got - want).max() <= 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f0.png", "f0_x2.png", "out.mp4"]  # no temp left


@pytest.mark.slow
def test_folder_run_keeps_video_container(clip: Path, model_dir: Path, tmp_path: Path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    ffm = _ffmpeg_module()
    subprocess.run(
        [ffm.get_ffmpeg_exe(), "-v", "error", "-i", str(clip), "-c", "copy", str(src / "clip.mkv")], check=True
    )
    PILImage.fromarray(_frame(0)).save(src / "a.png")
    result = runner.invoke(app, ["upscale", str(src), "-m", str(model_dir), "-o", str(tmp_path / "out"), "--json"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a_x2.png", "clip_x2.mkv"]
    assert '"unreadable": []' in result.stdout
    info = _streams(tmp_path / "out" / "clip_x2.mkv")
    assert "yuv420p" in info and "128x96" in info and "Audio:" in info


@pytest.mark.slow
def test_interrupt_leaves_no_output(clip: Path, model_dir: Path, tmp_path: Path) -> None:
    from pclup.inference.upscale import Upscaler
    from pclup.inference.video import upscale_video_file
    from pclup.weights import load_model

    def stop(done: int, total: int) -> None:
        if done == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        upscale_video_file(Upscaler(load_model(str(model_dir))), clip, tmp_path / "out.mp4", progress=stop)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_extra_tracks_dropped_and_named(clip: Path, model_dir: Path, tmp_path: Path) -> None:
    ffm = _ffmpeg_module()
    (tmp_path / "s.srt").write_text("1\n00:00:00,000 --> 00:00:00,500\nhello\n")
    many = tmp_path / "many.mkv"
    cmd = [
        ffm.get_ffmpeg_exe(), "-v", "error", "-i", str(clip), "-i", str(_wav(tmp_path / "b.wav", hz=880)),
        "-i", str(tmp_path / "s.srt"), "-map", "0:v", "-map", "0:a", "-map", "1:a", "-map", "2:s", "-c:v", "copy",
        str(many),
    ]
    subprocess.run(cmd, check=True)
    result = runner.invoke(app, ["upscale", str(many), "-m", str(model_dir), "--json"])
    assert result.exit_code == 0, result.output
    assert "dropped 1 more audio track (0:2) and 1 subtitle track (0:3)" in result.stdout
    info = _streams(tmp_path / "many_x2.mkv")
    assert info.count("Audio:") == 1 and "Subtitle:" not in info


@pytest.mark.slow
def test_probe_refuses_frames_over_the_pixel_limit(clip: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pclup.inference.video import probe

    assert probe(clip).size == (W, H) and probe(clip).frames == FRAMES
    monkeypatch.setattr(images, "MAX_IMAGE_PIXELS", W * H - 1)
    with pytest.raises(ImageReadError, match="out of bounds"):
        probe(clip)


def test_without_the_extra_a_video_names_it(model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "imageio_ffmpeg", None)  # import fails as if not installed
    (tmp_path / "clip.mp4").write_bytes(b"\0" * 64)
    result = runner.invoke(app, ["upscale", str(tmp_path / "clip.mp4"), "-m", str(model_dir)])
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if "error" in line]
    assert len(lines) == 1 and "pip install 'pclup[video]'" in lines[0]
    folder = tmp_path / "f"
    folder.mkdir()
    shutil.copy(tmp_path / "clip.mp4", folder / "b.mov")
    PILImage.fromarray(_frame(0)).save(folder / "a.png")
    result = runner.invoke(app, ["upscale", str(folder), "-m", str(model_dir), "--json"])
    assert result.exit_code == 0, result.output
    assert "a video: pip install 'pclup[video]'" in result.stdout
    assert not (folder / "b_x2.mov").exists()


def test_video_flags_and_output_names_are_checked(model_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "clip.mp4").write_bytes(b"\0" * 64)
    PILImage.fromarray(_frame(0)).save(tmp_path / "a.png")
    for args, words in [
        (["--pix-fmt", "nv12"], "--pix-fmt"),
        (["-o", str(tmp_path / "x.png")], "is a video"),
    ]:
        result = runner.invoke(app, ["upscale", str(tmp_path / "clip.mp4"), "-m", str(model_dir), *args])
        assert result.exit_code == 2 and words in result.output, result.output
    result = runner.invoke(app, ["upscale", str(tmp_path / "a.png"), "-m", str(model_dir), "-o", str(tmp_path / "x.mp4")])
    assert result.exit_code == 2 and "is an image" in result.output, result.output
    result = runner.invoke(app, ["upscale", str(tmp_path / "clip.mp4"), "-m", str(model_dir), "--crf", "52"])
    assert result.exit_code == 2


@pytest.mark.slow
def test_odd_output_size_padded_for_yuv420p_and_said(clip: Path, model_dir: Path, tmp_path: Path) -> None:
    from pclup.inference.upscale import Upscaler
    from pclup.inference.video import upscale_video_file
    from pclup.weights import load_model

    up = Upscaler(load_model(str(model_dir)))
    result = upscale_video_file(up, clip, tmp_path / "odd.mp4", scale=1.51)  # 97x72
    assert result.status == "ok" and result.out_size == (97, 72)
    assert result.notes == ["padded to 98x72: yuv420p needs even sides (--pix-fmt yuv444p does not)"]
    result = upscale_video_file(up, clip, tmp_path / "odd.mkv", scale=1.51, pix_fmt="yuv444p")
    assert result.notes == [] and "97x72" in _streams(tmp_path / "odd.mkv")
