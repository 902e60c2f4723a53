"""Option and argument types shared by several commands: each flag is defined once, here."""

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
ModelOpt = Annotated[
    str | None,
    typer.Option(
        "--model",
        "-m",
        help="Built-in name, model folder, weights file or Hub repo owner/name[@revision] "
        "(see 'pclup models'). Default: the embedded default model whose scale reaches -s "
        "(default-x2, -x3, -x4); 'photo' picks the photo model the same way (photo-x2, -x4).",
        show_default=False,
    ),
]
ModelsOpt = Annotated[
    list[str],
    typer.Option(
        "--model", "-m", help="Model spec or 'bicubic'; repeat for a comparison.", show_default=False
    ),
]
ScaleOpt = Annotated[
    int | None,
    typer.Option(
        "--scale", "-s", min=1, help="Scale to pick where the source holds several (super-image repos).",
        show_default="the model's own",
    ),
]
DeviceOpt = Annotated[
    str, typer.Option("--device", help="auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N, mps.")
]
PrecisionOpt = Annotated[str, typer.Option("--precision", help="auto, fp32, fp16 (GPUs), bf16.")]
#: ``pclup bench`` measures in fp32 unless told otherwise, so that its figures compare with the papers'.
BenchPrecisionOpt = Annotated[
    str, typer.Option("--precision", help="fp32 (comparable figures), auto, fp16, bf16.")
]
TileOpt = Annotated[
    str,
    typer.Option(
        "--tile", "-t", help="Tile side in input pixels, 'auto' (from free memory) or 0 (no tiling)."
    ),
]
