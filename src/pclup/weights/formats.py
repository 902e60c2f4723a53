"""pclup's weights format, and safe reading of any weights file.

A model folder (or Hub repo) holds two files:

* ``config.json``: ``{"pclup_version", "architecture", "scale", "args", "metadata"}``; ``args`` are the
  architecture's constructor arguments (its config dataclass), ``metadata`` free-form strings;
* ``model.safetensors``: the network's state dict, float32 or float16 ("dtype" in metadata says which).

Loading is strict: a missing, unexpected or misshapen tensor is an error that names it. Nothing here
unpickles arbitrary objects: ``.safetensors`` files are read with safetensors, pickles with
``torch.load(weights_only=True)``, which refuses anything but tensors and plain containers.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import pickle
import pickletools
import re
import shutil
import stat
import tempfile
import warnings
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from .._version import __version__
from ..errors import (
    IncompatibleCheckpointError,
    ModelFileError,
    PclupError,
    UnsafeCheckpointError,
    first_line,
)
from ..models.registry import ArchSpec, SRModel, arch_of, get_arch

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
PICKLE_SUFFIXES = (".pt", ".pth", ".ckpt", ".bin")
MAX_CONFIG_BYTES = 1 << 20
"""A ``config.json`` larger than this is refused unread (pclup's are about 1 KB)."""
MAX_HEADER_BYTES = 100_000_000
"""A safetensors header larger than this is refused unread (safetensors' own limit)."""


# --- config.json -------------------------------------------------------------------------------------


def _tuples(value: Any) -> Any:
    # JSON has no tuples; config dataclasses are frozen and use tuples for sequences
    if isinstance(value, list):
        return tuple(_tuples(v) for v in value)
    return value


def config_to_dict(config: Any, arch: str, metadata: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The ``config.json`` content for a network config of architecture ``arch``."""
    return {
        "pclup_version": __version__,
        "architecture": arch,
        "scale": config.scale,
        "args": dataclasses.asdict(config),
        "metadata": dict(metadata or {}),
    }


def config_from_dict(data: Mapping[str, Any], source: str = "config.json") -> Any:
    """The architecture's config dataclass from a ``config.json`` dict; errors name ``source``.

    Every argument is checked by :meth:`ArchSpec.make_config` (types, bounds; unknown arguments are refused),
    so a config from an untrusted file can only describe a network of sane size. Other top-level keys
    (``pclup_version``, ``metadata``) are informative and not checked.
    """
    return _arch_and_config(data, source)[1]


def _arch_and_config(data: Mapping[str, Any], source: str) -> tuple[ArchSpec, Any]:
    if not isinstance(data, Mapping) or "architecture" not in data or "args" not in data:
        raise IncompatibleCheckpointError(f"{source}: not a pclup model config (no architecture and args)")
    if not isinstance(data["architecture"], str) or not isinstance(data["args"], Mapping):
        raise IncompatibleCheckpointError(f"{source}: 'architecture' must be a name and 'args' a JSON object")
    try:
        spec = get_arch(data["architecture"])
        args = {str(k): _tuples(v) for k, v in data["args"].items()}
        if "scale" in data:
            if args.setdefault("scale", data["scale"]) != data["scale"]:
                raise IncompatibleCheckpointError(f"says scale {data['scale']} but args say {args['scale']}")
        return spec, spec.make_config(**args)
    except PclupError as e:
        raise IncompatibleCheckpointError(f"{source}: {e}") from None


def read_config(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Parse a ``config.json``: a regular file of at most :data:`MAX_CONFIG_BYTES` holding a JSON object.

    Raises:
        ModelFileError: missing, not a regular file, too large, not UTF-8 JSON, or not a JSON object.
    """
    path = Path(path)
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):
            raise ModelFileError(f"{path}: not a regular file")
        if info.st_size > MAX_CONFIG_BYTES:
            raise ModelFileError(f"{path}: too large for a model config ({info.st_size:,} bytes; max 1 MB)")
        with path.open("rb") as f:
            raw = f.read(MAX_CONFIG_BYTES + 1)
    except FileNotFoundError:
        raise ModelFileError(f"{path}: no such file") from None
    except OSError as e:
        raise ModelFileError(f"{path}: cannot read ({_cause(e)})") from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise ModelFileError(f"{path}: too large for a model config (at most 1 MB)")
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:  # JSONDecodeError is a ValueError
        raise ModelFileError(f"{path}: not a readable JSON config ({e})") from None
    except RecursionError:
        raise ModelFileError(f"{path}: not a readable JSON config (nested too deeply)") from None
    if not isinstance(data, dict):
        raise ModelFileError(f"{path}: not a JSON object")
    return data


def _cause(e: BaseException) -> str:
    """The reason of an OS error in words (``No space left on device``), else its first line."""
    if isinstance(e, OSError) and e.strerror:
        return e.strerror
    if isinstance(e, OSError) and e.errno:
        return os.strerror(e.errno)
    return _first_line(e)


def _first_line(e: BaseException) -> str:
    """The first sentence of an exception's message, never torch's advice to pass ``weights_only=False``."""
    first = first_line(e).split(". ")[0]
    return type(e).__name__ if "weights_only" in first else first


def model_file(folder: str | os.PathLike[str], name: str) -> Path:
    """``folder/name``, refusing a symbolic link that leads out of ``folder`` (a model folder's files must be
    its own: a link could make pclup read any file, or a device that never ends)."""
    folder = Path(folder)
    path = folder / name
    if path.is_symlink() and not path.resolve().is_relative_to(folder.resolve()):
        raise ModelFileError(f"{path}: a link to a file outside {folder}; refused (copy the file in instead)")
    return path


# --- reading tensors safely --------------------------------------------------------------------------


def read_state_dict(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a weights file without executing code from it.

    Args:
        path: ``.safetensors``, or a PyTorch checkpoint (``.pt``, ``.pth``, ``.ckpt``, ``.bin``).

    Returns:
        What the file holds: a flat ``{name: Tensor}`` for safetensors; for a PyTorch checkpoint whatever
        plain structure of dicts, lists and tensors it holds (``foreign.canonicalize`` unwraps it).

    Raises:
        ModelFileError: missing, empty, truncated or corrupt file, or not a weights file at all.
        UnsafeCheckpointError: a pickle that would need arbitrary code (classes, functions) to load.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path}: no such file")
    size = path.stat().st_size
    if size == 0:
        raise ModelFileError(f"{path}: empty file")
    with path.open("rb") as f:
        head = f.read(1 << 20)
    is_zip = zipfile.is_zipfile(path)
    if path.suffix == ".safetensors" or (not is_zip and _looks_like_safetensors(head, size)):
        return _read_safetensors(path)
    if is_zip or head.startswith(b"PK\x03\x04") or _LEGACY_MAGIC in head[:32]:
        return _torch_load(path)
    needs = _pickle_import(head, size)
    if needs:
        raise _unsafe(path, needs)
    what = "a pickle of plain Python objects" if needs is not None else "not a zip or pickle file"
    raise ModelFileError(f"{path}: not a PyTorch checkpoint ({what})")


# torch.save's files are zip archives, or (before PyTorch 1.6) pickles that start with this magic number
_LEGACY_MAGIC = torch.serialization.MAGIC_NUMBER.to_bytes(10, "little")
_GLOBAL = re.compile(r"GLOBAL ([\w.]+)")


def _torch_load(path: Path) -> Any:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch warns about pickle protocols; the outcome is what counts
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        # torch names the first global it refused ("... unsupported GLOBAL posix.system ..."); its message
        # also advises loading without weights_only, which pclup never passes on
        found = _GLOBAL.search(str(e))
        raise _unsafe(path, found.group(1) if found else "") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError, KeyError) as e:
        raise ModelFileError(f"{path}: truncated or corrupt weights file ({_first_line(e)})") from None


