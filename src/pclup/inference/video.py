"""Upscale videos frame by frame, streamed: with the optional extra ``pclup[video]`` (imageio-ffmpeg,
which brings its own ffmpeg).

A frame is read, upscaled and written before the next is read, so memory does not grow with the length
of the clip. The frame rate and the first audio track are carried over (the audio copied as it is when
the container stays the same, else re-encoded); other audio tracks and subtitles are dropped, and the
result's notes say so. The video is encoded with x264 (VP9 for ``.webm``) at ``crf`` and ``pix_fmt``
(``rgb24``: x264's RGB encoder, lossless with ``crf=0``). The output is written to a hidden temporary
file in its folder and renamed into place when complete: an error, Ctrl+C or SIGTERM leaves no part
of it behind.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import re
import secrets
import subprocess
import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from .. import images
from .._fs import _fsync_folder, _new_file_mode, _publish
from ..errors import ImageReadError, ImageWriteError, PclupError, is_out_of_memory
from ..models.registry import colour_channels
from .batch import upscaled_size
from .media import DEFAULT_CRF, VIDEO_EXTRA, check_settings
from .tiling import not_enough_memory
from .upscale import FileResult, Upscaler

MAX_FPS = 1000.0
_MUXERS = {".mp4": "mp4", ".mkv": "matroska", ".mov": "mov", ".webm": "webm", ".avi": "avi"}
_STREAM = re.compile(r"^\s*Stream #(\d+:\d+)[^:]*:\s*(Video|Audio|Subtitle|Data|Attachment):", re.MULTILINE)
FrameProgress = Callable[[int, int], None]


@dataclass(frozen=True)
class VideoInfo:
    """What a video's header says: frame size (w, h), frame rate, duration, streams."""

    size: tuple[int, int]
    fps: float
    duration: float
    audio: list[str]  # stream ids ("0:1"), in order
    subtitles: list[str]

    @property
    def frames(self) -> int:
        """The expected number of frames (from rate and duration; 0 when unknown)."""
        return max(0, round(self.fps * self.duration))


def _ffmpeg() -> str:
    try:
        import imageio_ffmpeg
    except ImportError:
        raise PclupError(f"videos need the extra pclup[video]: {VIDEO_EXTRA}") from None
    return str(imageio_ffmpeg.get_ffmpeg_exe())


