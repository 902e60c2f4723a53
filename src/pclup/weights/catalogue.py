"""Built-in pretrained models: a name, a variant at one scale, and where the weights come from.

Two sources: files shipped inside the package (``pclup/pretrained/<name>/``: config.json,
model.safetensors and a README.md model card; pclup's own trained models, available offline), and
Hugging Face Hub files (fetched into the Hub cache on first use).

``default`` names pclup's own compact models: ``default-x2``, ``default-x3``, ``default-x4``; ``photo``
their fine-tunes for real photos, ``photo-x2`` and ``photo-x4``; :func:`default_model_name` picks one of a
family for an output scale.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from ..errors import UnknownModelError


@dataclass(frozen=True)
class Pretrained:
    """One built-in model.

    Attributes:
        name: What users type after ``-m``: ``"edsr-s-x4"``.
        variant: The :class:`~pclup.models.Variant` it is an instance of.
        scale: Its upscaling factor.
        repo_id: Hub repo holding the weights ("" for a packaged model).
        filename: The weights file in that repo.
        revision: Branch, tag or commit the weights are pinned to.
        layout: ``"package"`` (a pclup model folder inside the package), ``"pclup"`` (config.json +
            model.safetensors on the Hub) or ``"super-image"``.
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
    def packaged(self) -> bool:
        return self.layout == "package"

    @property
    def source(self) -> str:
        if self.packaged:
            return f"pclup:{PACKAGE_DIR}/{self.name}"
        return f"hf:{self.repo_id}@{self.revision}/{self.filename}"

    def folder(self) -> Path:
        """The model folder of a packaged model (config.json, model.safetensors, README.md)."""
        if not self.packaged:
            raise ValueError(f"{self.name} is not a packaged model")
        return Path(str(resources.files("pclup") / PACKAGE_DIR / self.name))


PACKAGE_DIR = "pretrained"


def _packaged(name: str, variant: str, scale: int, description: str) -> Pretrained:
    return Pretrained(
        name=name,
        variant=variant,
        scale=scale,
        repo_id="",
        filename="model.safetensors",
        layout="package",
        license="MIT (pclup; trained on T91, BSD200, General100: see the model card)",
        description=description,
    )


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
    *(
        _packaged(f"default-x{s}", "compact", s,
                  f"pclup's default: compact network, x{s}, trained here "
                  "(L1 fine-tune: it beat PCL; see its card)")
        for s in (2, 3, 4)
    ),
    *(
        _packaged(f"photo-x{s}", "compact", s,
                  f"pclup's photo model: default-x{s} fine-tuned on realistic blur, noise and JPEG "
                  "(upscale --denoise blends the two)")
        for s in (2, 4)
    ),
    _packaged("edsr-s-pcl-x4", "edsr-s", 4,
              "EDSR-S x4 trained here: L1 from scratch, then PCL fine-tuning (the PCL paper's first row)"),
    *_super_image(
        "edsr-s", "edsr-s", "eugenesiow/edsr-base", "EDSR baseline trained on DIV2K by super-image"
    ),
    *_super_image("edsr-l", "edsr-l", "eugenesiow/edsr", "EDSR trained on DIV2K by super-image"),
)


PRECISION_FILE = "precision.json"


@dataclass(frozen=True)
class MeasuredPrecision:
    """How a packaged model runs at a reduced precision, as measured and recorded in its folder's
    ``precision.json`` (``benchmarks/precision_accuracy.py --record``).

    Attributes:
        precision: ``"bf16"``.
        passes: Whether the run met the rule (8-bit output within 1 level of float32's on at least 99.9% of
            pixels, Set5 and Set14 PSNR within 0.01 dB of float32's).
        fp32_layers: Submodules kept in float32 inside the reduced-precision run (names as in
            ``named_modules``), the smallest set that passed.
        weights_sha256: The SHA-256 of the weights measured.
    """

    precision: str
    passes: bool
    fp32_layers: tuple[str, ...]
    weights_sha256: str


