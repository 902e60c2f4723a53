"""``pclup upscale``: files, folders and globs in; upscaled images out, atomically."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Annotated

import typer

from ._errors import handle_errors
from ._options import parse_tile

EXTS = ("auto", "png", "jpg", "webp", "tif")
# No image format pclup writes holds a side over 2**32 - 1 pixels (TIFF; PNG: 2**31 - 1), so a scale
# beyond it could not be stored even for a 1-pixel input.
MAX_SCALE = 2**32 - 1


@handle_errors
def upscale(
    inputs: Annotated[
        list[str],
        typer.Argument(metavar="INPUT...", help="Image files, folders or glob patterns ('photos/*.jpg').", show_default=False),
    ],
    scale: Annotated[
        float | None,
        typer.Option("--scale", "-s", help="Output scale, any factor >= 1 (default: the model's own; 4 with the default model).", show_default=False),
    ] = None,
    model: Annotated[
        str | None,
        typer.Option(
            "--model",
            "-m",
            help="Built-in name, model folder, weights file or Hub repo owner/name[@revision] (see 'pclup models'). "
            "Default: the embedded default model whose scale reaches -s (default-x2, -x3, -x4).",
            show_default=False,
        ),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="Output folder, or for one input the output file (a name ending in .png, .jpg, .webp, .tif, "
            ".bmp). Default: next to each input.",
        ),
    ] = None,
    suffix: Annotated[
        str | None,
        typer.Option(
            "--suffix", help="Appended to output file names, no '/' (default '_x<scale>').", show_default=False
        ),
    ] = None,
    ext: Annotated[str, typer.Option("--ext", help="auto (keep the input's format where it can hold the result), png, jpg, webp, tif.")] = "auto",
    tile: Annotated[str, typer.Option("--tile", "-t", help="Tile side in input pixels, 'auto' (from free memory) or 0 (no tiling).")] = "auto",
    tile_overlap: Annotated[
        int,
        typer.Option("--tile-overlap", min=0, help="Pixels shared by neighbouring tiles (at most half a tile)."),
    ] = 16,
    device: Annotated[str, typer.Option("--device", help="auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N, mps.")] = "auto",
    precision: Annotated[str, typer.Option("--precision", help="auto, fp32, fp16 (GPUs), bf16.")] = "auto",
    tta: Annotated[bool, typer.Option("--tta", help="x8 flip/rotate self-ensemble: a little better, 8x slower.")] = False,
    recursive: Annotated[bool, typer.Option("--recursive", "-r", help="Descend into sub-folders; mirror them in the output.")] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace outputs that already exist (default: skip them).")] = False,
    quality: Annotated[int, typer.Option("--quality", min=1, max=100, help="JPEG/WebP quality.")] = 95,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress and no per-file lines; errors only.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON summary on standard output.")] = False,
) -> None:
    """Upscale images. Exit 0 when every file succeeded (or was skipped), 1 when some failed, 2 on usage errors."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from pclup import __version__
    from pclup.errors import UsageError
    from pclup.inference.batch import check_suffix, collect_jobs, default_suffix, plan_outputs
    from pclup.inference.upscale import Upscaler, upscale_file
    from pclup.loading import load_model
    from pclup.models.zoo import default_model_name

    if ext not in EXTS:
        raise UsageError(f"--ext '{ext}' is not one of {', '.join(EXTS)}")
    if scale is not None and not (math.isfinite(scale) and scale >= 1):
        raise UsageError(f"--scale {scale:g} must be a finite number >= 1")
    if scale is not None and scale > MAX_SCALE:
        raise UsageError(
            f"--scale {scale:g} is too large: no image format holds a side of more than {MAX_SCALE} pixels"
        )
    tile_value = parse_tile(tile)
    if suffix is not None:
        check_suffix(suffix)

    if model is None or model.lower() == "default":
        model = default_model_name(scale)  # the packaged default whose scale reaches the requested one
    loaded = load_model(model, scale=round(scale) if scale and float(scale).is_integer() else None)
    out_scale = scale or float(loaded.scale)
    suffix = default_suffix(out_scale) if suffix is None else suffix
    jobs = collect_jobs(inputs, recursive=recursive, suffix=suffix)
    dsts = plan_outputs(jobs, output=output, suffix=suffix, ext=ext)  # every check on paths, before any work
    upscaler = Upscaler(loaded, device=device, precision=precision, tile=tile_value, tile_overlap=tile_overlap, tta=tta)

    console = Console(stderr=True, quiet=quiet or as_json)
    console.print(f"[bold]pclup[/] {upscaler.describe()}, output x{out_scale:g}")

    results = []
    progress = Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=console, transient=True, disable=quiet or as_json or not console.is_terminal,
    )
    with progress:
        files_task = progress.add_task("files", total=len(jobs))
        tiles_task = progress.add_task("tiles", total=1, visible=False)

        def on_tile(done: int, total: int) -> None:
            progress.update(tiles_task, completed=done, total=total, visible=total > 1)

        for job, dst in zip(jobs, dsts, strict=True):
            progress.update(files_task, description=job.src.name)
            result = upscale_file(upscaler, job.src, dst, scale=out_scale, overwrite=overwrite, quality=quality, progress=on_tile)
            results.append(result)
            progress.advance(files_task)
            if result.status == "ok":
                (w, h), (ow, oh) = result.size, result.out_size  # type: ignore[misc]
                console.print(f"{job.src} -> {result.output} ({w}x{h} -> {ow}x{oh}, {result.seconds:.2f} s)")
            elif result.status == "skipped":
                console.print(f"[yellow]skipped[/] {job.src}: {result.error}")
            else:
                typer.echo(f"pclup: error: {result.error}", err=True)

    failed = sum(r.status == "failed" for r in results)
    if as_json:
        summary = {
            "pclup_version": __version__,
            "model": loaded.name,
            "source": loaded.source,
            "architecture": loaded.arch.name,
            "model_scale": loaded.scale,
            "scale": out_scale,
            "device": upscaler.torch_device.type,
            "precision": upscaler.precision_name,
            "files": [
                {
                    "input": str(r.input),
                    "output": str(r.output) if r.output else None,
                    "status": r.status,
                    "error": r.error,
                    "size": list(r.size) if r.size else None,
                    "output_size": list(r.out_size) if r.out_size else None,
                    "seconds": round(r.seconds, 4),
                }
                for r in results
            ],
            "ok": sum(r.status == "ok" for r in results),
            "skipped": sum(r.status == "skipped" for r in results),
            "failed": failed,
        }
        json.dump(summary, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        done = sum(r.status == "ok" for r in results)
        skipped = sum(r.status == "skipped" for r in results)
        console.print(f"{done} upscaled, {skipped} skipped, {failed} failed")
    if failed:
        raise typer.Exit(1)
