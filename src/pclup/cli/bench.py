"""``pclup bench``: PSNR/SSIM tables of models on the standard test sets."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Annotated

import typer

from ._errors import handle_errors
from ._options import BenchPrecisionOpt, DeviceOpt, ModelsOpt, TileOpt


@handle_errors
def bench(
    models: ModelsOpt,
    sets: Annotated[
        list[str],
        typer.Option(
            "--set",
            help="Set5, Set14, B100 (BSD100), Urban100, Manga109, or a folder of HR images; repeatable. "
            "A suffix -real or -jpegQ evaluates a degraded variant (see --degrade).",
        ),
    ] = ["Set5"],  # noqa: B006 - typer needs a literal default
    scales: Annotated[list[int], typer.Option("--scale", "-s", help="Scale(s); repeatable.")] = [4],  # noqa: B006
    data_dir: Annotated[
        Path | None,
        typer.Option(
            "--data-dir", help="Folder holding the named sets.", show_default="$PCLUP_DATA, else the Hub"
        ),
    ] = None,
    device: DeviceOpt = "auto",
    precision: BenchPrecisionOpt = "fp32",
    tile: TileOpt = "auto",
    tta: Annotated[bool, typer.Option("--tta", help="x8 self-ensemble.")] = False,
    json_path: Annotated[
        Path | None, typer.Option("--json", help="Write the results as JSON here.", show_default="no JSON")
    ] = None,
    csv_path: Annotated[
        Path | None, typer.Option("--csv", help="Write the averages as CSV here.", show_default="no CSV")
    ] = None,
    markdown: Annotated[
        bool, typer.Option("--markdown", help="Print a Markdown table instead of the rich table.")
    ] = False,
    save_images: Annotated[Path | None, typer.Option(
        "--save-images", help="Write every SR output under this folder.", show_default="not written")] = None,
    compare: Annotated[
        Path | None,
        typer.Option(
            "--compare",
            help="Write a side-by-side PNG of crops where the models differ most.",
            show_default="none",
        ),
    ] = None,
    crop: Annotated[int, typer.Option("--crop", min=16, help="Crop side for --compare, in HR pixels.")] = 96,
    degrade: Annotated[str | None, typer.Option(
        "--degrade", help="Evaluate on degraded LR: realistic (blur, noise, JPEG; seeded), jpegQ (the "
        "bicubic LR as a quality-Q JPEG, e.g. jpeg30) or a .toml file of ranges. A set named B100-real "
        "or Set14-jpeg30 does the same for that set.", show_default="clean bicubic LR")] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the realistic degradations.")] = 0,
) -> None:
    """Evaluate models on test sets: PSNR/SSIM on Y (MATLAB protocol), seconds, megapixels per second."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
    from rich.table import Table

    from pclup.datasets import precheck_bench

    precheck_bench(models, sets, scales, data_dir, degrade)  # flags, sets, model names: before torch loads

    from pclup import images
    from pclup.bench import benchmark, compare_grid

    console = Console(stderr=True)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, console=console, transient=True, disable=not console.is_terminal) as progress:
        task = progress.add_task("bench", total=None)

        def on_image(dataset: str, scale: int, done: int, total: int) -> None:
            progress.update(task, description=f"{dataset} x{scale}", completed=done, total=total)

        report = benchmark(
            models, sets, scales, data_dir=data_dir, device=device, precision=precision, tile=tile, tta=tta,
            save_images=save_images, compare_crop=crop if compare else None, on_image=on_image,
            degrade=degrade, seed=seed,
        )

    rows = [
        (
            r.model, r.dataset, f"x{r.scale}", f"{r.psnr:.2f}", f"{r.ssim:.4f}", str(r.images),
            f"{r.seconds:.2f}", "-" if math.isinf(r.mp_per_second) else f"{r.mp_per_second:.2f}",
        )
        for r in report.results
    ]
    header = ("model", "set", "scale", "PSNR", "SSIM", "images", "seconds", "MP/s")
    if markdown:
        typer.echo("| " + " | ".join(header) + " |")
        typer.echo("|" + "|".join("---" for _ in header) + "|")
        for row in rows:
            typer.echo("| " + " | ".join(row) + " |")
    else:
        title = f"pclup bench ({report.device}, PSNR/SSIM on Y, border = scale)"
        table = Table(title=title, title_justify="left")
        for column in header:
            table.add_column(column, justify="left" if column in ("model", "set") else "right")
        for row in rows:
            table.add_row(*row)
        Console().print(table)
    if json_path:
        json_path.write_text(json.dumps(report.to_json(), indent=2) + "\n")
    if csv_path:
        with csv_path.open("w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["model", "dataset", "scale", "psnr", "ssim", "images", "seconds"])
            for r in report.results:
                figures = [f"{r.psnr:.4f}", f"{r.ssim:.6f}", r.images, f"{r.seconds:.3f}"]
                writer.writerow([r.model, r.dataset, r.scale, *figures])
    if compare:
        grid = compare_grid(report.comparisons)
        images.write_image(images.Image(pixels=grid, format="PNG"), compare)
        console.print(f"wrote {compare}")
