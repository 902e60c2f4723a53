"""Errors a user can cause. Each message is one line that names the cause.

The command-line layer (``pclup.cli._errors``) turns every :class:`PclupError` into that line on
standard error and a non-zero exit code, never a traceback.
"""

from __future__ import annotations


class PclupError(Exception):
    """Base class of every error pclup raises on purpose.

    ``exit_code`` is what the command line exits with: 1 for a failure at run time (a bad file,
    no network), 2 for a usage error (an unknown name, a bad flag value).
    """

    exit_code: int = 1

    def __init__(self, message: str) -> None:
        # Keep messages to one line: the CLI prints them as they are.
        super().__init__(" ".join(str(message).split()))


class UsageError(PclupError):
    """A flag or argument has a value that cannot work."""

    exit_code = 2


class UnknownModelError(UsageError):
    """A model spec names nothing pclup can find: no built-in model, file, folder or Hub repo."""


class UnknownArchitectureError(UsageError):
    """An architecture or variant name that is not registered."""


class ModelFileError(PclupError):
    """A weights file that cannot be read: missing, truncated, corrupt or of an unknown kind."""


class UnsafeCheckpointError(ModelFileError):
    """A pickle that would need arbitrary code to load; pclup refuses to unpickle it."""


class IncompatibleCheckpointError(ModelFileError):
    """Weights that do not fit the architecture: unknown layout, missing or unexpected keys, shapes."""


class HubError(PclupError):
    """The Hugging Face Hub could not provide a file (offline and not cached, no such repo, no access)."""


class ImageReadError(PclupError):
    """An input image that cannot be decoded."""


class ImageWriteError(PclupError):
    """An output image that cannot be written."""


def first_line(error: BaseException) -> str:
    """The first line of an exception's message (its type's name when the message is empty)."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def is_out_of_memory(error: BaseException) -> bool:
    """Whether ``error`` is an allocation failure of the host or a device (CUDA, MPS, CPU)."""
    if isinstance(error, MemoryError):
        return True
    text = str(error).lower()  # torch.OutOfMemoryError is a RuntimeError saying "out of memory"
    return isinstance(error, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text)


__all__ = [
    "HubError",
    "ImageReadError",
    "ImageWriteError",
    "IncompatibleCheckpointError",
    "ModelFileError",
    "PclupError",
    "UnknownArchitectureError",
    "UnknownModelError",
    "UnsafeCheckpointError",
    "UsageError",
]
