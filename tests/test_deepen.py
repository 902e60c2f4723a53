"""Growing a compact network with identity layers: the same function, and it blends with the shallower
network it was grown from."""

from __future__ import annotations

import pytest
import torch

from pclup.models.compact import Compact, CompactConfig, deepen
from pclup.weights import LoadedModel, blend_models


def _compact(n_convs: int, act: str = "prelu", seed: int = 0) -> Compact:
    torch.manual_seed(seed)
    model = Compact(CompactConfig(scale=2, n_feats=8, n_convs=n_convs, act_type=act))  # type: ignore[arg-type]
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)  # negative PReLU inputs and slopes off 0.25 included
    return model.eval()


@pytest.mark.parametrize("act", ["prelu", "relu"])
def test_deepen_keeps_the_function_exactly(act: str) -> None:
    model = _compact(2, act)
    deeper = deepen(model, 5)
    assert deeper.config.n_convs == 5 and len(deeper.trunk) == 5
    x = torch.rand(1, 3, 13, 11) * 2 - 0.5
    with torch.no_grad():
        assert torch.equal(model(x), deeper(x))
    assert torch.equal(deeper.trunk[1].conv.weight, model.trunk[1].conv.weight)


def test_deepen_refuses_what_it_cannot_do() -> None:
    with pytest.raises(ValueError, match="fewer"):
        deepen(_compact(3), 2)
    with pytest.raises(ValueError, match="LeakyReLU"):
        deepen(_compact(1, "leakyrelu"), 2)


def test_a_deeper_fine_tune_blends_with_its_start() -> None:
    """t = 0 is the shallow model's function, t = 1 the deep one's, either way round."""
    shallow = LoadedModel(_compact(2), "default", "test")
    grown = deepen(shallow.model, 4)
    with torch.no_grad():
        for p in grown.parameters():
            p.add_(torch.randn_like(p) * 0.01)  # a fine-tune of the grown network
    deep = LoadedModel(grown.eval(), "photo", "test")
    x = torch.rand(1, 3, 9, 10)
    with torch.no_grad():
        for a, b, t, same_as in ((shallow, deep, 0.0, shallow), (shallow, deep, 1.0, deep),
                                 (deep, shallow, 1.0, shallow)):
            mixed = blend_models(a, b, t)
            assert mixed.model.config.n_convs == 4
            assert torch.allclose(mixed.model(x), same_as.model(x), atol=1e-6)
        assert shallow.model.config.n_convs == 2  # the inputs are left as they were
