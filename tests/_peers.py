"""Reference implementations from peer projects, for equivalence tests.

Both peers import optional packages at import time that pclup does not depend on and the test
environment does not install:

* spandrel's package ``__init__`` imports every architecture it supports; LaMa and RestoreFormer import
  ``torchvision.transforms.functional`` (``InterpolationMode``, ``rotate``, ``normalize``).
* super-image's package ``__init__`` imports its trainer and data tools: ``h5py``, ``cv2``,
  ``torchvision.transforms``.

While such a peer is imported, any of those packages that is missing is replaced by stand-in modules:
every name looked up in them is a placeholder class that raises when it is instantiated, so importing
works and using them fails loudly. The stand-ins are removed from ``sys.modules`` afterwards, so code
that probes for these packages still finds none. A package that is installed is used as it is.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

import pytest

from pclup.weights.spandrel_bridge import stand_ins_for_missing

_SPANDREL_OPTIONAL = ("torchvision",)
_SUPER_IMAGE_OPTIONAL = ("h5py", "cv2", "torchvision")


def _import_peer(package: str, optional: Sequence[str]) -> ModuleType:
    """Import ``package`` (with stand-ins for its missing optional imports); skip the test if absent."""
    if package in sys.modules:
        return sys.modules[package]
    if importlib.util.find_spec(package) is None:
        pytest.skip(f"{package} is not installed")
    with stand_ins_for_missing(optional):
        return importlib.import_module(package)


def import_spandrel_arch(name: str, module: str | None = None) -> ModuleType:
    """The module ``spandrel.architectures.<name>.__arch.<module>`` holding spandrel's network code.

    Args:
        name: spandrel's architecture folder, e.g. ``"SwinIR"``, ``"RCAN"``.
        module: File in its ``__arch`` folder without ``.py`` (``"rcan_arch"`` for RCAN). By default
            ``name`` itself, or else the only module there.

    Skips the calling test when spandrel is not installed.
    """
    _import_peer("spandrel", _SPANDREL_OPTIONAL)
    package = f"spandrel.architectures.{name}.__arch"
    if module is None:
        folder = Path(importlib.import_module(package).__path__[0])
        found = sorted(p.stem for p in folder.glob("*.py") if p.stem != "__init__")
        if name in found:
            module = name
        elif len(found) == 1:
            module = found[0]
        else:
            raise ValueError(f"{package} holds {', '.join(found)}; name the module to import")
    return importlib.import_module(f"{package}.{module}")


def import_super_image() -> ModuleType:
    """The ``super_image`` package (``RcanModel``, ``RcanConfig``, ``HanModel``, ...).

    Its submodules (``super_image.models.han.modeling_han``) can be imported normally afterwards.
    Skips the calling test when super-image is not installed.
    """
    return _import_peer("super_image", _SUPER_IMAGE_OPTIONAL)