def probe(src: Path) -> VideoInfo:
    """Read ``src``'s header (nothing decoded) and check it before any frame is allocated.

    Raises:
        ImageReadError: not a video, no video stream, or a frame size or rate out of bounds.
    """
    exe = _ffmpeg()
    from imageio_ffmpeg._parsing import parse_ffmpeg_header

    try:
        done = subprocess.run(
            [exe, "-hide_banner", "-nostdin", "-i", str(src)],
            capture_output=True, timeout=60, check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        raise ImageReadError(f"cannot read {src}: {e}") from None
    text = done.stderr.decode("utf-8", "replace")
    streams = _STREAM.findall(text)
    if not any(kind == "Video" for _, kind in streams):
        last = text.strip().splitlines()[-1:] or ["no video stream"]
        raise ImageReadError(f"cannot read {src}: not a video pclup can read ({last[0].strip()})")
    try:
        meta = parse_ffmpeg_header(text)
        w, h = (int(v) for v in meta["size"])
        fps, duration = float(meta.get("fps") or 0), float(meta.get("duration") or 0)
    except Exception as e:  # noqa: BLE001 - any header ffmpeg's parser cannot follow
        raise ImageReadError(f"cannot read {src}: unreadable video header ({e})") from None
    limit = images.MAX_IMAGE_PIXELS
    if w < 1 or h < 1 or (limit is not None and w * h > limit):
        raise ImageReadError(
            f"cannot read {src}: frame size {w}x{h} is out of bounds (at most {limit} pixels a frame, "
            "pclup.images.MAX_IMAGE_PIXELS)"
        )
    if not (math.isfinite(fps) and 0 < fps <= MAX_FPS) or not math.isfinite(duration) or duration < 0:
        raise ImageReadError(
            f"cannot read {src}: frame rate {fps:g} or duration {duration:g} s is out of bounds"
        )
    return VideoInfo(
        (w, h), fps, duration,
        audio=[sid for sid, kind in streams if kind == "Audio"],
        subtitles=[sid for sid, kind in streams if kind == "Subtitle"],
    )


def dropped_note(info: VideoInfo) -> str | None:
    """One line naming the streams the output does not keep, or None."""
    parts = []
    if len(info.audio) > 1:
        n = len(info.audio) - 1
        parts.append(f"{n} more audio track{'s' if n > 1 else ''} ({', '.join(info.audio[1:])})")
    if info.subtitles:
        n = len(info.subtitles)
        parts.append(f"{n} subtitle track{'s' if n > 1 else ''} ({', '.join(info.subtitles)})")
    if not parts:
        return None
    return f"dropped {' and '.join(parts)}: only the video and the first audio track are kept"


def _encoder(dst: Path, pix_fmt: str, crf: int, size: tuple[int, int]) -> tuple[str, list[str]]:
    """The codec and ffmpeg output options for ``dst``."""
    params = ["-f", _MUXERS.get(dst.suffix.lower(), "mp4")]
    if dst.suffix.lower() == ".webm":
        codec = "libvpx-vp9"
        params += ["-crf", str(max(crf, 0)), "-b:v", "0"] + (["-lossless", "1"] if crf == 0 else [])
        pix_fmt = "yuv444p" if pix_fmt == "rgb24" else pix_fmt
    else:
        codec = "libx264rgb" if pix_fmt == "rgb24" else "libx264"
        params += ["-crf", str(crf), "-preset", "medium"]
    if dst.suffix.lower() in (".mp4", ".mov"):
        params += ["-movflags", "+faststart"]
    if _padded(size, pix_fmt):  # chroma subsampling needs even sides: pad one pixel
        params += ["-vf", "pad=ceil(iw/2)*2:ceil(ih/2)*2"]
    return codec, ["-pix_fmt", pix_fmt, *params]


def _padded(size: tuple[int, int], pix_fmt: str) -> tuple[int, int] | None:
    """The even size a ``size`` (w, h) frame is padded to for ``pix_fmt``, or None when it is not."""
    if pix_fmt not in ("yuv420p", "yuv422p") or not (size[0] % 2 or size[1] % 2):
        return None
    return size[0] + size[0] % 2, size[1] + size[1] % 2


def _frames(src: Path) -> Iterator[bytes]:
    """The raw RGB frames of ``src`` (its header skipped)."""
    import imageio_ffmpeg

    gen = imageio_ffmpeg.read_frames(str(src), pix_fmt="rgb24")
    try:
        next(gen)  # the metadata, already checked by probe()
        yield from gen
    finally:
        gen.close()


def _hidden_temp(dst: Path) -> Path:
    """A new, empty, hidden file beside ``dst`` (created here, so that no other writer takes the name)."""
    tmp = dst.parent / f".{dst.name[:120]}.pclup-{secrets.token_hex(6)}.tmp"
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    return tmp


def _upscale_frame(upscaler: Upscaler, frame: np.ndarray, scale: float) -> np.ndarray:
    rgb_model = colour_channels(upscaler.loaded.model.config) == 3
    y = upscaler.upscale_tensor(images.to_tensor(frame, expand_gray=rgb_model), scale)
    return np.ascontiguousarray(images.from_tensor(y, np.uint8, channels=3))


def _encode(
    upscaler: Upscaler, src: Path, tmp: Path, dst: Path, info: VideoInfo, *, scale: float, pix_fmt: str,
    crf: int, progress: FrameProgress | None,
) -> tuple[tuple[int, int], int]:
    """Stream ``src``'s frames through the model into ``tmp``; ``(output size (w, h), frames)``."""
    import imageio_ffmpeg

    w, h = info.size
    oh, ow = upscaled_size(h, w, scale)
    codec, params = _encoder(dst, pix_fmt, crf, (ow, oh))
    same = dst.suffix.lower() == src.suffix.lower()
    writer: Generator[None, Any, None] = imageio_ffmpeg.write_frames(
        str(tmp), (ow, oh), fps=Fraction(info.fps).limit_denominator(100000), codec=codec, quality=None,
        macro_block_size=1, ffmpeg_log_level="error", output_params=params,
        audio_path=str(src) if info.audio else None, audio_codec="copy" if same and info.audio else None,
    )
    writer.send(None)
    total, done = info.frames, 0
    try:
        for raw in _frames(src):
            frame = np.frombuffer(raw, np.uint8).reshape(h, w, 3)
            writer.send(_upscale_frame(upscaler, frame, scale))
            done += 1
            if progress is not None:
                progress(done, max(total, done))
    except BaseException:
        with contextlib.suppress(BaseException):  # kill ffmpeg now, not after it has encoded the rest
            writer.throw(KeyboardInterrupt())
        raise
    writer.close()  # waits for ffmpeg to finish the file
    if done == 0:
        raise ImageReadError(f"cannot read {src}: no frame could be decoded")
    if tmp.stat().st_size == 0:
        raise ImageWriteError(f"cannot write {dst}: ffmpeg wrote nothing (codec {codec}, {pix_fmt})")
    return (ow, oh), done


def _publish_video(tmp: Path, dst: Path, overwrite: bool) -> bool:
    """Give the finished ``tmp`` its name as :func:`pclup._fs.atomic_write` does (mode, fsync, rename)."""
    mode = _new_file_mode(dst)
    if mode is not None and hasattr(os, "chmod"):
        os.chmod(tmp, mode)
    fd = os.open(tmp, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    published = _publish(str(tmp), dst, overwrite)
    if published:
        _fsync_folder(dst.parent)
    return published


def upscale_video_file(
    upscaler: Upscaler,
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    *,
    scale: float | None = None,
    overwrite: bool = False,
    pix_fmt: str = "yuv420p",
    crf: int = DEFAULT_CRF,
    progress: FrameProgress | None = None,
) -> FileResult:
    """Upscale the video ``src`` into ``dst``, streamed, atomically. Errors of this file are returned.

    ``progress`` is called with ``(frames done, frames expected)`` after each frame. An existing ``dst``
    is skipped unless ``overwrite``. Ctrl+C and SIGTERM (raised as exceptions) remove the temporary file
    and propagate.
    """
    start = time.perf_counter()
    src, dst = Path(src), Path(dst)
    check_settings(pix_fmt, crf)
    if dst.resolve() == src.resolve():
        return FileResult(src, dst, "failed", f"{dst}: the output would overwrite the input")
    exists = FileResult(src, dst, "skipped", f"{dst} exists (use --overwrite)")
    if os.path.lexists(dst) and not overwrite:
        return exists
    tmp: Path | None = None
    info: VideoInfo | None = None
    out_scale = upscaler.output_scale(scale)
    try:
        info = probe(src)
        dst.parent.mkdir(parents=True, exist_ok=True)
        tmp = _hidden_temp(dst)
        out_size, _ = _encode(
            upscaler, src, tmp, dst, info, scale=out_scale, pix_fmt=pix_fmt, crf=crf, progress=progress
        )
        published = _publish_video(tmp, dst, overwrite)
        tmp = None
    except PclupError as e:
        message = str(e) if isinstance(e, (ImageReadError, ImageWriteError)) else f"cannot upscale {src}: {e}"
        return FileResult(src, None, "failed", message, seconds=time.perf_counter() - start)
    except OSError as e:  # a write to ffmpeg that failed: ffmpeg stopped (its error is on stderr)
        detail = e.strerror or str(e).splitlines()[0]
        message = f"cannot write {dst}: {detail}"
        return FileResult(src, None, "failed", message, seconds=time.perf_counter() - start)
    except Exception as e:  # noqa: BLE001 - out of memory fails this file only
        if not is_out_of_memory(e) or info is None:
            raise
        size = upscaled_size(info.size[1], info.size[0], out_scale)
        message = f"cannot upscale {src}: {not_enough_memory(size)}"
        return FileResult(src, None, "failed", message, seconds=time.perf_counter() - start)
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
    if not published:
        return dataclasses.replace(exists, seconds=time.perf_counter() - start)
    notes = [n for n in [dropped_note(info)] if n]
    pad = _padded(out_size, pix_fmt)
    if pad is not None:
        notes.append(f"padded to {pad[0]}x{pad[1]}: {pix_fmt} needs even sides (--pix-fmt yuv444p does not)")
    return FileResult(src, dst, "ok", None, info.size, out_size, time.perf_counter() - start, notes)
