"""NLSN: official key layout, shapes, parameter count, deterministic inference."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

from pclup.models import edsr, nlsn
from pclup.models.nlsn import NLSN, NLSNConfig, NonLocalSparseAttention


def official_layout(
    n_resblocks: int, n_feats: int, scale: int, reduction: int = 4, n_colors: int = 3
) -> dict[str, tuple[int, ...]]:
    """Key -> shape of upstream NLSN (HarukiYqM/Non-Local-Sparse-Attention, src/model/nlsn.py), by hand.

    m_body = [NLSA] + per block i: [ResBlock] (+ [NLSA] when (i+1) % 8 == 0) + [conv]; NLSA holds
    conv_match = BasicBlock(conv, F, F//reduction, 3, act=None) and conv_assembly = BasicBlock(conv, F, F, 1);
    ResBlock.body = [conv, ReLU, conv];
    tail = [Upsampler (conv 4F + shuffle per x2, or conv 9F for x3), conv].
    """
    f = n_feats
    keys: dict[str, tuple[int, ...]] = {
        "sub_mean.weight": (3, 3, 1, 1),
        "sub_mean.bias": (3,),
        "add_mean.weight": (3, 3, 1, 1),
        "add_mean.bias": (3,),
        "head.0.weight": (f, n_colors, 3, 3),
        "head.0.bias": (f,),
    }

    def nlsa(i: int) -> None:
        keys[f"body.{i}.conv_match.0.weight"] = (f // reduction, f, 3, 3)
        keys[f"body.{i}.conv_match.0.bias"] = (f // reduction,)
        keys[f"body.{i}.conv_assembly.0.weight"] = (f, f, 1, 1)
        keys[f"body.{i}.conv_assembly.0.bias"] = (f,)

    idx = 0
    nlsa(idx)
    for i in range(n_resblocks):
        idx += 1
        for j in (0, 2):
            keys[f"body.{idx}.body.{j}.weight"] = (f, f, 3, 3)
            keys[f"body.{idx}.body.{j}.bias"] = (f,)
        if (i + 1) % 8 == 0:
            idx += 1
            nlsa(idx)
    idx += 1
    keys[f"body.{idx}.weight"] = (f, f, 3, 3)
    keys[f"body.{idx}.bias"] = (f,)
    if scale == 3:
        keys["tail.0.0.weight"] = (9 * f, f, 3, 3)
        keys["tail.0.0.bias"] = (9 * f,)
    else:
        for k in range(int(math.log2(scale))):
            keys[f"tail.0.{2 * k}.weight"] = (4 * f, f, 3, 3)
            keys[f"tail.0.{2 * k}.bias"] = (4 * f,)
    keys["tail.1.weight"] = (n_colors, f, 3, 3)
    keys["tail.1.bias"] = (n_colors,)
    return keys


def make_state_dict(layout: dict[str, tuple[int, ...]], rgb_range: float = 1.0) -> dict[str, Tensor]:
    gen = torch.Generator().manual_seed(0)
    sd = {k: torch.randn(shape, generator=gen) * 0.05 for k, shape in layout.items()}
    mean = torch.tensor((0.4488, 0.4371, 0.4040))
    for name, sign in (("sub_mean", -1), ("add_mean", 1)):
        sd[f"{name}.weight"] = torch.eye(3).view(3, 3, 1, 1)
        sd[f"{name}.bias"] = sign * rgb_range * mean
    return sd


TINY = {"n_resblocks": 9, "n_feats": 16, "chunk_size": 16}


def tiny(scale: int = 2, **kw: object) -> NLSN:
    torch.manual_seed(0)
    return NLSN(NLSNConfig(scale=scale, **{**TINY, **kw}))  # type: ignore[arg-type]


def test_official_layout_tiny_loads_strictly_and_is_detected() -> None:
    sd = make_state_dict(official_layout(9, 16, 4))
    assert "body.9.conv_match.0.weight" in sd and "body.11.weight" in sd  # NLSA after the 8th block
    assert nlsn.detect(sd)
    assert not edsr.detect(sd)
    config = nlsn.infer_config(sd)
    assert (config.scale, config.n_resblocks, config.n_feats, config.reduction) == (4, 9, 16, 4)
    assert config.rgb_range == 1.0
    model = NLSN(config)
    model.load_state_dict(sd, strict=True)
    assert model(torch.rand(1, 3, 6, 5)).shape == (1, 3, 24, 20)


def test_rgb_range_is_read_from_mean_shift() -> None:
    sd = make_state_dict(official_layout(8, 16, 3), rgb_range=255.0)
    config = nlsn.infer_config(sd)
    assert config.rgb_range == 255.0 and config.scale == 3 and config.n_resblocks == 8


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_full_config_matches_official_shapes(scale: int) -> None:
    layout = official_layout(32, 256, scale)
    assert sum(1 for k in layout if k.endswith("conv_match.0.weight")) == 5
    with torch.device("meta"):
        model = NLSN(NLSNConfig(scale=scale))
        sd = {k: torch.empty(shape) for k, shape in layout.items()}
    assert {k: tuple(v.shape) for k, v in model.state_dict().items()} == layout
    model.load_state_dict(sd, strict=True, assign=True)
    assert nlsn.detect(sd) and not edsr.detect(sd)
    config = nlsn.infer_config(sd)
    assert config == NLSNConfig(scale=scale)


def test_edsr_layout_is_not_nlsn() -> None:
    with torch.device("meta"):
        sd = edsr.EDSR(edsr.EDSRConfig(n_resblocks=32, n_feats=256, res_scale=0.1)).state_dict()
    assert edsr.detect(sd) and not nlsn.detect(sd)


def test_parameter_count_x4() -> None:
    with torch.device("meta"):
        model = NLSN(NLSNConfig(scale=4))
    n = sum(p.numel() for p in model.parameters())
    assert n == 44_156_507  # EDSR-L x4 43,089,923 + 5 NLSA x 213,312 + 24 fixed MeanShift values
    assert abs(n - 44.16e6) / 44.16e6 < 0.01  # NLSN x4 in the literature: 44.16M


@pytest.mark.parametrize("scale", [2, 3, 4])
@pytest.mark.parametrize("chunk_size", [16, 144])  # 144: fewer pixels than one chunk (upstream would fail)
def test_output_shapes_odd_input(scale: int, chunk_size: int) -> None:
    model = tiny(scale, chunk_size=chunk_size).eval()
    with torch.inference_mode():
        y = model(torch.rand(2, 3, 7, 9))
    assert y.shape == (2, 3, 7 * scale, 9 * scale)
    assert torch.isfinite(y).all()


def test_eval_is_deterministic_and_batch_independent() -> None:
    model = tiny(2).eval()
    x = torch.rand(2, 3, 11, 13)
    with torch.inference_mode():
        a, b = model(x), model(x)
        single = model(x[1:])
        other = tiny(2).eval()(x)  # a new instance with the same weights and seed
    assert torch.equal(a, b)
    assert torch.equal(a, other)
    torch.testing.assert_close(single[0], a[1], rtol=1e-4, atol=1e-5)


def test_train_mode_draws_new_rotations() -> None:
    model = tiny(2).train()
    # make attention matter: with res_scale 1 the NLSA output dominates random-init ResBlocks
    x = torch.rand(1, 3, 11, 13)
    with torch.no_grad():
        outs = [model(x) for _ in range(4)]
    assert any(not torch.equal(outs[0], o) for o in outs[1:])


def _upstream_forward(m: NonLocalSparseAttention, inp: Tensor, rotations: Tensor) -> Tensor:
    """Upstream NonLocalSparseAttention.forward transcribed step by step (fixed rotations, L >= chunk)."""
    n, _, h, w = inp.shape
    x_embed = m.conv_match(inp).view(n, -1, h * w).contiguous().permute(0, 2, 1)
    y_embed = m.conv_assembly(inp).view(n, -1, h * w).contiguous().permute(0, 2, 1)
    length, c = x_embed.shape[-2:]
    hb = min(length // m.chunk_size + (length // m.chunk_size) % 2, 128)
    rot = rotations.expand(n, -1, -1, -1)
    rv = torch.einsum("btf,bfhi->bhti", x_embed, rot)
    codes = torch.argmax(torch.cat([rv, -rv], dim=-1), dim=-1)
    codes = (codes + torch.arange(m.n_hashes).reshape(1, -1, 1) * hb).reshape(n, -1)
    _, indices = codes.sort(dim=-1)
    _, undo = indices.sort(dim=-1)
    mod = indices % length

    def bis(v: Tensor, i: Tensor) -> Tensor:
        return v.gather(1, i[:, :, None].expand(-1, -1, v.shape[-1]))

    xs, ys = bis(x_embed, mod), bis(y_embed, mod)
    padding = m.chunk_size - length % m.chunk_size if length % m.chunk_size != 0 else 0
    xb = xs.reshape(n, m.n_hashes, -1, c)
    yb = ys.reshape(n, m.n_hashes, -1, c * m.reduction)
    if padding:
        xb = torch.cat([xb, xb[:, :, -padding:, :].clone()], dim=2)
        yb = torch.cat([yb, yb[:, :, -padding:, :].clone()], dim=2)
    xb = xb.reshape(n, m.n_hashes, -1, m.chunk_size, c)
    yb = yb.reshape(n, m.n_hashes, -1, m.chunk_size, c * m.reduction)

    def adj(v: Tensor) -> Tensor:
        back = torch.cat([v[:, :, -1:, ...], v[:, :, :-1, ...]], dim=2)
        fwd = torch.cat([v[:, :, 1:, ...], v[:, :, :1, ...]], dim=2)
        return torch.cat([v, back, fwd], dim=3)

    xm = adj(F.normalize(xb, p=2, dim=-1, eps=5e-5))
    yb = adj(yb)
    raw = torch.einsum("bhkie,bhkje->bhkij", xb, xm)
    bs = torch.logsumexp(raw, dim=-1, keepdim=True)
    score = torch.exp(raw - bs)
    bs = bs.reshape(n, m.n_hashes, -1)
    ret = torch.einsum("bukij,bukje->bukie", score, yb).reshape(n, m.n_hashes, -1, c * m.reduction)
    if padding:
        ret, bs = ret[:, :, :-padding, :], bs[:, :, :-padding]
    ret = bis(ret.reshape(n, -1, c * m.reduction), undo)
    bs = bs.reshape(n, -1).gather(1, undo)
    ret = ret.reshape(n, m.n_hashes, length, c * m.reduction)
    probs = torch.softmax(bs.reshape(n, m.n_hashes, length, 1), dim=1)
    ret = torch.sum(ret * probs, dim=1)
    return ret.permute(0, 2, 1).view(n, -1, h, w).contiguous() * m.res_scale + inp


def test_attention_matches_upstream_algorithm() -> None:
    torch.manual_seed(1)
    m = NonLocalSparseAttention(16, n_hashes=4, chunk_size=16, reduction=4, res_scale=0.5).eval()
    x = torch.randn(2, 16, 9, 11)  # L = 99: 6 buckets, padding 13
    length = 99
    hb = length // 16 + (length // 16) % 2
    rotations = m._rotations(4, hb, x)
    with torch.no_grad():
        torch.testing.assert_close(m(x), _upstream_forward(m, x, rotations), rtol=1e-5, atol=1e-5)
