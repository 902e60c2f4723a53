"""One function resolves every way of naming a model: :func:`load_model`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from torch import nn

from .checkpoints import SUPER_IMAGE_WEIGHTS, load_checkpoint, load_super_image
from .errors import IncompatibleCheckpointError, ModelFileError
from .hub import hub_config, hub_file, parse_repo_id
from .models.registry import ArchSpec, arch_of
from .models.zoo import Pretrained, find_pretrained, unknown_model
from .weights import CONFIG_NAME, PICKLE_SUFFIXES, WEIGHTS_NAME, load_from_files, model_file, read_config

WEIGHT_SUFFIXES = (".safetensors", *PICKLE_SUFFIXES)


@dataclass
class LoadedModel:
    """A network ready for inference, and where it came from.

    Attributes:
        model: The network, eval mode, float32, CPU.
        name: A short name for tables and logs.
        source: Where the weights came from (path, Hub file, built-in).
    """

    model: nn.Module
    name: str
    source: str

    @property
    def arch(self) -> ArchSpec:
        return arch_of(self.model)

    @property
    def scale(self) -> int:
        return int(self.model.config.scale)  # type: ignore[union-attr]


def load_model(spec: str, *, scale: int | None = None) -> LoadedModel:
    """Load a model from any model spec.

    Args:
        spec: One of
            a built-in name (``edsr-s-x4``, or ``edsr-s`` with ``scale``; ``pclup models`` lists them);
            a model folder (pclup's ``config.json`` + ``model.safetensors``, or a super-image folder), or a
            finished training run's folder (its ``model/``);
            a weights file (``.safetensors``, ``.pt``, ``.pth``, ``.ckpt``, ``.bin``; architecture detected);
            a Hugging Face repo id ``owner/name`` or ``owner/name@revision``.
        scale: The preferred scale where the source holds several (super-image repos, built-in variants).

    Returns:
        The loaded model and a description of its source.

    Raises:
        UnknownModelError: the spec names nothing (the message lists close matches).
        ModelFileError, UnsafeCheckpointError, IncompatibleCheckpointError: unreadable or unusable weights.
        HubError: the Hub could not provide the files.

    >>> load_model("no-such-model")
    Traceback (most recent call last):
    pclup.errors.UnknownModelError: unknown model 'no-such-model': ...
    """
    path = Path(spec).expanduser()
    if path.is_dir():
        folder = _run_model(path)
        return LoadedModel(_load_folder(folder, scale), path.name, str(folder))
    if path.is_file():
        return LoadedModel(_load_file(path), path.stem, str(path))
    if path.suffix.lower() in WEIGHT_SUFFIXES or spec.startswith((".", "/", "~")):
        raise ModelFileError(f"{spec}: no such file or folder")
    pretrained = find_pretrained(spec, scale)
    if pretrained is not None:
        return LoadedModel(_load_pretrained(pretrained), pretrained.name, pretrained.source)
    repo = parse_repo_id(spec)
    if repo is not None:
        repo_id, revision = repo
        model, source = _load_hub(repo_id, revision, scale)
        return LoadedModel(model, repo_id.split("/")[-1], source)
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


def _super_image_file(folder: Path, scale: int | None) -> Path:
    found = {int(m.group(1)): p for p in folder.iterdir() if (m := SUPER_IMAGE_WEIGHTS.match(p.name))}
    if not found:
        raise ModelFileError(f"{folder}: super-image folder without pytorch_model_<s>x.pt")
    if scale is None:
        scale = 4 if 4 in found else max(found)
    if scale not in found:
        raise ModelFileError(f"{folder}: has no x{scale} weights (has {', '.join(f'x{s}' for s in sorted(found))})")
    return model_file(folder, found[scale].name)


def _load_folder(folder: Path, scale: int | None) -> nn.Module:
    """A model folder's network; no file of it may be a link out of the folder (see ``model_file``)."""
    config_path = model_file(folder, CONFIG_NAME)
    if config_path.is_file():
        config = read_config(config_path)
        if "architecture" in config:
            if not (folder / WEIGHTS_NAME).is_file():
                raise ModelFileError(f"{folder}: has config.json but no {WEIGHTS_NAME}")
            return load_from_files(config_path, model_file(folder, WEIGHTS_NAME))
        if "model_type" in config:
            return load_super_image(config, _super_image_file(folder, scale), str(folder))
    weights = [p for p in sorted(folder.iterdir()) if p.suffix.lower() in WEIGHT_SUFFIXES]
    if len(weights) == 1:
        return _load_file(model_file(folder, weights[0].name))
    what = "no weights file" if not weights else f"{len(weights)} weights files; name one"
    raise ModelFileError(f"{folder}: not a model folder ({what})")


def _load_file(path: Path) -> nn.Module:
    if path.suffix.lower() not in WEIGHT_SUFFIXES:
        raise ModelFileError(f"{path}: not a weights file (expected {', '.join(WEIGHT_SUFFIXES)})")
    sibling = model_file(path.parent, CONFIG_NAME)
    if sibling.is_file():
        try:
            config = read_config(sibling)
        except ModelFileError:
            config = {}
        if "architecture" in config and path.suffix == ".safetensors":
            return load_from_files(sibling, path)
        if "model_type" in config and SUPER_IMAGE_WEIGHTS.match(path.name):
            return load_super_image(config, path, str(path))
    return load_checkpoint(path)


def _load_pretrained(p: Pretrained) -> nn.Module:
    if p.packaged:
        folder = p.folder()
        if not (folder / WEIGHTS_NAME).is_file():
            raise ModelFileError(f"built-in model {p.name}: {folder / WEIGHTS_NAME} is missing (broken install?)")
        return _load_folder(folder, p.scale)
    if p.layout == "super-image":
        config, _ = hub_config(p.repo_id, p.revision)
        return load_super_image(config, hub_file(p.repo_id, p.filename, p.revision), p.name)
    config_path = hub_file(p.repo_id, CONFIG_NAME, p.revision)
    return load_from_files(config_path, hub_file(p.repo_id, p.filename, p.revision))


def _load_hub(repo_id: str, revision: str | None, scale: int | None) -> tuple[nn.Module, str]:
    config, config_path = hub_config(repo_id, revision)
    at = f"{repo_id}@{revision}" if revision else repo_id
    if "architecture" in config:
        weights = hub_file(repo_id, WEIGHTS_NAME, revision)
        return load_from_files(config_path, weights), f"hf:{at}"
    if "model_type" in config:
        filename = f"pytorch_model_{scale or 4}x.pt"
        weights = hub_file(repo_id, filename, revision)
        return load_super_image(config, weights, f"hf:{at}"), f"hf:{at}/{filename}"
    raise IncompatibleCheckpointError(f"hf:{at}: config.json is neither pclup's nor super-image's")


__all__ = ["LoadedModel", "load_model"]
