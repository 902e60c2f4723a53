"""FrequencySampler: positives carry more high-band energy than HR, negatives less; seeded; cheap."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from pclup.contrastive import FrequencySampler, gaussian_blur, high_bands, quantize, sharpen

B, C, H = 2, 3, 32


def _images(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A textured HR batch (smooth shapes plus fine detail) and its x4 bicubic LR."""
    g = torch.Generator().manual_seed(seed)
    coarse = F.interpolate(
        torch.rand(B, C, 8, 8, generator=g), size=(H, H), mode="bilinear", align_corners=False
    )
    hr = (0.7 * coarse + 0.3 * torch.rand(B, C, H, H, generator=g)).clamp(0, 1)
    lr = F.interpolate(hr, scale_factor=0.25, mode="bicubic", antialias=True, align_corners=False).clamp(0, 1)
    return hr, lr


def _energy(x: torch.Tensor) -> torch.Tensor:
    """High-band energy per image: (..., B)."""
    return high_bands(x.flatten(0, -4)).square().flatten(1).sum(1).view(x.shape[:-3])


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_shapes_range_and_anchors() -> None:
    hr, lr = _images()
    pos, neg = FrequencySampler(k=3).sample(hr, lr, _gen(0))
    assert pos.shape == neg.shape == (4, B, C, H, H)
    assert pos.dtype == neg.dtype == torch.float32
    assert pos.min() >= 0 and pos.max() <= 1 and neg.min() >= 0 and neg.max() <= 1
    assert torch.equal(pos[0], hr)
    ref = F.interpolate(lr, size=(H, H), mode="bicubic", align_corners=False).clamp(0, 1)
    torch.testing.assert_close(neg[0], ref)
    assert not pos.requires_grad and not neg.requires_grad


def test_generated_samples_are_8bit() -> None:
    hr, lr = _images()
    pos, neg = FrequencySampler().sample(hr, lr, _gen(0))
    for x in (pos[1:], neg[1:]):
        torch.testing.assert_close(x * 255, (x * 255).round(), rtol=0, atol=1e-4)
    pos, neg = FrequencySampler(quantize=False).sample(hr, lr, _gen(0))
    assert not torch.allclose(neg[1] * 255, (neg[1] * 255).round(), atol=1e-4)


def test_frequency_content() -> None:
    hr, lr = _images()
    hr_energy = _energy(hr)
    pos, neg = FrequencySampler(k=4, sharpness=(1.5, 3.0)).sample(hr, lr, _gen(0))
    assert (_energy(pos[1:]) > hr_energy).all()  # f > 1 sharpens
    assert (_energy(neg) < hr_energy).all()  # blurred HR and bicubic-upsampled LR
    assert (_energy(neg[0]) < 0.6 * hr_energy).all()


def test_sharpen_factor_semantics() -> None:
    hr, _ = _images()
    out = sharpen(hr, torch.tensor([[0.5] * B, [1.0] * B, [2.0] * B]))
    e = _energy(out)
    assert (e[0] < _energy(hr)).all() and (e[2] > _energy(hr)).all()
    torch.testing.assert_close(out[1], hr)  # f = 1 is the identity
    torch.testing.assert_close(out[2, ..., 0, :], hr[..., 0, :])  # border rows/columns are kept
    torch.testing.assert_close(out[2, ..., :, -1], hr[..., :, -1])


def test_sharpen_by_hand() -> None:
    x = torch.zeros(1, 1, 3, 3)
    x[..., 1, 1] = 0.26  # S at the centre = 5 * 0.26 / 13 = 0.1; out = 0.1 + f * (0.26 - 0.1)
    out = sharpen(x, torch.tensor([[2.0]]))
    assert out[0, 0, 0, 1, 1].item() == pytest.approx(0.42)
    assert out[0, 0, 0].sum().item() == pytest.approx(0.42)  # border untouched (zeros)


