"""Test-wide settings: never touch the network or the user's Hugging Face cache."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

# huggingface_hub reads these when it is imported: set them before any test imports it.
_HF_HOME = Path(tempfile.mkdtemp(prefix="pclup-test-hf-"))
atexit.register(shutil.rmtree, _HF_HOME, ignore_errors=True)  # one per run: leave none behind
os.environ["HF_HOME"] = str(_HF_HOME)
os.environ["HF_HUB_CACHE"] = str(_HF_HOME / "hub")
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.pop("HF_TOKEN", None)
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(min(2, torch.get_num_threads()))

# The smallest configuration of each architecture that still exercises every layer type.
TINY: dict[str, dict[str, object]] = {
    "edsr": {"n_resblocks": 2, "n_feats": 8},
    "rcan": {"n_resgroups": 2, "n_resblocks": 1, "n_feats": 8, "reduction": 4},
    "han": {"n_resgroups": 2, "n_resblocks": 1, "n_feats": 8, "reduction": 4},
    "nlsn": {"n_resblocks": 2, "n_feats": 8, "chunk_size": 16, "n_hashes": 2},
    "compact": {"n_feats": 8, "n_convs": 1},
    "rrdbnet": {"num_feat": 8, "num_block": 1, "num_grow_ch": 4},
    "swinir": {"embed_dim": 12, "depths": (2,), "num_heads": (2,), "window_size": 4, "img_size": 16, "num_feat": 8},
}


@pytest.fixture
def hub_cache() -> Path:
    """The Hugging Face cache folder the tests' huggingface_hub uses."""
    path = Path(os.environ["HF_HUB_CACHE"])
    path.mkdir(parents=True, exist_ok=True)
    return path


def data_dir(needs: str = "Set5") -> Path:
    """The folder of the shared test sets ($PCLUP_DATA, else ../shared/data) holding ``needs``; skip if absent."""
    root = Path(__file__).resolve().parents[1]
    for candidate in (os.environ.get("PCLUP_DATA"), root.parent / "shared" / "data"):
        if candidate and (Path(candidate) / needs).is_dir():
            return Path(candidate)
    pytest.skip("the test sets are not here (set PCLUP_DATA)")


def noise_images(folder: Path, height: int, width: int, count: int = 3) -> Path:
    """``count`` seeded random RGB PNGs (``0.png``...) of ``height`` x ``width`` in ``folder``: a training set."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for i in range(count):
        Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    return folder


def tiny_model(arch: str, scale: int = 2) -> torch.nn.Module:
    """``arch`` in its TINY configuration; a test fails for an architecture that has none."""
    from pclup.models import get_arch

    if arch not in TINY:
        pytest.fail(f"no tiny configuration for {arch}: add one to TINY in tests/conftest.py")
    spec = get_arch(arch)
    torch.manual_seed(0)
    return spec.build(spec.make_config(scale=scale, **TINY[arch]))


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny x2 EDSR saved as a pclup model folder (one per test module)."""
    from pclup.models import create_model
    from pclup.weights import save_pretrained

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("model") / "tiny-x2"
    save_pretrained(create_model("edsr", scale=2, n_resblocks=1, n_feats=8), folder)
    return folder
