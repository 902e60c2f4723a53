"""Tests of pclup.imresize, the MATLAB-compatible bicubic resize.

The expected values are derived by hand from MATLAB's algorithm (``imresize.m``: the cubic kernel
with a = -0.5, ``u = x / scale + 0.5 * (1 - 1 / scale)`` in 1-based coordinates, mirrored edges,
weights divided by their sum), and a slow, literal transcription of ``contributions`` and
``imresizemex`` below serves as an independent reference on random images.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from pclup.imresize import (
    bicubic_downscale_uint8,
    bicubic_upscale,
    contributions,
    imresize,
    output_size,
    round_half_away,
)

# --------------------------------------------------------------------------------------------
# A literal transcription of MATLAB (1-based indices, scalar loops): the independent reference.


def _ref_cubic(t: float) -> float:
    a = abs(t)
    if a <= 1:
        return 1.5 * a**3 - 2.5 * a**2 + 1
    if a <= 2:
        return -0.5 * a**3 + 2.5 * a**2 - 4 * a + 2
    return 0.0


def _ref_contributions(n_in: int, n_out: int, scale: float, edge: str = "symmetric"):
    width = 4.0
    h = _ref_cubic
    if scale < 1:
        width = 4.0 / scale

        def h(t: float) -> float:
            return scale * _ref_cubic(scale * t)

    taps = math.ceil(width) + 2
    rows = []
    for x in range(1, n_out + 1):
        u = x / scale + 0.5 * (1 - 1 / scale)
        left = math.floor(u - width / 2)
        idx = [left + k for k in range(taps)]
        w = [h(u - i) for i in idx]
        total = sum(w)
        w = [v / total for v in w]
        if edge == "symmetric":
            aux = list(range(1, n_in + 1)) + list(range(n_in, 0, -1))
            idx = [aux[(i - 1) % len(aux)] for i in idx]
        else:
            idx = [min(max(1, i), n_in) for i in idx]
        rows.append([(wk, ik - 1) for wk, ik in zip(w, idx, strict=True) if wk != 0])
    return rows


def _ref_resize_axis(a: np.ndarray, axis: int, rows, quantize: bool) -> np.ndarray:
    a = np.moveaxis(a.astype(np.float64), axis, 0)
    out = np.zeros((len(rows),) + a.shape[1:])
    for i, row in enumerate(rows):
        acc = np.zeros(a.shape[1:])
        for w, j in row:  # imresizemex: accumulate tap by tap
            acc = acc + w * a[j]
        out[i] = acc
    if quantize:
        out = np.clip(np.where(out >= 0, np.floor(out + 0.5), np.ceil(out - 0.5)), 0, 255)
    return np.moveaxis(out, 0, axis)


def _ref_imresize(
    img: np.ndarray, scale=None, size=None, quantize: bool = False, edge: str = "symmetric", order=None
) -> np.ndarray:
    """MATLAB's imresize on an (H, W, ...) array."""
    h, w = img.shape[:2]
    if size is None:
        scales = (scale, scale)
        size = (math.ceil(scale * h), math.ceil(scale * w))
    else:
        scales = (size[0] / h, size[1] / w)
    rows = [_ref_contributions(n, m, s, edge) for n, m, s in zip((h, w), size, scales, strict=True)]
    if order is None:
        order = sorted(range(2), key=lambda d: scales[d])  # MATLAB: [~, order] = sort(scale)
    out = img
    for d in order:
        out = _ref_resize_axis(out, d, rows[d], quantize)
    return out


def _chw(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1))).to(torch.float64)


# --------------------------------------------------------------------------------------------
# Hand-derived values.


