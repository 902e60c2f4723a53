"""``pclup info`` and ``pclup convert``: inspect any model, turn it into pclup's format (or spandrel's)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Annotated, Any

import typer

from ._errors import handle_errors
from ._options import ModelArg, ScaleOpt


@handle_errors
def info(
    model: ModelArg,
    scale: ScaleOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Load a model and show its architecture, scale, parameters and configuration."""
    data = _packaged_info(model, scale)  # a model shipped in the package: from its files, without torch
    if data is None:
        data = _loaded_info(model, scale)
    if as_json:
        typer.echo(json.dumps(data, indent=2))
        return
    typer.echo(f"{data['name']}: {data['architecture']} x{data['scale']}, {data['parameters']:,} parameters")
    typer.echo(f"  source: {data['source']}")
    for key, value in data["config"].items():
        typer.echo(f"  {key}: {value}")


def _packaged_info(model: str, scale: int | None) -> dict[str, Any] | None:
    from pclup.archinfo import packaged_model_info
    from pclup.weights import find_pretrained

    if Path(model).expanduser().exists():
        return None
    found = find_pretrained(model, scale)
    if found is None or not found.packaged or (scale is not None and found.scale != scale):
        return None
    return packaged_model_info(found.folder(), found.name, found.source)


def _loaded_info(model: str, scale: int | None) -> dict[str, Any]:
    from pclup.weights import check_model_spec

    check_model_spec(model, scale)  # a name that names nothing: answered before torch loads

    from pclup.models import count_parameters
    from pclup.weights import load_model

    loaded = load_model(model, scale=scale)
    config = dataclasses.asdict(loaded.model.config)
    return {
        "name": loaded.name,
        "source": loaded.source,
        "architecture": loaded.arch.name,
        "scale": loaded.scale,
        "parameters": count_parameters(loaded.model),
        "supports_fp16": loaded.arch.supports_fp16,
        "supports_bf16": loaded.arch.supports_bf16,
        "config": config,
    }


@handle_errors
def convert(
    model: ModelArg,
    output: Annotated[
        Path,
        typer.Argument(
            help="Folder to write config.json and model.safetensors to; with --layout spandrel, the weights "
            "file (.safetensors or .pth)."
        ),
    ],
    scale: ScaleOpt = None,
    layout: Annotated[
        str,
        typer.Option(
            "--layout",
            help="pclup: a pclup model folder. spandrel: one weights file that spandrel (chaiNNer) loads "
            "(compact, RCAN, SwinIR, RRDBNet).",
        ),
    ] = "pclup",
    half: Annotated[bool, typer.Option("--half", help="Store float16 weights (half the size).")] = False,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace a model already in OUTPUT.")
    ] = False,
) -> None:
    """Convert any model pclup can load (third-party checkpoint, Hub repo) into a pclup model folder, or
    into one weights file for spandrel / chaiNNer (--layout spandrel)."""
    from pclup.errors import UsageError
    from pclup.weights import SPANDREL_SUFFIXES, WEIGHTS_NAME, export_spandrel, load_model, save_pretrained

    if layout not in ("pclup", "spandrel"):
        raise UsageError(f"--layout is pclup or spandrel, not {layout!r}")
    if layout == "spandrel":
        if output.suffix.lower() not in SPANDREL_SUFFIXES:
            raise UsageError(f"{output}: with --layout spandrel, OUTPUT is a .safetensors or .pth file")
        if output.exists() and not overwrite:
            raise UsageError(f"{output} already exists; pass --overwrite to replace it")
        loaded = _native(load_model(model, scale=scale), model)
        export_spandrel(
            loaded.model, output, half=half, overwrite=overwrite, metadata={"converted_from": loaded.source}
        )
        typer.echo(f"wrote {output} ({loaded.arch.name} x{loaded.scale} for spandrel, from {loaded.source})")
        return
    if (output / WEIGHTS_NAME).exists() and not overwrite:
        raise UsageError(f"{output} already holds a model; pass --overwrite to replace it")
    loaded = _native(load_model(model, scale=scale), model)
    save_pretrained(loaded.model, output, metadata={"converted_from": loaded.source}, half=half)
    typer.echo(f"wrote {output} ({loaded.arch.name} x{loaded.scale}, from {loaded.source})")


def _native(loaded: Any, spec: str) -> Any:
    """``loaded`` if pclup has its architecture; UsageError for a network loaded through spandrel."""
    from pclup.errors import UsageError

    if not loaded.native:
        raise UsageError(
            f"{spec}: {loaded.arch.name} is loaded through spandrel and is already in a layout spandrel "
            "reads; pclup converts its own architectures only"
        )
    return loaded
