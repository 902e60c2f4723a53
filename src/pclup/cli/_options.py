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
    typer.Option("--scale", "-s", min=1, help="Scale to pick where the source holds several (super-image repos)."),
]


def parse_tile(tile: str) -> int | str:
    """``--tile``: ``"auto"`` or a whole number of pixels (0: no tiling)."""
    from pclup.errors import UsageError

    if tile == "auto":
        return tile
    try:
        return int(tile)
    except ValueError:
        raise UsageError(f"--tile '{tile}' must be 'auto', 0 or a number of pixels") from None