def test_cubic_weights_for_x2_upscaling_by_hand():
    # scale 2: u = x/2 + 0.25 (1-based). Output 1: u = 0.75, taps floor(0.75 - 2) = -2 .. 3, at
    # distances u - i = 2.75, 1.75, 0.75, -0.25, -1.25, -2.25. Keys' cubic (a = -0.5):
    #   k(0.25) = 1.5/64 - 2.5/16 + 1                 = 0.8671875
    #   k(0.75) = 1.5*27/64 - 2.5*9/16 + 1            = 0.2265625
    #   k(1.25) = -0.5*125/64 + 2.5*25/16 - 5 + 2     = -0.0703125
    #   k(1.75) = -0.5*343/64 + 2.5*49/16 - 7 + 2     = -0.0234375
    #   k(2.25) = k(2.75) = 0 (dropped: zero for every output pixel).
    # They sum to exactly 1. Taps -1, 0 (1-based) mirror to 2, 1: 0-based [1, 0, 0, 1].
    w, idx = contributions(4, 8, 2.0)
    assert w.shape == (8, 4)
    np.testing.assert_array_equal(w[0], [-0.0234375, 0.2265625, 0.8671875, -0.0703125])
    np.testing.assert_array_equal(idx[0], [1, 0, 0, 1])
    # Output 2: u = 1.25, taps -1 .. 4 at 2.25, 1.25, 0.25, -0.75, -1.75, -2.75.
    np.testing.assert_array_equal(w[1], [-0.0703125, 0.8671875, 0.2265625, -0.0234375])
    np.testing.assert_array_equal(idx[1], [0, 0, 1, 2])
    np.testing.assert_allclose(w.sum(axis=1), 1.0, rtol=0, atol=1e-15)


def test_upscale_x2_ramp_by_hand():
    # Input (0-based values) [0, 1, 2, 3], upscaled x2 along W (H = 1 stays constant).
    #   out[0] = (0.2265625 + 0.8671875) * in[0] + (-0.0234375 - 0.0703125) * in[1] = -0.09375
    #   out[1] = -0.0703125*0 + 0.8671875*0 + 0.2265625*1 - 0.0234375*2             =  0.1796875
    #   out[2] = (u = 1.75: taps 0..3 at 1.75, 0.75, -0.25, -1.25)
    #          = -0.0234375*0 + 0.2265625*0 + 0.8671875*1 - 0.0703125*2             =  0.7265625
    #   interior: a cubic with a = -0.5 reproduces a ramp: out = u - 1 (0-based) = 1.25, 1.75, ...
    #   the right edge mirrors the left: out[7] = 3 - out[0].
    x = torch.tensor([[[[0.0, 1.0, 2.0, 3.0]]]], dtype=torch.float64)
    y = imresize(x, 2)
    assert y.shape == (1, 1, 2, 8)
    expected = [-0.09375, 0.1796875, 0.7265625, 1.25, 1.75, 2.2734375, 2.8203125, 3.09375]
    np.testing.assert_array_equal(y[0, 0, 0].numpy(), expected)
    np.testing.assert_array_equal(y[0, 0, 1].numpy(), expected)


def test_upscale_x2_ramp_replicate_edge_by_hand():
    # Old MATLAB clamps taps instead: tap -1 (1-based) -> 1, so
    #   out[0] = (-0.0234375 + 0.2265625 + 0.8671875) * 0 - 0.0703125 * 1 = -0.0703125.
    x = torch.tensor([[0.0, 1.0, 2.0, 3.0]], dtype=torch.float64)
    y = imresize(x, 2, edge="replicate")
    expected = [-0.0703125, 0.1796875, 0.7265625, 1.25, 1.75, 2.2734375, 2.8203125, 3.0703125]
    np.testing.assert_array_equal(y[0].numpy(), expected)


