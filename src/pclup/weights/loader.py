"""One function resolves every way of naming a model: :func:`load_model`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..errors import IncompatibleCheckpointError, ModelFileError
from ..models.registry import ArchSpec, SRModel, arch_of
from .catalogue import Pretrained, find_pretrained, unknown_model
from .foreign import SUPER_IMAGE_WEIGHTS, load_foreign, load_super_image
from .formats import CONFIG_NAME, PICKLE_SUFFIXES, WEIGHTS_NAME, load_from_files, model_file, read_config
from .hub import hub_config, hub_file, parse_repo_id

WEIGHT_SUFFIXES = (".safetensors", *PICKLE_SUFFIXES)

Metadata = dict[str, str]


@dataclass
class LoadedModel:
    """A network ready for inference, and its card: what it is called and where it came from.

    Attributes:
        model: The network, eval mode, float32, on the device :func:`load_model` was given (the CPU).
        name: A short name for tables and logs.
        source: Where the weights came from (path, Hub file, built-in).
        metadata: The ``metadata`` strings of a pclup ``config.json`` (``dtype``, and what training or
            ``pclup convert`` recorded); empty for other formats.
    """

    model: SRModel
    name: str
    source: str
    metadata: Metadata = field(default_factory=dict)

    @property
    def native(self) -> bool:
        """Whether pclup has the network's architecture (False: loaded through spandrel), so that it can
        be trained and saved in pclup's format."""
        from .spandrel_bridge import SpandrelModel

        return not isinstance(self.model, SpandrelModel)

    @property
    def arch(self) -> ArchSpec:
        from .spandrel_bridge import SpandrelModel, spandrel_arch

        if isinstance(self.model, SpandrelModel):
            return spandrel_arch(self.model)
        return arch_of(self.model)

    @property
    def scale(self) -> int:
        return int(self.model.config.scale)


def load_model(spec: str, *, scale: int | None = None, device: str | torch.device = "cpu") -> LoadedModel:
    """Load a model from any model spec.

    Args:
        spec: One of
            a built-in name (``edsr-s-x4``, or ``edsr-s`` with ``scale``; ``pclup models`` lists them);
            a model folder (pclup's ``config.json`` + ``model.safetensors``, or a super-image folder), or a
            finished training run's folder (its ``model/``);
            a weights file (``.safetensors``, ``.pt``, ``.pth``, ``.ckpt``, ``.bin``; architecture detected);
            a Hugging Face repo id ``owner/name`` or ``owner/name@revision``.
        scale: The preferred scale where the source holds several (super-image repos, built-in variants).
        device: Where to put the network.

    Returns:
        The loaded model and its card (name, source, metadata).

    Raises:
        UnknownModelError: the spec names nothing (the message lists close matches).
        ModelFileError, UnsafeCheckpointError, IncompatibleCheckpointError: unreadable or unusable weights.
        HubError: the Hub could not provide the files.

    >>> load_model("no-such-model")
    Traceback (most recent call last):
    pclup.errors.UnknownModelError: unknown model 'no-such-model': ...
    """
    loaded = _load_spec(spec, scale)
    loaded.model.to(device)
    return loaded


def _load_spec(spec: str, scale: int | None) -> LoadedModel:
    path = Path(spec).expanduser()
    if path.is_dir():
        folder = _run_model(path)
        model, metadata = _load_folder(folder, scale)
        return LoadedModel(model, path.name, str(folder), metadata)
    if path.is_file():
        model, metadata = _load_file(path)
        return LoadedModel(model, path.stem, str(path), metadata)
    if path.suffix.lower() in WEIGHT_SUFFIXES or spec.startswith((".", "/", "~")):
        raise ModelFileError(f"{spec}: no such file or folder")
    pretrained = find_pretrained(spec, scale)
    if pretrained is not None:
        model, metadata = _load_pretrained(pretrained)
        return LoadedModel(model, pretrained.name, pretrained.source, metadata)
    repo = parse_repo_id(spec)
    if repo is not None:
        repo_id, revision = repo
        model, source, metadata = _load_hub(repo_id, revision, scale)
        return LoadedModel(model, repo_id.split("/")[-1], source, metadata)
    raise unknown_model(spec)


def _run_model(folder: Path) -> Path:
    """What to load for ``folder``: a training run's ``model/``, else the folder itself."""
    if (folder / CONFIG_NAME).exists():
        return folder
    if (folder / "model" / CONFIG_NAME).is_file():
        return folder / "model"
    if (folder / "checkpoint" / CONFIG_NAME).is_file():
        hint = f"resume it with pclup train --resume {folder}"
        raise ModelFileError(f"{folder} is an unfinished training run: {hint}")
    return folder


def _metadata(config: Mapping[str, Any]) -> Metadata:
    """The ``metadata`` strings of a pclup ``config.json``."""
    metadata = config.get("metadata")
    return {str(k): str(v) for k, v in metadata.items()} if isinstance(metadata, Mapping) else {}


def _super_image_file(folder: Path, scale: int | None) -> Path:
    found = {int(m.group(1)): p for p in folder.iterdir() if (m := SUPER_IMAGE_WEIGHTS.match(p.name))}
    if not found:
        raise ModelFileError(f"{folder}: super-image folder without pytorch_model_<s>x.pt")
    if scale is None:
        scale = 4 if 4 in found else max(found)
    if scale not in found:
        has = ", ".join(f"x{s}" for s in sorted(found))
        raise ModelFileError(f"{folder}: has no x{scale} weights (has {has})")
    return model_file(folder, found[scale].name)


