"""EmbeddingNet: the SRGAN-style discriminator on Haar high bands (docs/method.md, "The embedding network")."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from pclup.contrastive import EmbeddingNet, high_bands


def _x(b: int = 2, size: int = 48, channels: int = 3, seed: int = 0) -> torch.Tensor:
    return torch.rand(b, channels, size, size, generator=torch.Generator().manual_seed(seed))


def test_parameter_count_matches_the_released_discriminator() -> None:
    n = sum(p.numel() for p in EmbeddingNet(width=64).parameters())
    assert n == 4_690_752 + 513  # trunk + patch head (docs/method.md)
    assert n == pytest.approx(4.69e6, rel=0.005)


def test_feature_shapes_at_every_layer() -> None:
    torch.manual_seed(0)
    net = EmbeddingNet(width=64)
    feats = net.features(_x(), layers=range(8))
    # 48-px image -> 24-px high bands; strides 1,2,1,2,1,2,1,2 (ceil at 3 -> 2)
    expected = [(64, 24), (64, 12), (128, 12), (128, 6), (256, 6), (256, 3), (512, 3), (512, 2)]
    assert [(f.shape[1], f.shape[-1]) for f in feats] == expected
    assert all(f.shape[0] == 2 and f.shape[-2] == f.shape[-1] for f in feats)
    assert net.logits(_x()).shape == (2, 16)


def test_features_in_requested_order_and_post_activation() -> None:
    torch.manual_seed(0)
    net = EmbeddingNet(width=8).eval()
    x = _x()
    all_feats = net.features(x, layers=range(8))
    picked = net.features(x, layers=(5, 1, 5))
    assert [f.shape for f in picked] == [all_feats[5].shape, all_feats[1].shape, all_feats[5].shape]
    torch.testing.assert_close(picked[1], all_feats[1])
    # after LeakyReLU(0.2): negative entries are exactly 0.2 x the BN output
    block = net.blocks[0]
    pre = block[1](block[0](high_bands(x)))
    torch.testing.assert_close(all_feats[0], torch.where(pre > 0, pre, 0.2 * pre))
    torch.testing.assert_close(net.head(all_feats[7]).flatten(1), net.logits(x))


def test_features_stop_after_the_deepest_requested_layer() -> None:
    class Boom(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            raise AssertionError("block 3 should not run")

    net = EmbeddingNet(width=4)
    net.blocks[3] = Boom()
    assert len(net.features(_x(), layers=(0, 2))) == 2
    with pytest.raises(AssertionError):
        net.logits(_x())


def test_train_mode_backward_reaches_every_parameter() -> None:
    torch.manual_seed(0)
    net = EmbeddingNet(width=4).train()
    x = _x(b=3, size=32).requires_grad_(True)
    net.logits(x).square().mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in net.parameters())
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_eval_mode_embeds_each_image_independently() -> None:
    torch.manual_seed(0)
    net = EmbeddingNet(width=4)
    net.train()
    net.logits(_x(b=4))  # some running statistics
    net.eval()
    x = _x(b=3)
    together = net.features(x, layers=(4,))[0]
    alone = net.features(x[1:2], layers=(4,))[0]
    torch.testing.assert_close(together[1:2], alone)


def test_other_channel_counts_and_odd_sizes() -> None:
    net = EmbeddingNet(in_channels=3, width=4)  # grayscale images
    assert net.logits(_x(channels=1, size=33)).shape == (2, 16)
    assert net.features(_x(channels=1, size=33), layers=(0,))[0].shape[-1] == 17


def test_argument_checks() -> None:
    with pytest.raises(TypeError):
        EmbeddingNet(9)  # type: ignore[misc]  # keyword-only
    with pytest.raises(ValueError):
        EmbeddingNet(in_channels=4)
    net = EmbeddingNet(width=4)
    with pytest.raises(ValueError):
        net.features(_x(channels=1), layers=(0,))
    with pytest.raises(ValueError):
        net.features(_x(), layers=(8,))
    with pytest.raises(ValueError):
        net.features(_x(), layers=())