def test_downscale_half_ramp_by_hand():
    # scale 1/2 with antialiasing: h(t) = 0.5 * k(t / 2), width 8, u = 2x - 0.5 (1-based).
    # Output 1: u = 1.5, taps floor(1.5 - 4) = -3 .. 6 at distances 4.5 .. -4.5; h there:
    #   h(+-0.5) = 0.5 k(0.25) = 0.43359375    h(+-1.5) = 0.5 k(0.75) = 0.11328125
    #   h(+-2.5) = 0.5 k(1.25) = -0.03515625   h(+-3.5) = 0.5 k(1.75) = -0.01171875,  h(+-4.5) = 0
    # (sum 1). On the ramp in[i] = i - 1 (i = 1..8), taps -2, -1, 0 mirror to 3, 2, 1:
    #   out1 = -0.01171875*2 - 0.03515625*1 + 0.11328125*0 + 0.43359375*0 + 0.43359375*1
    #          + 0.11328125*2 - 0.03515625*3 - 0.01171875*4 = 0.44921875
    # (0.5 in the interior). Output 2: u = 3.5, only tap 0 mirrors (to 1, value 0 instead of -1):
    #   out2 = 2.5 - 0.01171875 * (0 - (-1)) = 2.48828125; outputs 3 and 4 mirror outputs 2, 1:
    #   out3 = 7 - out2 = 4.51171875, out4 = 7 - out1 = 6.55078125.
    x = torch.arange(8, dtype=torch.float64).reshape(1, 8)
    y = imresize(x, 0.5)
    assert y.shape == (1, 4)
    np.testing.assert_array_equal(y[0].numpy(), [0.44921875, 2.48828125, 4.51171875, 6.55078125])
    # The same along H.
    np.testing.assert_array_equal(imresize(x.T.contiguous(), 0.5)[:, 0].numpy(), y[0].numpy())


def test_downscale_delta_by_hand():
    # A delta at 0-based position 4 of 8, downscaled by 2: output j (1-based) gets the weight
    # h(u_j - 5) with u_j = 2j - 0.5: u = 1.5, 3.5, 5.5, 7.5 -> distances -3.5, -1.5, 0.5, 2.5.
    x = torch.zeros(1, 8, dtype=torch.float64)
    x[0, 4] = 1.0
    y = imresize(x, 0.5)
    np.testing.assert_array_equal(y[0].numpy(), [-0.01171875, 0.11328125, 0.43359375, -0.03515625])


def test_no_antialiasing_downscale_uses_the_plain_kernel():
    # Without antialiasing, scale 1/2 samples at u = 2x - 0.5 with the plain kernel (taps at
    # distances +-0.5, +-1.5: 0.5625, -0.0625 each, from k(0.5) = 0.5625, k(1.5) = -0.0625).
    x = torch.arange(8, dtype=torch.float64).reshape(1, 8)
    y = imresize(x, 0.5, antialiasing=False)
    # Output 1: taps 0..3 (1-based) at 1.5, 0.5, -0.5, -1.5; tap 0 mirrors to 1 (value 0).
    #   -0.0625*0 + 0.5625*0 + 0.5625*1 - 0.0625*2 = 0.4375; interior outputs are 2.5, 4.5.
    np.testing.assert_array_equal(y[0].numpy(), [0.4375, 2.5, 4.5, 6.5625])


# --------------------------------------------------------------------------------------------
# Sizes.


@pytest.mark.parametrize(
    ("shape", "scale", "expected"),
    [
        ((7, 5), 0.5, (4, 3)),  # ceil(3.5), ceil(2.5)
        ((10, 11), 1 / 3, (4, 4)),  # ceil(3.33), ceil(3.67)
        ((9, 13), 0.25, (3, 4)),
        ((7, 5), 2, (14, 10)),
        ((7, 5), 3, (21, 15)),
        ((3, 5), 4, (12, 20)),
        ((50, 4), 1.1, (56, 5)),  # float64: 1.1 * 50 = 55.00000000000001, which MATLAB also ceils to 56
        ((12, 12), 1 / 3, (4, 4)),
    ],
)
def test_output_size_is_matlab_ceil(shape, scale, expected):
    assert output_size(shape, scale) == expected
    assert imresize(torch.zeros(1, *shape), scale).shape[-2:] == expected


def test_size_argument_and_per_dimension_scale():
    x = torch.rand(2, 9, 13, dtype=torch.float64)
    assert imresize(x, size=(5, 20)).shape == (2, 5, 20)
    assert imresize(x, (0.5, 2)).shape == (2, 5, 26)
    # scale and size together: MATLAB uses both as given
    assert imresize(x, 0.5, size=(4, 6)).shape == (2, 4, 6)
    ref = _ref_imresize(x.permute(1, 2, 0).numpy(), size=(5, 20))
    np.testing.assert_allclose(imresize(x, size=(5, 20)).permute(1, 2, 0).numpy(), ref, rtol=0, atol=1e-12)