def _load_folder(folder: Path, scale: int | None) -> tuple[SRModel, Metadata]:
    """A model folder's network; no file of it may be a link out of the folder (see ``model_file``)."""
    config_path = model_file(folder, CONFIG_NAME)
    if config_path.is_file():
        config = read_config(config_path)
        if "architecture" in config:
            if not (folder / WEIGHTS_NAME).is_file():
                raise ModelFileError(f"{folder}: has config.json but no {WEIGHTS_NAME}")
            return load_from_files(config_path, model_file(folder, WEIGHTS_NAME)), _metadata(config)
        if "model_type" in config:
            return load_super_image(config, _super_image_file(folder, scale), str(folder)), {}
    weights = [p for p in sorted(folder.iterdir()) if p.suffix.lower() in WEIGHT_SUFFIXES]
    if len(weights) == 1:
        return _load_file(model_file(folder, weights[0].name))
    what = "no weights file" if not weights else f"{len(weights)} weights files; name one"
    raise ModelFileError(f"{folder}: not a model folder ({what})")


def _load_file(path: Path) -> tuple[SRModel, Metadata]:
    if path.suffix.lower() not in WEIGHT_SUFFIXES:
        raise ModelFileError(f"{path}: not a weights file (expected {', '.join(WEIGHT_SUFFIXES)})")
    sibling = model_file(path.parent, CONFIG_NAME)
    if sibling.is_file():
        try:
            config = read_config(sibling)
        except ModelFileError:
            config = {}
        if "architecture" in config and path.suffix == ".safetensors":
            return load_from_files(sibling, path), _metadata(config)
        if "model_type" in config and SUPER_IMAGE_WEIGHTS.match(path.name):
            return load_super_image(config, path, str(path)), {}
    return load_foreign(path), {}


def _load_pretrained(p: Pretrained) -> tuple[SRModel, Metadata]:
    if p.packaged:
        folder = p.folder()
        if not (folder / WEIGHTS_NAME).is_file():
            raise ModelFileError(
                f"built-in model {p.name}: {folder / WEIGHTS_NAME} is missing (broken install?)"
            )
        return _load_folder(folder, p.scale)
    if p.layout == "super-image":
        config, _ = hub_config(p.repo_id, p.revision)
        return load_super_image(config, hub_file(p.repo_id, p.filename, p.revision), p.name), {}
    config_path = hub_file(p.repo_id, CONFIG_NAME, p.revision)
    model = load_from_files(config_path, hub_file(p.repo_id, p.filename, p.revision))
    return model, _metadata(read_config(config_path))


def _load_hub(repo_id: str, revision: str | None, scale: int | None) -> tuple[SRModel, str, Metadata]:
    """The network of a Hub repo, its source and metadata."""
    config, config_path = hub_config(repo_id, revision)
    at = f"{repo_id}@{revision}" if revision else repo_id
    if "architecture" in config:
        weights = hub_file(repo_id, WEIGHTS_NAME, revision)
        return load_from_files(config_path, weights), f"hf:{at}", _metadata(config)
    if "model_type" in config:
        filename = f"pytorch_model_{scale or 4}x.pt"
        weights = hub_file(repo_id, filename, revision)
        return load_super_image(config, weights, f"hf:{at}"), f"hf:{at}/{filename}", {}
    raise IncompatibleCheckpointError(f"hf:{at}: config.json is neither pclup's nor super-image's")


def blend_models(a: LoadedModel, b: LoadedModel, t: float, name: str | None = None) -> LoadedModel:
    """A network whose weights are ``(1 - t) * a + t * b``: two trainings of one architecture from a shared
    start (``default-x4`` and ``photo-x4``) blend into a model between them (``upscale --denoise``).

    Raises:
        IncompatibleCheckpointError: the two are not the same architecture with the same settings and
            parameter shapes (their weights cannot be mixed).
    """
    import copy

    if not 0.0 <= t <= 1.0:
        raise ValueError(f"blend weight {t} is outside [0, 1]")
    a, b = _same_depth(a, b), _same_depth(b, a)  # a compact network grown from the other: same depth
    if not (a.native and b.native) or type(a.model) is not type(b.model) or a.model.config != b.model.config:
        raise IncompatibleCheckpointError(
            f"cannot blend {a.name} and {b.name}: not the same architecture and settings"
        )
    sa, sb = a.model.state_dict(), b.model.state_dict()
    if sa.keys() != sb.keys() or any(sa[k].shape != sb[k].shape for k in sa):
        raise IncompatibleCheckpointError(f"cannot blend {a.name} and {b.name}: their parameters differ")
    model = copy.deepcopy(a.model)
    with torch.no_grad():
        mixed = {k: torch.lerp(v.float(), sb[k].float(), t).to(v.dtype) if v.is_floating_point() else v
                 for k, v in sa.items()}
    model.load_state_dict(mixed)
    model.eval()
    metadata = {**a.metadata, "blend": f"{1 - t:g} x {a.name} + {t:g} x {b.name}"}
    return LoadedModel(model, name or f"{a.name}+{b.name}@{t:g}", f"{a.source} + {b.source}", metadata)


def _same_depth(a: LoadedModel, b: LoadedModel | None = None) -> LoadedModel:
    """``a``, or, when ``a`` and ``b`` are compact networks that differ only in depth and ``a`` is the
    shallower, ``a`` deepened with identity layers to ``b``'s depth (the same function: see
    :func:`pclup.models.compact.deepen`), so that a photo model grown from a default model blends with it."""
    from dataclasses import replace

    from ..models.compact import Compact, deepen

    if b is None or not (isinstance(a.model, Compact) and isinstance(b.model, Compact)):
        return a
    ca, cb = a.model.config, b.model.config
    if ca.n_convs >= cb.n_convs or replace(ca, n_convs=cb.n_convs) != cb or ca.act_type == "leakyrelu":
        return a
    return LoadedModel(deepen(a.model, cb.n_convs).eval(), a.name, a.source, a.metadata)