def _unsafe(path: Path, needs: str) -> UnsafeCheckpointError:
    detail = f" ({needs})" if needs else ""
    return UnsafeCheckpointError(
        f"{path}: refused to load: the pickle needs code beyond plain tensors to load{detail}; "
        "pclup never unpickles arbitrary objects (convert it to safetensors with a tool you trust)"
    )


def _pickle_import(head: bytes, size: int) -> str | None:
    """What a pickle would import to load (``"posix.system"``; ``""`` for none), None if the file that
    starts with ``head`` (``size`` bytes in all) is not a pickle. Only decodes the opcodes (pickletools),
    never runs them; a pickle counts if it decodes to its end at the file's end, or up to its first import
    after a protocol 2+ marker."""
    strings: list[str] = []
    needs, stream = "", io.BytesIO(head)
    try:
        for op, arg, _ in pickletools.genops(stream):
            if op.name in ("GLOBAL", "INST"):
                needs = needs or str(arg).replace(" ", ".")
            elif op.name == "STACK_GLOBAL":
                needs = needs or ".".join(strings[-2:])
            elif isinstance(arg, str):
                strings.append(arg)
    except ValueError:  # not a whole pickle within the first megabyte: damaged, cut, or random bytes
        return needs if needs and head[:1] == b"\x80" else None
    return needs if stream.tell() == size or len(head) < size else None


