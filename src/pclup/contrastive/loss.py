"""PCL-SR losses (docs/method.md). Pure functions of tensors: no optimiser, no ``backward``.

Similarity: for feature maps ``a, b`` of shape ``(C, h, w)``,
``s(a, b) = mean over the h*w pixels of cos(a[:, y, x], b[:, y, x])``, the cosine taken along channels:
one number per (image, sample).

Sample tensors are stacked on a leading axis: ``positives`` is ``(P, B, C, h, w)``, ``negatives``
``(N, B, C, h, w)`` for an anchor ``(B, C, h, w)``. For several embedding layers pass equal-length lists
(one entry per layer) instead of tensors.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .embedding import EmbeddingNet

__all__ = [
    "ContrastiveForm",
    "contrastive_term",
    "cosine_contrastive_loss",
    "dual_contrastive_d_loss",
    "feature_similarity",
    "infonce_loss",
]

ContrastiveForm = Literal["infonce", "cosine"]

Features = Tensor | Sequence[Tensor]


def feature_similarity(anchor: Tensor, samples: Tensor) -> Tensor:
    """Per-pixel cosine similarity along channels, averaged over space.

    Args:
        anchor: ``(B, C, h, w)``.
        samples: ``(S, B, C, h, w)``: sample ``j`` of image ``b`` is compared with ``anchor[b]``.

    Returns:
        ``(S, B)`` in ``[-1, 1]``. Zero feature vectors count as similarity 0 (``F.normalize``'s ``1e-12``
        floor, as the released code).
    """
    if samples.dim() != 5 or samples.shape[1:] != anchor.shape:
        raise ValueError(f"samples {tuple(samples.shape)} must be (S, *{tuple(anchor.shape)})")
    a = F.normalize(anchor, dim=1)
    s = F.normalize(samples, dim=2)
    pixels = anchor.shape[-2] * anchor.shape[-1]
    return torch.einsum("bchw,sbchw->sb", a, s) / pixels


def _layers(
    anchor: Features, positives: Features, negatives: Features
) -> list[tuple[Tensor, Tensor, Tensor]]:
    if isinstance(anchor, Tensor):
        if not (isinstance(positives, Tensor) and isinstance(negatives, Tensor)):
            raise TypeError("anchor, positives and negatives must be all tensors or all lists")
        return [(anchor, positives, negatives)]
    if isinstance(positives, Tensor) or isinstance(negatives, Tensor):
        raise TypeError("anchor, positives and negatives must be all tensors or all lists")
    if not (len(anchor) == len(positives) == len(negatives)) or not anchor:
        raise ValueError(
            f"need the same, non-zero number of layers, got {len(anchor)}, {len(positives)}, {len(negatives)}"
        )
    return list(zip(anchor, positives, negatives, strict=True))


def infonce_loss(anchor: Features, positives: Features, negatives: Features, tau: float = 1.0) -> Tensor:
    """InfoNCE with one positive at a time (docs/method.md; the released ``nce``):

    ``L = mean_layers mean_p mean_b -log( e^{s_p/tau} / (e^{s_p/tau} + sum_n e^{s_n/tau}) )``

    with ``s_p = s(anchor_b, positive_{p,b})``, ``s_n = s(anchor_b, negative_{n,b})``: each positive is
    its own cross-entropy term against all the negatives (not one term with the positives summed in the
    numerator). ``tau = 1`` is the released value.

    Args:
        anchor: ``(B, C, h, w)`` or a list of them (one per layer).
        positives: ``(P, B, C, h, w)`` or a list.
        negatives: ``(N, B, C, h, w)`` or a list.
        tau: temperature.

    Returns:
        Scalar; ``> 0``, and ``log(1 + N)`` when all similarities are equal.
    """
    terms = []
    for a, p, n in _layers(anchor, positives, negatives):
        s_pos = feature_similarity(a, p) / tau  # (P, B)
        s_neg = feature_similarity(a, n) / tau  # (N, B)
        # -log(e^p / (e^p + sum_n e^n)) = logaddexp(p, logsumexp(n)) - p: no (P, B, 1+N) logits tensor
        terms.append((torch.logaddexp(s_pos, torch.logsumexp(s_neg, dim=0)) - s_pos).mean())
    return torch.stack(terms).mean()


def _mean_similarities(anchor: Features, positives: Features, negatives: Features) -> tuple[Tensor, Tensor]:
    """``(sum_l mean_pb s_l(a, p), sum_l mean_nb s_l(a, n))``: the released ``pos_loss``, ``neg_loss``."""
    pos = neg = None
    for a, p, n in _layers(anchor, positives, negatives):
        sp, sn = feature_similarity(a, p).mean(), feature_similarity(a, n).mean()
        pos = sp if pos is None else pos + sp
        neg = sn if neg is None else neg + sn
    assert pos is not None and neg is not None
    return pos, neg


def cosine_contrastive_loss(anchor: Features, positives: Features, negatives: Features) -> Tensor:
    """The released default ``cosine`` form (docs/method.md, "Similarity and the two loss forms"):

    ``L = mean_n sum_l s_l(anchor, n) - mean_p sum_l s_l(anchor, p)`` (``s`` averaged over the batch).

    Layers are **summed** here, as the released ``cl_pos_l2`` (InfoNCE averages them); with one layer, as
    both released scripts, it makes no difference. No temperature, no ratio. Range ``[-2L, 2L]`` for ``L``
    layers; lower is better.
    """
    pos, neg = _mean_similarities(anchor, positives, negatives)
    return neg - pos


def dual_contrastive_d_loss(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """The discriminator's dual contrastive loss (docs/method.md; Yu et al., ICCV 2021).

    With ``r`` and ``f`` all real and all fake logits flattened (over batch and patches):

    ``L = mean_i -log(e^r_i / (e^r_i + sum_j e^f_j)) + mean_j -log(e^-f_j / (e^-f_j + sum_i e^-r_i))``

    Computed as ``logaddexp(r_i, logsumexp(f)) - r_i``: ``O(|r| + |f|)``, where the released code builds the
    ``|r| x (1 + |f|)`` logits matrix.

    Args:
        real_logits: any shape (e.g. ``(B, 16)``); the embedding net's output for real images.
        fake_logits: any shape; for fake images.

    Returns:
        Scalar.
    """
    r = real_logits.flatten()
    f = fake_logits.flatten()
    real_term = torch.logaddexp(r, torch.logsumexp(f, dim=0)) - r
    fake_term = torch.logaddexp(-f, torch.logsumexp(-r, dim=0)) + f
    return real_term.mean() + fake_term.mean()


_FORMS = {"infonce", "cosine"}


def _no_autocast(device_type: str) -> AbstractContextManager[object]:
    """Autocast off (the similarities are float32 even inside the trainer's bf16/fp16 region)."""
    available = getattr(torch.amp, "is_autocast_available", None)  # torch >= 2.4
    if available is not None and not available(device_type):
        return nullcontext()  # e.g. "meta": there is no autocast to switch off
    return torch.autocast(device_type, enabled=False)


def _swap_statistics(net: nn.Module) -> list[tuple[nn.BatchNorm2d, tuple[Any, Any, Any]]]:
    """Give every BatchNorm of ``net`` copies of its running statistics; returns the originals."""
    kept = []
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            stats = (m.running_mean, m.running_var, m.num_batches_tracked)
            kept.append((m, stats))
            m.running_mean, m.running_var, m.num_batches_tracked = (
                None if t is None else t.clone() for t in stats)
    return kept


def contrastive_term(
    embed: EmbeddingNet,
    sr: Tensor,
    pos: Tensor,
    neg: Tensor,
    *,
    layers: Sequence[int],
    loss: ContrastiveForm | str = "infonce",
    tau: float = 1.0,
    no_grad: bool = False,
    grouped: bool = False,
) -> Tensor:
    """L_CL of one batch: embeds ``sr``, ``pos`` and ``neg`` and compares them (step 4 of docs/method.md).

    * ``pos`` and ``neg`` are embedded in one forward without gradient (they do not depend on the SR net).
    * ``sr`` is embedded with gradient, so L_CL trains the SR network through the embedding net. The
      embedding net's parameters are treated as constants (their ``requires_grad`` is switched off for the
      call and restored), so ``backward`` neither fills their ``.grad`` nor spends time on them: they are
      trained only by the discriminator step.
    * ``no_grad=True`` is the released behaviour: everything under ``torch.no_grad()``, and the returned loss
      is detached, so adding it to L1 leaves the SR gradient unchanged (it can only be logged).
    * BatchNorm runs in **eval mode** (running statistics, which the discriminator steps keep current) and
      the module's mode is restored afterwards. Every image is thus embedded by the same fixed function,
      whatever the batch holds: the similarities of SR, positives and negatives are comparable (separate
      batch statistics per sample group, as the released code, divide out per channel the batch-wide loss
      of high-frequency energy that makes a blurred batch a negative), the gradient reaching ``sr`` has no
      cross-image terms through the statistics, and the positives and negatives need no autograd graph.
      One concatenated train-mode forward would share statistics too, but then ``pos``/``neg`` depend on
      ``sr`` through them, and the backward has to run through all ``(2K+3)B`` images instead of ``B``.
      A fresh network's running statistics (0 and 1) take some tens of discriminator steps (momentum 0.1)
      to settle; until then the term is a weak, but well-defined, signal.
    * Features are compared in float32, also under autocast.

    Args:
        embed: the embedding network (unwrapped, not DDP).
        sr: ``(B, C, H, W)``, the SR output in ``[0, 1]`` (with its graph).
        pos: ``(P, B, C, H, W)`` positives, ``neg``: ``(N, B, C, H, W)`` negatives (``FrequencySampler``).
        layers: embedding blocks to compare (the released scripts: ``(4,)``).
        loss: ``"infonce"`` or ``"cosine"``.
        tau: InfoNCE temperature (ignored by the cosine forms).
        no_grad: compute without gradient and return a detached loss (the released code's defect, for
            reproduction).
        grouped: the released code's BatchNorm grouping instead of the running statistics: training mode,
            the SR batch, each positive and each negative embedded in a call of its own with its own batch
            statistics (the running statistics are left as they were).

    Returns:
        Scalar float32 tensor.
    """
    if loss not in _FORMS:
        raise ValueError(f"loss '{loss}' is not one of {', '.join(sorted(_FORMS))}")
    if pos.dim() != 5 or neg.dim() != 5 or pos.shape[1:] != sr.shape or neg.shape[1:] != sr.shape:
        raise ValueError(f"pos {tuple(pos.shape)} and neg {tuple(neg.shape)} must be (K, *{tuple(sr.shape)})")
    n_pos = pos.shape[0]
    layers = tuple(layers)
    was_training = embed.training
    trainable = [p for p in embed.parameters() if p.requires_grad]
    # grouped: the forwards update copies of the running statistics, put back afterwards (restoring the
    # values in place would change tensors the backward still needs)
    kept = _swap_statistics(embed) if grouped else []
    embed.train(grouped)
    try:
        for p in trainable:
            p.requires_grad_(False)
        with torch.no_grad():
            if grouped:  # one batch per group: (P + N) calls, concatenated as one forward would return them
                per_group = [embed.features(g, layers) for g in (*pos, *neg)]
                ref = [torch.cat([g[i] for g in per_group]) for i in range(len(layers))]
            else:
                ref = embed.features(torch.cat((pos, neg)).flatten(0, 1), layers)
        with torch.set_grad_enabled(torch.is_grad_enabled() and not no_grad):
            anchor = embed.features(sr, layers)
    finally:
        for p in trainable:
            p.requires_grad_(True)
        for module, statistics in kept:
            module.running_mean, module.running_var, module.num_batches_tracked = statistics
        embed.train(was_training)

    anchors = [f.float() for f in anchor]
    refs = [f.float().reshape(-1, *sr.shape[:1], *f.shape[1:]) for f in ref]  # (P + N, B, C, h, w)
    positives = [f[:n_pos] for f in refs]
    negatives = [f[n_pos:] for f in refs]
    with _no_autocast(sr.device.type), torch.set_grad_enabled(torch.is_grad_enabled() and not no_grad):
        if loss == "infonce":
            value = infonce_loss(anchors, positives, negatives, tau=tau)
        else:
            value = cosine_contrastive_loss(anchors, positives, negatives)
    return value.detach() if no_grad else value
