"""PCL-SR losses on inputs whose cosine similarities are known by hand, and the gradient path."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from pclup.contrastive import (
    EmbeddingNet,
    FrequencySampler,
    contrastive_term,
    cosine_contrastive_loss,
    dual_contrastive_d_loss,
    feature_similarity,
    infonce_loss,
)

E0 = torch.tensor([1.0, 0.0])
E1 = torch.tensor([0.0, 1.0])


def fmap(*pixels: torch.Tensor) -> torch.Tensor:
    """A (1, 2, 1, n) feature map whose pixels are the given 2-vectors."""
    return torch.stack(pixels, dim=-1).view(1, 2, 1, len(pixels))


def stack(*maps: torch.Tensor) -> torch.Tensor:
    return torch.stack(maps)


# anchor pixels e0, e1; similarities (mean of the two per-pixel cosines):
A = fmap(E0, E1)
SIM_1 = fmap(3 * E0, 0.5 * E1)  # parallel at both pixels: 1
SIM_HALF = fmap(E0, E0)  # 1 and 0: 0.5
SIM_0 = fmap(E1, E0)  # orthogonal at both pixels: 0
SIM_M1 = fmap(-E0, -2 * E1)  # opposite: -1


def test_feature_similarity_by_hand() -> None:
    s = feature_similarity(A, stack(SIM_1, SIM_HALF, SIM_0, SIM_M1))
    torch.testing.assert_close(s, torch.tensor([[1.0], [0.5], [0.0], [-1.0]]))
    diagonal = fmap(E0 + E1, E0 + E1)  # 45 degrees at both pixels
    assert feature_similarity(A, stack(diagonal)).item() == pytest.approx(math.sqrt(0.5))


def test_infonce_one_positive_at_a_time() -> None:
    pos = stack(SIM_1, SIM_HALF)
    neg = stack(SIM_0, SIM_0)
    expected = (-math.log(math.e / (math.e + 2)) - math.log(math.exp(0.5) / (math.exp(0.5) + 2))) / 2
    assert infonce_loss(A, pos, neg).item() == pytest.approx(expected, rel=1e-6)
    # tau = 0.5 doubles every similarity
    expected_tau = (-math.log(math.e**2 / (math.e**2 + 2)) - math.log(math.e / (math.e + 2))) / 2
    assert infonce_loss(A, pos, neg, tau=0.5).item() == pytest.approx(expected_tau, rel=1e-6)
    # equal similarities: log(1 + N)
    assert infonce_loss(A, stack(SIM_0), stack(SIM_0, SIM_0, SIM_0)).item() == pytest.approx(math.log(4))


def test_infonce_averages_over_batch_and_layers() -> None:
    anchor = torch.cat((A, A))  # batch of 2: image 0 sees SIM_1 as positive, image 1 SIM_M1
    pos = torch.cat((SIM_1, SIM_M1)).unsqueeze(0)
    neg = torch.cat((SIM_0, SIM_0)).unsqueeze(0)
    per_image = [-math.log(math.e / (math.e + 1)), -math.log(math.exp(-1) / (math.exp(-1) + 1))]
    layer0 = sum(per_image) / 2
    assert infonce_loss(anchor, pos, neg).item() == pytest.approx(layer0, rel=1e-6)
    layer1 = math.log(2)  # all similarities equal
    same = torch.cat((SIM_0, SIM_0)).unsqueeze(0)
    loss = infonce_loss([anchor, anchor], [pos, same], [neg, same])
    assert loss.item() == pytest.approx((layer0 + layer1) / 2, rel=1e-6)


def test_cosine_form() -> None:
    pos = stack(SIM_1, SIM_HALF)  # mean 0.75
    neg = stack(SIM_0, SIM_M1)  # mean -0.5
    assert cosine_contrastive_loss(A, pos, neg).item() == pytest.approx(-0.5 - 0.75)
    # layers are summed, as the released cl_pos_l2
    two = cosine_contrastive_loss([A, A], [pos, stack(SIM_0)], [neg, stack(SIM_1)])
    assert two.item() == pytest.approx((-0.5 + 1.0) - (0.75 + 0.0))


def _dual_reference(r: list[float], f: list[float]) -> float:
    first = sum(-math.log(math.exp(ri) / (math.exp(ri) + sum(math.exp(fj) for fj in f))) for ri in r) / len(r)
    second = sum(
        -math.log(math.exp(-fj) / (math.exp(-fj) + sum(math.exp(-ri) for ri in r))) for fj in f
    ) / len(f)
    return first + second


def test_dual_contrastive_d_loss_matches_the_formula() -> None:
    r = [[1.0, 2.0], [0.5, -0.3]]  # (B=2, 2 patches)
    f = [[0.0, -1.0, 0.25]]
    loss = dual_contrastive_d_loss(torch.tensor(r), torch.tensor(f))
    assert loss.item() == pytest.approx(_dual_reference([1.0, 2.0, 0.5, -0.3], [0.0, -1.0, 0.25]), rel=1e-6)
    # the released einops/cross-entropy implementation, on (B, 16) patch logits
    g = torch.Generator().manual_seed(0)
    real, fake = torch.randn(3, 16, generator=g) * 3, torch.randn(2, 16, generator=g) * 3
    rr, ff = real.flatten(), fake.flatten()

    def half(t1: torch.Tensor, t2: torch.Tensor) -> torch.Tensor:
        logits = torch.cat((t1[:, None], t2[None].expand(len(t1), -1)), dim=1)
        return F.cross_entropy(logits, torch.zeros(len(t1), dtype=torch.long))

    torch.testing.assert_close(dual_contrastive_d_loss(real, fake), half(rr, ff) + half(-ff, -rr))


# --- contrastive_term: the trainer's entry point ---------------------------------------------------------


def _setup(
    width: int = 4,
) -> tuple[EmbeddingNet, nn.Conv2d, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    embed = EmbeddingNet(width=width)
    embed.train()
    g = torch.Generator().manual_seed(0)
    hr = torch.rand(2, 3, 32, 32, generator=g)
    embed.logits(hr)  # running statistics from one train-mode pass
    lr = F.interpolate(hr, scale_factor=0.5, mode="bilinear", antialias=True, align_corners=False)
    pos, neg = FrequencySampler(k=2).sample(hr, lr, g)
    sr_net = nn.Conv2d(3, 3, 3, padding=1)  # a tiny "SR network" on the upsampled input
    up = F.interpolate(lr, scale_factor=2, mode="bilinear", align_corners=False)
    return embed, sr_net, up, hr, pos, neg


@pytest.mark.parametrize("form", ["infonce", "cosine"])
def test_gradient_reaches_the_sr_network_through_a_frozen_embedding(form: str) -> None:
    embed, sr_net, up, _, pos, neg = _setup()
    embed.requires_grad_(False)
    sr = sr_net(up)
    loss = contrastive_term(embed, sr, pos, neg, layers=(2, 4), loss=form)
    assert loss.requires_grad
    loss.backward()
    assert sr_net.weight.grad is not None and sr_net.weight.grad.abs().sum() > 0


def test_trainable_embedding_is_left_as_found() -> None:
    embed, sr_net, up, _, pos, neg = _setup()
    buffers = {k: v.clone() for k, v in embed.state_dict().items()}
    loss = contrastive_term(embed, sr_net(up), pos, neg, layers=(4,))
    loss.backward()
    assert embed.training
    assert all(p.requires_grad and p.grad is None for p in embed.parameters())  # no gradient spent on E_D
    assert all(
        torch.equal(v, embed.state_dict()[k]) for k, v in buffers.items()
    )  # eval mode: stats untouched
    assert sr_net.weight.grad is not None


def test_matches_the_loss_on_eval_mode_features() -> None:
    embed, sr_net, up, _, pos, neg = _setup()
    sr = sr_net(up)
    got = contrastive_term(embed, sr, pos, neg, layers=(1, 4), tau=0.5)
    embed.eval()
    with torch.no_grad():
        feats = embed.features(sr, (1, 4))
        p = [embed.features(x, (1, 4)) for x in pos]
        n = [embed.features(x, (1, 4)) for x in neg]
        expected = infonce_loss(
            feats,
            [torch.stack([q[i] for q in p]) for i in range(2)],
            [torch.stack([q[i] for q in n]) for i in range(2)],
            tau=0.5,
        )
    torch.testing.assert_close(got.detach(), expected)


def test_released_no_grad_behaviour_changes_nothing_in_the_sr_gradient() -> None:
    embed, sr_net, up, hr, pos, neg = _setup()
    sr = sr_net(up)
    l1 = F.l1_loss(sr, hr)
    cl = contrastive_term(embed, sr, pos, neg, layers=(4,), no_grad=True)
    assert not cl.requires_grad and cl.grad_fn is None and cl.item() > 0
    (l1 + 5 * cl).backward()
    with_cl = sr_net.weight.grad.clone()  # type: ignore[union-attr]
    sr_net.zero_grad()
    F.l1_loss(sr_net(up), hr).backward()
    torch.testing.assert_close(with_cl, sr_net.weight.grad)
    # and the same value as the gradient-carrying call
    torch.testing.assert_close(cl, contrastive_term(embed, sr_net(up), pos, neg, layers=(4,)).detach())


def test_under_torch_no_grad_no_gradient_reaches_sr() -> None:
    embed, sr_net, up, _, pos, neg = _setup()
    embed.requires_grad_(False)
    sr = sr_net(up)
    with torch.no_grad():
        loss = contrastive_term(embed, sr, pos, neg, layers=(4,))
    assert not loss.requires_grad


def test_argument_checks() -> None:
    embed, sr_net, up, _, pos, neg = _setup()
    sr = sr_net(up)
    with pytest.raises(ValueError):
        contrastive_term(embed, sr, pos, neg, layers=(4,), loss="lmcl")
    with pytest.raises(ValueError):
        contrastive_term(embed, sr, pos[0], neg, layers=(4,))
    with pytest.raises(TypeError):
        infonce_loss(A, [stack(SIM_1)], stack(SIM_0))


def test_autocast_bf16_gives_a_float32_loss_with_gradient() -> None:
    embed, sr_net, up, _, pos, neg = _setup()
    sr = sr_net(up)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = contrastive_term(embed, sr, pos, neg, layers=(4,))
    assert loss.dtype == torch.float32
    loss.backward()
    assert sr_net.weight.grad is not None and torch.isfinite(sr_net.weight.grad).all()