def _looks_like_safetensors(head: bytes, size: int) -> bool:
    if len(head) < 9:
        return False
    header_len = int.from_bytes(head[:8], "little")
    return 2 <= header_len <= size - 8 and head[8:9] == b"{"


_DTYPES = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "F8_E4M3": torch.float8_e4m3fn, "F8_E5M2": torch.float8_e5m2, "C64": torch.complex64,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8,
    "U64": torch.uint64, "U32": torch.uint32, "U16": torch.uint16, "U8": torch.uint8, "BOOL": torch.bool,
}  # fmt: skip


def read_safetensors_header(path: str | os.PathLike[str]) -> dict[str, Tensor]:
    """The tensors a safetensors file declares, as ``meta`` tensors (names, dtypes, shapes; no data read).

    The header is checked before anything is allocated: its length against the file size and
    :data:`MAX_HEADER_BYTES`, then every entry (known dtype, shape, data inside the file and of the size
    the shape needs).

    Raises:
        ModelFileError: not a safetensors file, truncated, or a header that does not describe the file.
    """
    path = Path(path)

    def bad(why: str) -> ModelFileError:
        return ModelFileError(f"{path}: truncated or corrupt safetensors file ({why})")

    try:
        size = path.stat().st_size
        with path.open("rb") as f:
            header_len = int.from_bytes(f.read(8), "little") if size >= 8 else -1
            if not 0 < header_len <= min(size - 8, MAX_HEADER_BYTES):
                raise bad(f"header length {header_len:,} does not fit a file of {size:,} bytes")
            raw = f.read(header_len)
    except FileNotFoundError:
        raise ModelFileError(f"{path}: no such file") from None
    except OSError as e:
        raise ModelFileError(f"{path}: cannot read ({_cause(e)})") from None
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise bad("its header is not JSON") from None
    if not isinstance(header, dict):
        raise bad("its header is not a JSON object")
    data_len = size - 8 - header_len
    tensors = {}
    for key, entry in header.items():
        if key == "__metadata__":
            continue
        try:
            dtype = _DTYPES[entry["dtype"]]
            shape, (begin, end) = entry["shape"], entry["data_offsets"]
            dims_ok = isinstance(shape, list) and all(_count(d, 2**40) for d in shape)
            if not (dims_ok and _count(begin) and _count(end)):
                raise ValueError
        except (KeyError, TypeError, ValueError):
            raise bad(f"{key} is not a valid entry") from None
        numel = 1
        for d in shape:
            numel *= d
        if not 0 <= begin <= end <= data_len or end - begin != numel * dtype.itemsize:
            raise bad(f"the data of {key} is not where its header says")
        tensors[str(key)] = torch.empty(shape, dtype=dtype, device="meta")
    return tensors


