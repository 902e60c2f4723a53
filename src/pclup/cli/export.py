"""``pclup export``: write a model as an ONNX file (needs the ``pclup[onnx]`` extra)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ._errors import handle_errors
from ._options import ModelArg, ScaleOpt


@handle_errors
def export(
    model: ModelArg,
    output: Annotated[Path, typer.Argument(help="The .onnx file to write.", show_default=False)],
    scale: ScaleOpt = None,
    opset: Annotated[int, typer.Option("--opset", help="ONNX opset version (17 to 23).")] = 18,
    check: Annotated[
        bool,
        typer.Option("--check/--no-check", help="Run the graph once with onnxruntime (if installed) and "
                     "compare it with PyTorch before writing."),
    ] = True,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing OUTPUT.")] = False,
) -> None:
    """Export a model to ONNX: float32 NCHW in [0, 1], any height and width (needs pclup[onnx])."""
    from pclup.onnx_export import ExportError, export_onnx, missing_extra

    message = missing_extra()
    if message:  # before loading any model
        raise ExportError(message)
    result = export_onnx(model, output, scale=scale, opset=opset, check=check, overwrite=overwrite)
    checked = "" if result.max_diff is None else f", onnxruntime max |diff| {result.max_diff:.1e}"
    typer.echo(f"wrote {output} ({result.architecture} x{result.scale}, opset {result.opset}{checked})")