def test_gaussian_blur_is_normalised_and_separable() -> None:
    x = torch.full((1, 2, 12, 12), 0.3)
    torch.testing.assert_close(gaussian_blur(x, (11, 3), (2.0, 0.5)), x)  # constants survive reflect padding
    impulse = torch.zeros(1, 1, 15, 15)
    impulse[..., 7, 7] = 1
    k = gaussian_blur(impulse, (5, 3), (1.0, 0.7))[0, 0]
    assert (k[5:10, 6:9] > 0).all() and k.sum().item() == pytest.approx(1.0)
    assert k[4].abs().max() == 0 and k[:, 5].abs().max() == 0  # 5 tall, 3 wide
    torch.testing.assert_close(k[5:10, 6:9], torch.outer(k[5:10, 7], k[7, 6:9]) / k[7, 7])


def test_same_seed_same_samples_different_seed_different() -> None:
    hr, lr = _images()
    s = FrequencySampler()
    p1, n1 = s.sample(hr, lr, _gen(7))
    p2, n2 = s.sample(hr, lr, _gen(7))
    assert torch.equal(p1, p2) and torch.equal(n1, n2)
    p3, n3 = s.sample(hr, lr, _gen(8))
    assert not torch.equal(p1[1:], p3[1:]) and not torch.equal(n1[1:], n3[1:])


def test_k_zero_and_validation() -> None:
    hr, lr = _images()
    pos, neg = FrequencySampler(k=0).sample(hr, lr, _gen(0))
    assert pos.shape[0] == neg.shape[0] == 1
    with pytest.raises(ValueError):
        FrequencySampler(blur_sizes=(4,))
    with pytest.raises(ValueError):
        FrequencySampler(blur_sigma=(0.0, 1.0))
    with pytest.raises(TypeError):
        FrequencySampler(3)  # type: ignore[misc]  # keyword-only


def test_quantize() -> None:
    x = torch.tensor([-0.1, 0.0, 0.5, 1.2, 0.31])
    assert quantize(x).tolist() == pytest.approx([0.0, 0.0, 128 / 255, 1.0, 79 / 255])  # 127.5: half to even
    assert x[0] == -0.1  # not in place


def test_positives_and_negatives_are_counted_apart_and_seeded() -> None:
    from pclup.contrastive import EmbeddingNet, contrastive_term, dual_contrastive_d_loss

    hr, lr = _images()
    pos, neg = FrequencySampler(positives=0, negatives=2).sample(hr, lr, _gen(0))
    assert pos.shape == (1, B, C, H, H) and torch.equal(pos[0], hr)  # HR only
    assert neg.shape == (3, B, C, H, H)
    pos, neg = FrequencySampler(positives=4, negatives=1).sample(hr, lr, _gen(0))
    assert (pos.shape[0], neg.shape[0]) == (5, 2)
    again = FrequencySampler(positives=4, negatives=1).sample(hr, lr, _gen(0))
    assert torch.equal(pos, again[0]) and torch.equal(neg, again[1])
    # one k draws what P = N = k draws: seeds of earlier runs give the same samples
    old = FrequencySampler(k=2).sample(hr, lr, _gen(3))
    new = FrequencySampler(positives=2, negatives=2).sample(hr, lr, _gen(3))
    assert torch.equal(old[0], new[0]) and torch.equal(old[1], new[1])
    # the losses take sets of different sizes
    net = EmbeddingNet(width=4, in_channels=3 * C)
    sr = hr.clone().requires_grad_(True)
    contrastive_term(net, sr, pos, neg, layers=(1,)).backward()
    assert sr.grad is not None
    d = dual_contrastive_d_loss(net(torch.cat([hr, *pos[1:]])), net(torch.cat([sr.detach(), *neg[1:]])))
    assert torch.isfinite(d)
    with pytest.raises(ValueError, match="positives"):
        FrequencySampler(positives=-1)
