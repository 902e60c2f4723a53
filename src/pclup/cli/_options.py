"""Option and argument types shared by several commands."""

from __future__ import annotations

from typing import Annotated

import typer

ModelArg = Annotated[
    str,
    typer.Argument(
        metavar="MODEL",
        help="A built-in model name (see 'pclup models'), a model folder, a weights file "
        "(.safetensors, .pt, .pth) or a Hugging Face repo id owner/name[@revision].",
        show_default=False,
    ),
]
ScaleOpt = Annotated[
    int | None,
    typer.Option(
        "--scale", "-s", min=1, help="Scale to pick where the source holds several (super-image repos).",
        show_default="the model's own",
    ),
]


def parse_tile(tile: str) -> int | str:
    """``--tile``: ``"auto"``, 0 (no tiling) or a side of at least ``MIN_TILE`` pixels."""
    from pclup.errors import UsageError
    from pclup.inference.upscale import MIN_TILE

    if tile == "auto":
        return tile
    try:
        side = int(tile)
    except ValueError:
        raise UsageError(f"--tile '{tile}' must be 'auto', 0 or a number of pixels") from None
    if side != 0 and side < MIN_TILE:
        raise UsageError(f"--tile {side} is too small: at least {MIN_TILE} pixels, 0 (no tiling) or 'auto'")
    return side