def _count(value: Any, limit: int = 2**63) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < limit


def _read_safetensors(path: Path) -> dict[str, Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    read_safetensors_header(path)  # fails with a clear message before safetensors allocates anything
    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise ModelFileError(f"{path}: truncated or corrupt safetensors file ({_first_line(e)})") from None


# --- strict loading ----------------------------------------------------------------------------------


def check_fit(model: SRModel, state_dict: Mapping[str, Tensor], source: str) -> None:
    """Raise unless ``state_dict`` has exactly ``model``'s keys and shapes, and floating-point values wherever
    the model's own tensor is floating point (integer weights would load as rounded numbers).

    Works on a network built on the ``meta`` device and a state dict of ``meta`` tensors (see
    :func:`read_safetensors_header`): the check then costs no memory. The message names the architecture,
    the source and the first few offending keys.
    """
    own = model.state_dict()
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    shapes = [
        f"{k} is {tuple(state_dict[k].shape)} in the file but {tuple(own[k].shape)} in the model"
        for k in own
        if k in state_dict and tuple(state_dict[k].shape) != tuple(own[k].shape)
    ]
    types = [
        f"{k} is {str(state_dict[k].dtype).removeprefix('torch.')}"
        for k in own
        if k in state_dict and own[k].is_floating_point() and not state_dict[k].is_floating_point()
    ]
    if missing or unexpected or shapes or types:
        spec_name = getattr(arch_of(model), "name", type(model).__name__)
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing ({_few(missing)})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected ({_few(unexpected)})")
        if shapes:
            parts.append(f"{len(shapes)} of another shape ({'; '.join(shapes[:2])})")
        if types:
            parts.append(f"{len(types)} not floating point ({'; '.join(types[:2])})")
        raise IncompatibleCheckpointError(
            f"{source}: weights do not fit {spec_name} x{model.config.scale}: " + ", ".join(parts)
        )


def load_weights_strict(model: SRModel, state_dict: Mapping[str, Tensor], source: str) -> None:
    """Copy ``state_dict`` into ``model`` after :func:`check_fit` (any misfit is an error that names it)."""
    check_fit(model, state_dict, source)
    floats = {k: v.float() if v.is_floating_point() else v for k, v in state_dict.items()}
    model.load_state_dict(floats, strict=True)


def _few(keys: list[str], n: int = 3) -> str:
    return ", ".join(keys[:n]) + (", ..." if len(keys) > n else "")


# --- save / load a model folder ----------------------------------------------------------------------


def save_pretrained(
    model: SRModel,
    folder: str | os.PathLike[str],
    *,
    metadata: Mapping[str, str] | None = None,
    half: bool = False,
) -> Path:
    """Write ``config.json`` and ``model.safetensors`` for a registered network.

    Both files are written completely into a temporary folder inside ``folder`` first and then moved into
    place (the old ``config.json`` is removed first, so the old weights are never paired with the new
    config): a failure or a crash leaves the previous model as it was, and never a half-written one. Other
    files in the folder are kept. The files' permissions follow the umask, as for any other file.

    Args:
        model: A network built by :func:`pclup.models.create_model` (or loaded).
        folder: Destination folder; created if needed.
        metadata: Extra strings stored in ``config.json`` (recipe, dataset, ...).
        half: Store float16 tensors (half the size; loading converts back to float32).

    Returns:
        The folder's path.

    Raises:
        ModelFileError: the folder cannot be written (``cannot write <folder>: <reason>``): no space left,
            no permission, a file in the way. Nothing is left behind.
    """
    from safetensors import SafetensorError
    from safetensors.torch import save_file

    spec = arch_of(model)
    folder = Path(folder)
    meta = {**dict(metadata or {}), "dtype": "float16" if half else "float32"}
    config = config_to_dict(model.config, spec.name, meta)
    tensors = {
        k: (v.detach().to("cpu", torch.float16 if half and v.is_floating_point() else v.dtype)).contiguous()
        for k, v in model.state_dict().items()
    }
    new_dirs = [p for p in (folder, *folder.parents) if not p.exists()][::-1]  # outermost first
    try:
        if folder.exists() and not folder.is_dir():
            raise NotADirectoryError(0, "it is a file, not a folder")
        folder.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".pclup-save-", dir=folder))
        try:
            (tmp / CONFIG_NAME).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
            metadata = {"format": "pt", "pclup_version": __version__}
            save_file(tensors, str(tmp / WEIGHTS_NAME), metadata=metadata)
            # safetensors creates its file private (0600); give it the mode config.json got from the umask
            os.chmod(tmp / WEIGHTS_NAME, stat.S_IMODE((tmp / CONFIG_NAME).stat().st_mode))
            _check_written(tmp / WEIGHTS_NAME, tensors)
            (folder / CONFIG_NAME).unlink(missing_ok=True)
            os.replace(tmp / WEIGHTS_NAME, folder / WEIGHTS_NAME)
            os.replace(tmp / CONFIG_NAME, folder / CONFIG_NAME)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    except (OSError, SafetensorError) as e:
        for created in reversed(new_dirs):
            try:
                created.rmdir()
            except OSError:
                break
        raise ModelFileError(f"cannot write {folder}: {_cause(e)}") from None
    return folder


