"""``pclup models``: the built-in models and the architectures."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from ._errors import handle_errors


def _millions(n: int) -> str:
    return f"{n / 1e6:.2f}M" if n >= 1e5 else f"{n / 1e3:.1f}K"


@handle_errors
def models(
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON document instead of tables.")] = False,
) -> None:
    """List the built-in models (name, scale, parameters, source, present locally) and architectures."""
    from rich.console import Console
    from rich.table import Table

    from pclup.archinfo import VARIANTS, variant_info
    from pclup.weights import cached_file, list_pretrained

    def variant_parameters(variant: str, scale: int) -> int:  # (no torch: the counts are tabulated)
        info = variant_info(variant)
        return info.parameters.get(scale, 0) if info else 0

    pretrained: list[dict[str, Any]] = [
        {
            "name": p.name,
            "scale": p.scale,
            "architecture": p.variant,
            "parameters": variant_parameters(p.variant, p.scale),
            "source": p.source,
            "license": p.license,
            "local": (p.folder() / p.filename).is_file()
            if p.packaged
            else cached_file(p.repo_id, p.filename, p.revision) is not None,
            "description": p.description,
        }
        for p in list_pretrained()
    ]
    variants: list[dict[str, Any]] = [
        {
            "name": v.name,
            "architecture": v.arch,
            "scales": list(v.scales),
            "parameters_x4": variant_parameters(v.name, 4),
            "paper": v.paper,
            "description": v.description,
        }
        for v in VARIANTS
    ]
    if as_json:
        typer.echo(json.dumps({"models": pretrained, "architectures": variants}, indent=2))
        return
    console = Console()
    table = Table(title="Built-in models (-m NAME)", title_justify="left")
    for column in ("name", "scale", "params", "source", "local"):
        table.add_column(
            column, justify="right" if column in ("scale", "params") else "left", overflow="fold"
        )
    for p in pretrained:
        local = "yes" if p["local"] else "no"
        table.add_row(p["name"], f"x{p['scale']}", _millions(p["parameters"]), p["source"], local)
    console.print(table)
    arch = Table(title="Architectures (--arch NAME, for training)", title_justify="left")
    for column in ("name", "scales", "params (x4)", "paper"):
        arch.add_column(column, justify="right" if column.startswith("params") else "left")
    for v in variants:
        scales = ",".join(f"x{s}" for s in v["scales"])
        arch.add_row(v["name"], scales, _millions(v["parameters_x4"]), v["paper"])
    console.print(arch)
    console.print(
        "Also accepted wherever a model is named: a model folder, a weights file "
        "(.safetensors/.pt/.pth), or a Hugging Face repo id owner/name\\[@revision].",
        style="dim",
    )