def measured_precision(source: str, precision: str = "bf16") -> MeasuredPrecision | None:
    """The recorded reduced-precision verdict of the packaged model whose ``source`` this is: None for any
    other weights, when nothing valid is recorded, or when the record is of other weights than those
    shipped (re-shipped weights fall back to float32 until measured again)."""
    import hashlib

    by_source = {p.source: p for p in PRETRAINED if p.packaged}
    pretrained = by_source.get(source)
    if pretrained is None:
        return None
    folder = pretrained.folder()
    verdict = read_measured_precision(folder / PRECISION_FILE, precision)
    if verdict is None:
        return None
    digest = hashlib.sha256((folder / pretrained.filename).read_bytes()).hexdigest()
    return verdict if digest == verdict.weights_sha256 else None


def read_measured_precision(path: Path, precision: str = "bf16") -> MeasuredPrecision | None:
    """The ``precision`` entry of a ``precision.json``; None when the file is missing, too large, not
    JSON, or lacks the entry or any of its fields in the right type."""
    import json

    try:
        if path.stat().st_size > 1 << 20:
            return None
        doc = json.loads(path.read_text(encoding="utf-8"))
        entry = doc[precision]
        layers, passes, sha = entry["fp32_layers"], entry["passes"], doc["weights_sha256"]
    except (OSError, ValueError, KeyError, TypeError, IndexError):
        return None
    if not (isinstance(layers, list) and all(isinstance(n, str) for n in layers)
            and isinstance(passes, bool) and isinstance(sha, str)):
        return None
    return MeasuredPrecision(precision, passes, tuple(layers), sha)


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


DEFAULT_SCALES = (2, 3, 4)
#: Model families that ``-m NAME`` picks a scale of: name -> the scales shipped.
FAMILIES: dict[str, tuple[int, ...]] = {"default": DEFAULT_SCALES, "photo": (2, 4)}


def family_scale(family: str, scale: float | None) -> int:
    """The scale of ``family``'s model for an output scale: the smallest that reaches it (the largest beyond
    that, run in several passes; x4 when no scale is given, or the largest)."""
    scales = FAMILIES[family]
    if scale is None:
        return 4 if 4 in scales else scales[-1]
    for s in scales:
        if math.ceil(scale - 1e-9) <= s:
            return s
    return scales[-1]


def default_model_name(scale: float | None, family: str = "default") -> str:
    """The model of a family (``default``, ``photo``) for an output scale (see :func:`family_scale`)."""
    return f"{family}-x{family_scale(family, scale)}"


#: What a weights file's name ends with (``pclup.weights.loader`` reads these; the pickles safely).
MODEL_FILE_SUFFIXES = (".safetensors", ".pt", ".pth", ".ckpt", ".bin")


def check_model_spec(spec: str, scale: int | None = None) -> None:
    """Refuse a model spec that names nothing, as :func:`~pclup.weights.load_model` would, without loading
    anything or importing torch: an existing path, a built-in name or a Hub repo id passes.

    Raises:
        ModelFileError: a path (a name starting with ``.``, ``/`` or ``~``, or ending in a weights suffix)
            that does not exist.
        UnknownModelError: anything else that is neither a built-in name nor a Hub repo id.
    """
    from ..errors import ModelFileError
    from .hub import parse_repo_id

    path = Path(spec).expanduser()
    if path.exists():
        return
    if path.suffix.lower() in MODEL_FILE_SUFFIXES or spec.startswith((".", "/", "~")):
        raise ModelFileError(f"{spec}: no such file or folder")
    if find_pretrained(spec, scale) is not None or parse_repo_id(spec) is not None:
        return
    raise unknown_model(spec)


def unknown_model(name: str) -> UnknownModelError:
    """The error for a model spec that names nothing, with close matches."""
    from ..archinfo import close_matches

    names = [p.name for p in PRETRAINED] + sorted({p.variant for p in PRETRAINED})
    return UnknownModelError(
        f"unknown model '{name}'{close_matches(name, names)}: not a built-in model, file, folder or "
        "Hub repo id (owner/name[@revision]); 'pclup models' lists the built-in models"
    )