def test_bad_arguments():
    with pytest.raises(ValueError):
        imresize(torch.zeros(4, 4))
    with pytest.raises(ValueError):
        imresize(torch.zeros(4, 4), 0)
    with pytest.raises(ValueError):
        imresize(torch.zeros(4), 2)
    with pytest.raises(TypeError):
        imresize(torch.zeros(4, 4, dtype=torch.int32), 2)
    with pytest.raises(ValueError):
        imresize(torch.zeros(4, 4), 2, edge="wrap")  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------
# Against the literal MATLAB transcription.

SCALES = [1 / 2, 1 / 3, 1 / 4, 2, 3, 4]


@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("edge", ["symmetric", "replicate"])
def test_matches_reference_float64(scale, edge):
    rng = np.random.default_rng(0)
    img = rng.uniform(0, 255, size=(13, 17, 2))  # odd sizes
    ours = imresize(_chw(img), scale, edge=edge).permute(1, 2, 0).numpy()
    ref = _ref_imresize(img, scale, edge=edge)
    assert ours.shape == ref.shape
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-10)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_uint8_downscale_matches_reference_exactly(scale):
    # uint8 semantics: round and saturate after each 1-D pass (MATLAB's imresizemex keeps the class).
    rng = np.random.default_rng(scale)
    img = rng.integers(0, 256, size=(scale * 7 + 1, scale * 9 + 2, 3), dtype=np.uint8)
    lr = bicubic_downscale_uint8(img, scale)
    ref = _ref_imresize(img, 1 / scale, quantize=True)
    assert lr.dtype == np.uint8
    np.testing.assert_array_equal(lr, ref.astype(np.uint8))


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_uint8_upscale_matches_reference_exactly(scale):
    rng = np.random.default_rng(10 + scale)
    img = rng.integers(0, 256, size=(7, 6, 3), dtype=np.uint8)
    sr = bicubic_upscale(img, scale)
    ref = _ref_imresize(img, scale, quantize=True)
    assert sr.shape == (7 * scale, 6 * scale, 3)
    np.testing.assert_array_equal(sr, ref.astype(np.uint8))


def test_uint8_without_intermediate_rounding_rounds_once():
    rng = np.random.default_rng(5)
    img = rng.integers(0, 256, size=(20, 24, 3), dtype=np.uint8)
    lr = bicubic_downscale_uint8(img, 4, quantize_intermediate=False)
    ref = _ref_imresize(img, 0.25)
    np.testing.assert_array_equal(lr, np.clip(np.floor(ref + 0.5), 0, 255).astype(np.uint8))


def test_dimension_order_smallest_scale_first():
    # The order only changes results when the intermediate is rounded (uint8). Width shrinks more
    # here, so MATLAB resizes W first, then H.
    rng = np.random.default_rng(1)
    img = rng.integers(0, 256, size=(15, 22), dtype=np.uint8)
    size = (12, 5)  # scales 0.8 (H) and 0.227 (W)
    ours = imresize(torch.from_numpy(img), size=size).numpy()
    matlab_order = _ref_imresize(img, size=size, quantize=True)
    other_order = _ref_imresize(img, size=size, quantize=True, order=[0, 1])
    assert not np.array_equal(matlab_order, other_order)  # the test can tell the orders apart
    np.testing.assert_array_equal(ours, matlab_order.astype(np.uint8))
    # Equal scales: rows (H) first, MATLAB's stable sort.
    img2 = rng.integers(0, 256, size=(13, 15), dtype=np.uint8)
    np.testing.assert_array_equal(
        imresize(torch.from_numpy(img2), 1 / 3).numpy(),
        _ref_imresize(img2, 1 / 3, quantize=True, order=[0, 1]),
    )


def test_uint8_rounds_half_away_from_zero():
    # A single row, upscaled x2: the H pass is exact (all taps fold onto the one row, weight 1),
    # the W pass has weights in multiples of 1/128, so results are exact and many end in .5.
    rng = np.random.default_rng(2)
    row = rng.integers(0, 256, size=(1, 600), dtype=np.uint8)
    exact = imresize(torch.from_numpy(row).to(torch.float64), 2)[0].numpy()
    assert np.sum(exact - np.floor(exact) == 0.5) > 3  # there are ties
    got = imresize(torch.from_numpy(row), 2)[0].numpy()
    np.testing.assert_array_equal(got, np.clip(np.floor(exact + 0.5), 0, 255))  # .5 rounds up; saturated


