"""``pclup upscale``: files, folders and globs in; upscaled images (and videos) out, atomically."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ._errors import handle_errors
from ._options import DeviceOpt, ModelOpt, PrecisionOpt, TileOpt


@handle_errors
def upscale(
    inputs: Annotated[
        list[str],
        typer.Argument(
            metavar="INPUT...",
            help="Image or video files, folders or glob patterns ('photos/*.jpg').",
            show_default=False,
        ),
    ],
    scale: Annotated[
        float | None,
        typer.Option(
            "--scale",
            "-s",
            help="Output scale, any factor >= 1 (default: the model's own; 4 with the default model).",
            show_default=False,
        ),
    ] = None,
    model: ModelOpt = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="Output folder, or for one input the output file (a name ending in .png, .jpg, .webp, .tif, "
            ".bmp, .avif; for a video .mp4, .mkv, .mov, .webm, .avi). Default: next to each input.",
        ),
    ] = None,
    suffix: Annotated[
        str | None,
        typer.Option(
            "--suffix",
            help="Appended to output file names, no '/' (default '_x<scale>').",
            show_default=False,
        ),
    ] = None,
    ext: Annotated[
        str,
        typer.Option(
            "--ext",
            help="auto (keep the input's format where it can hold the result), png, jpg, webp, tif, avif.",
        ),
    ] = "auto",
    tile: TileOpt = "auto",
    tile_overlap: Annotated[
        int,
        typer.Option(
            "--tile-overlap", min=0, help="Pixels shared by neighbouring tiles (at most half a tile)."
        ),
    ] = 16,
    device: DeviceOpt = "auto",
    precision: PrecisionOpt = "auto",
    tta: Annotated[
        bool, typer.Option("--tta", help="x8 flip/rotate self-ensemble: a little better, 8x slower.")
    ] = False,
    recursive: Annotated[
        bool, typer.Option("--recursive", "-r", help="Descend into sub-folders; mirror them in the output.")
    ] = False,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace outputs that already exist (default: skip them).")
    ] = False,
    quality: Annotated[int, typer.Option("--quality", min=1, max=100, help="JPEG/WebP/AVIF quality.")] = 95,
    png_level: Annotated[
        int | None,
        typer.Option(
            "--png-level", min=0, max=9,
            help="PNG compression, 0 (fastest) to 9 (smallest files); level 6 writes about 10% smaller "
            "files than the default in about four times the time.", show_default="2 (16-bit: 4)",
        ),
    ] = None,
    pix_fmt: Annotated[
        str,
        typer.Option(
            "--pix-fmt", help="Videos: pixel format, yuv420p, yuv422p, yuv444p or rgb24 (RGB, x264rgb)."
        ),
    ] = "yuv420p",
    crf: Annotated[
        int,
        typer.Option("--crf", min=0, max=51, help="Videos: x264 (VP9 for .webm) quality, 0 lossless to 51."),
    ] = 18,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="No progress and no per-file lines; errors only.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON summary on standard output.")] = False,
    denoise: Annotated[
        float | None,
        typer.Option(
            "--denoise", min=0.0, max=1.0,
            help="For photos: 0 keeps every detail (the default model), 1 removes noise, blur and JPEG "
            "blocks (the photo model); values between blend the two.", show_default="off: the model as it is",
        ),
    ] = None,
) -> None:
    """Upscale images and videos (videos need the extra pclup[video]). Exit 0 when every file succeeded
    (or was skipped), 1 when some failed, 2 on usage errors."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TaskProgressColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from pclup.inference.batch import Job
    from pclup.inference.media import check_settings
    from pclup.inference.run import count_statuses, plan_upscale

    if TYPE_CHECKING:
        from pclup.inference.upscale import FileResult

    check_settings(pix_fmt, crf)
    # plan_upscale checks the flags, the model's name and the inputs before it loads torch and the model
    plan = plan_upscale(
        inputs, model=model, scale=scale, output=output, suffix=suffix, ext=ext, tile=tile,
        tile_overlap=tile_overlap, device=device, precision=precision, tta=tta, recursive=recursive,
        denoise=denoise,
    )
    console = Console(stderr=True, quiet=quiet or as_json)
    console.print(f"[bold]pclup[/] {plan.describe()}")

    progress = Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TaskProgressColumn(),
        TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
        console=console, transient=True, disable=quiet or as_json or not console.is_terminal,
    )
    with progress:
        files_task = progress.add_task("files", total=len(plan.jobs))
        tiles_task = progress.add_task("tiles", total=1, visible=False)
        started = [time.perf_counter()]

        def on_file(job: Job) -> None:
            progress.update(files_task, description=job.src.name)
            progress.update(tiles_task, visible=False)
            started[0] = time.perf_counter()

        def on_tile(done: int, total: int) -> None:
            progress.update(tiles_task, description="tiles", completed=done, total=total, visible=total > 1)

        def on_frame(done: int, total: int) -> None:  # (the ETA column estimates the rest)
            rate = done / max(time.perf_counter() - started[0], 1e-9)
            progress.update(tiles_task, description=f"frames, {rate:.1f}/s", completed=done, total=total,
                            visible=True)

        def on_result(result: FileResult) -> None:
            progress.advance(files_task)
            if result.status == "ok":
                assert result.size is not None and result.out_size is not None  # an "ok" result has both
                (w, h), (ow, oh) = result.size, result.out_size
                sizes = f"{w}x{h} -> {ow}x{oh}, {result.seconds:.2f} s"
                console.print(f"{result.input} -> {result.output} ({sizes})")
                if result.notes:
                    console.print(f"[yellow]note[/] {result.output}: {'; '.join(result.notes)}")
            elif result.status == "skipped":
                console.print(f"[yellow]skipped[/] {result.input}: {result.error}")
            else:
                typer.echo(f"pclup: error: {result.error}", err=True)

        results = plan.run(
            overwrite=overwrite, quality=quality, pix_fmt=pix_fmt, crf=crf, on_file=on_file,
            on_result=on_result, on_tile=on_tile, on_frame=on_frame, png_level=png_level,
        )

    counts = count_statuses(results)
    if as_json:
        json.dump(plan.summary(results), sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        passed = plan.describe_unreadable()
        if passed is not None:
            console.print(passed, style="yellow", markup=False, highlight=False)
        console.print(f"{counts['ok']} upscaled, {counts['skipped']} skipped, {counts['failed']} failed")
    if counts["failed"]:
        raise typer.Exit(1)
