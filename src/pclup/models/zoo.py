"""Built-in pretrained models: a name, a variant at one scale, and where the weights come from.

Sources are Hugging Face Hub files (fetched into the Hub cache on first use) or, once pclup ships its
own trained weights, files inside the package.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import UnknownModelError
from .registry import close_matches


@dataclass(frozen=True)
class Pretrained:
    """One built-in model.

    Attributes:
        name: What users type after ``-m``: ``"edsr-s-x4"``.
        variant: The :class:`~pclup.models.registry.Variant` it is an instance of.
        scale: Its upscaling factor.
        repo_id: Hub repo holding the weights.
        filename: The weights file in that repo.
        revision: Branch, tag or commit the weights are pinned to.
        layout: ``"pclup"`` (config.json + model.safetensors) or ``"super-image"``.
        license: Licence of the weights.
        description: One line for ``pclup models``.
    """

    name: str
    variant: str
    scale: int
    repo_id: str
    filename: str
    revision: str = "main"
    layout: str = "pclup"
    license: str = ""
    description: str = ""

    @property
    def source(self) -> str:
        return f"hf:{self.repo_id}@{self.revision}/{self.filename}"


def _super_image(name: str, variant: str, repo: str, description: str) -> list[Pretrained]:
    return [
        Pretrained(
            name=f"{name}-x{s}",
            variant=variant,
            scale=s,
            repo_id=repo,
            filename=f"pytorch_model_{s}x.pt",
            layout="super-image",
            license="Apache-2.0 (super-image)",
            description=description,
        )
        for s in (2, 3, 4)
    ]


PRETRAINED: tuple[Pretrained, ...] = (
    *_super_image("edsr-s", "edsr-s", "eugenesiow/edsr-base", "EDSR baseline trained on DIV2K by super-image"),
    *_super_image("edsr-l", "edsr-l", "eugenesiow/edsr", "EDSR trained on DIV2K by super-image"),
)


def list_pretrained() -> list[Pretrained]:
    """Every built-in model."""
    return list(PRETRAINED)


def find_pretrained(name: str, scale: int | None = None) -> Pretrained | None:
    """The built-in model called ``name`` (or ``name`` at ``-x{scale}``), else None."""
    by_name = {p.name: p for p in PRETRAINED}
    key = name.lower()
    if key in by_name:
        return by_name[key]
    if scale is not None and f"{key}-x{scale}" in by_name:
        return by_name[f"{key}-x{scale}"]
    if scale is None and f"{key}-x4" in by_name:
        return by_name[f"{key}-x4"]
    return None


def unknown_model(name: str) -> UnknownModelError:
    """The error for a model spec that names nothing, with close matches."""
    names = [p.name for p in PRETRAINED] + sorted({p.variant for p in PRETRAINED})
    return UnknownModelError(
        f"unknown model '{name}'{close_matches(name, names)}: not a built-in model, file, folder or "
        "Hub repo id (owner/name[@revision]); 'pclup models' lists the built-in models"
    )
