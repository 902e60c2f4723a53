"""``pclup compare``: paired statistics of models' per-image PSNRs from ``pclup bench --json`` files."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated

import typer

from ._errors import handle_errors


def _fmt(x: float | None, digits: int = 3) -> str:
    if x is None:
        return "-"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return f"{x:+.{digits}f}"


def _p(p: float) -> str:
    return f"{p:.2e}" if p < 1e-3 else f"{p:.4f}"


@handle_errors
def compare(
    files: Annotated[
        list[Path] | None,
        typer.Argument(
            metavar="RESULTS",
            help="'pclup bench --json' files, the baseline's first. Each model in them is one arm; the "
            "baseline is the first model of the first file unless --baseline names it.",
            show_default=False,
        ),
    ] = None,
    arms: Annotated[
        list[str] | None,
        typer.Option(
            "--arm",
            metavar="NAME=FILE[,FILE...]",
            help="An arm made of several runs (seeds), one model per file; repeatable, the first is the "
            "baseline. Adds a bootstrap CI over seeds, then images. Not with positional files.",
            show_default="none: one run per model, from the files",
        ),
    ] = None,
    baseline: Annotated[
        str | None,
        typer.Option("--baseline", help="The model (or --arm NAME) to compare the others with.",
                     show_default="the first"),
    ] = None,
    confidence: Annotated[
        float, typer.Option("--confidence", min=0.5, max=0.999, help="Confidence level of the intervals.")
    ] = 0.95,
    draws: Annotated[int, typer.Option("--draws", min=100, help="Bootstrap draws (--arm only).")] = 10_000,
    seed: Annotated[int, typer.Option("--seed", help="Bootstrap random seed.")] = 0,
    json_path: Annotated[
        Path | None, typer.Option("--json", help="Write the comparison as JSON here.", show_default="no JSON")
    ] = None,
) -> None:
    """Compare models image by image: mean PSNR difference with a CI, and a Wilcoxon signed-rank p-value."""
    from pclup.errors import UsageError
    from pclup.stats import arms_from_files, arms_from_groups, compare_arms

    if files and arms:
        raise UsageError("give result files or --arm groups, not both")
    if arms:
        arm_list = arms_from_groups(arms, baseline)
    elif files:
        arm_list = arms_from_files([str(f) for f in files], baseline)
    else:
        raise UsageError("nothing to compare: give two or more result files, or two --arm NAME=FILE[,...]")
    rows = compare_arms(arm_list, confidence, draws, seed)

    grouped = any(len(a.runs) > 1 for a in arm_list)
    level = f"{confidence * 100:g}%"
    header = ["set", "scale", "model", "n", "base dB", "model dB", "diff dB", f"{level} CI (t)"]
    if grouped:
        header.append(f"{level} CI (bootstrap)")
    header += ["p (Wilcoxon)", "test", "note"]
    table = []
    for r in rows:
        s = r.summary
        line = [r.dataset, f"x{r.scale}", r.model, str(s.n), f"{s.baseline_mean:.3f}", f"{s.other_mean:.3f}",
                _fmt(s.mean_diff), f"[{_fmt(s.t_low)}, {_fmt(s.t_high)}]"]
        if grouped:
            line.append(f"[{_fmt(s.boot_low)}, {_fmt(s.boot_high)}]" if s.boot_low is not None else "-")
        line += [_p(s.p_value), s.p_method, "descriptive (n<6)" if r.descriptive else ""]
        table.append(line)
    widths = [max(len(h), *(len(t[i]) for t in table)) for i, h in enumerate(header)]
    typer.echo(f"baseline: {arm_list[0].label}   (diff = model - baseline, PSNR on Y)")
    for line in [header, *table]:
        typer.echo("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip())
    if any(r.descriptive for r in rows):
        typer.echo("descriptive: too few images for the signed-rank test to reach p < 0.05; see 'pooled'.")
    if json_path:
        doc = {"baseline": arm_list[0].label, "confidence": confidence,
               "arms": {a.label: a.sources for a in arm_list}, "comparisons": [r.to_json() for r in rows]}
        if grouped:
            doc["bootstrap"] = {"draws": draws, "seed": seed}
        json_path.write_text(json.dumps(doc, indent=2) + "\n")