def _check_written(path: Path, tensors: Mapping[str, Tensor]) -> None:
    """Raise OSError unless ``path`` holds all of ``tensors``: safetensors may not report a failed final write
    (a full disk), which leaves the file short."""
    try:
        written = read_safetensors_header(path)
    except ModelFileError:
        written = {}
    if {k: tuple(v.shape) for k, v in written.items()} != {k: tuple(v.shape) for k, v in tensors.items()}:
        raise OSError(0, "the weights file came out incomplete (is the disk full?)")


def load_from_files(config_path: str | os.PathLike[str], weights_path: str | os.PathLike[str]) -> SRModel:
    """Build the network of ``config_path``, load the safetensors ``weights_path`` into it (eval mode).

    Nothing is allocated before the weights file is known to fit: the config is checked, the network is built
    on the ``meta`` device and compared with the file's header; only then is it built for real and filled.
    """
    source = str(config_path)
    spec, config = _arch_and_config(read_config(config_path), source)
    declared = read_safetensors_header(weights_path)
    try:
        with torch.device("meta"):
            skeleton = spec.build(config)
    except (ValueError, RuntimeError) as e:  # a combination of values the config checks do not catch
        raise IncompatibleCheckpointError(f"{source}: cannot build {spec.name}: {_first_line(e)}") from None
    check_fit(skeleton, declared, str(weights_path))
    model = spec.build(config)
    load_weights_strict(model, read_state_dict(weights_path), str(weights_path))
    return model.eval()


def load_pretrained(folder: str | os.PathLike[str]) -> SRModel:
    """Load a model folder written by :func:`save_pretrained` (eval mode, float32, CPU).

    Raises:
        ModelFileError: a file is missing, unreadable, or a link to a file outside the folder.
        IncompatibleCheckpointError: the weights do not fit the config (the message names the keys).

    >>> import tempfile; from pclup.models import create_model
    >>> d = save_pretrained(create_model("edsr-s", scale=2), tempfile.mkdtemp())
    >>> load_pretrained(d).config.scale
    2
    """
    folder = Path(folder)
    for name in (CONFIG_NAME, WEIGHTS_NAME):
        if not (folder / name).is_file():
            raise ModelFileError(f"{folder}: not a pclup model folder (no {name})")
    return load_from_files(model_file(folder, CONFIG_NAME), model_file(folder, WEIGHTS_NAME))
