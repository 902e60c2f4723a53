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