def test_round_half_away():
    x = torch.tensor([0.5, 1.5, 2.5, -0.5, -1.5, 0.49999999999999994, 2.4, -2.6, 254.5], dtype=torch.float64)
    np.testing.assert_array_equal(round_half_away(x).numpy(), [1, 2, 3, -1, -2, 0, 2, -3, 255])


# --------------------------------------------------------------------------------------------
# Properties.


@pytest.mark.parametrize("scale", SCALES)
def test_constant_image_stays_constant(scale):
    x = torch.full((2, 3, 11, 9), 0.3, dtype=torch.float64)
    y = imresize(x, scale)
    torch.testing.assert_close(y, torch.full_like(y, 0.3), rtol=0, atol=1e-14)
    u8 = np.full((11, 9, 3), 77, dtype=np.uint8)
    out = bicubic_upscale(u8, scale) if scale > 1 else bicubic_downscale_uint8(u8, round(1 / scale))
    assert np.all(out == 77)


@pytest.mark.parametrize("scale", SCALES)
def test_float32_agrees_with_float64(scale):
    x = torch.rand(2, 3, 19, 23, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    y64 = imresize(x, scale)
    y32 = imresize(x.float(), scale)
    assert y32.dtype == torch.float32
    assert (y32.double() - y64).abs().max().item() <= 1e-5


@pytest.mark.parametrize("scale", [1 / 3, 2])
def test_batched_equals_per_image(scale):
    x = torch.rand(3, 2, 14, 10, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    y = imresize(x, scale)
    for i in range(3):
        torch.testing.assert_close(y[i], imresize(x[i], scale), rtol=0, atol=0)
        torch.testing.assert_close(y[i, 1], imresize(x[i, 1], scale), rtol=0, atol=0)


def test_strided_input_and_identity():
    x = torch.rand(10, 12, 3, dtype=torch.float64).permute(2, 0, 1)  # non-contiguous (C, H, W)
    torch.testing.assert_close(imresize(x, 0.5), imresize(x.contiguous(), 0.5), rtol=0, atol=0)
    y = imresize(x, 1)
    torch.testing.assert_close(y, x, rtol=0, atol=0)
    assert y.data_ptr() != x.data_ptr()


def test_autograd_path_matches_sparse_path():
    x = torch.rand(1, 2, 9, 11, dtype=torch.float64, generator=torch.Generator().manual_seed(6))
    plain = imresize(x, 1 / 3)
    xg = x.clone().requires_grad_(True)
    y = imresize(xg, 1 / 3)
    torch.testing.assert_close(y.detach(), plain, rtol=0, atol=1e-12)
    y.sum().backward()
    assert xg.grad is not None and xg.grad.shape == x.shape


def test_uint8_tensor_input_returns_uint8():
    rng = np.random.default_rng(7)
    img = rng.integers(0, 256, size=(16, 12, 3), dtype=np.uint8)
    t = torch.from_numpy(img).permute(2, 0, 1)
    out = imresize(t, 0.25)
    assert out.dtype == torch.uint8
    np.testing.assert_array_equal(out.permute(1, 2, 0).numpy(), bicubic_downscale_uint8(img, 4))


def test_grey_images_in_the_uint8_helpers():
    rng = np.random.default_rng(8)
    img = rng.integers(0, 256, size=(16, 12), dtype=np.uint8)
    lr = bicubic_downscale_uint8(img, 2)
    assert lr.shape == (8, 6)
    np.testing.assert_array_equal(lr, bicubic_downscale_uint8(img[:, :, None], 2)[:, :, 0])
    assert bicubic_upscale(lr, 2).shape == (16, 12)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    x = torch.rand(2, 3, 33, 47, dtype=torch.float64)
    for scale in (0.25, 3):
        torch.testing.assert_close(imresize(x.cuda(), scale).cpu(), imresize(x, scale), rtol=0, atol=1e-12)


def test_upscale_alias():
    from pclup.imresize import bicubic_upscale_uint8

    assert bicubic_upscale_uint8 is bicubic_upscale
