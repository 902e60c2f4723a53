"""PCL-SR's contrastive machinery: frequency-space samples, the embedding/discriminator net, the losses.

One training step uses it as (see ``pclup.training.pcl``)::

    pos, neg = sampler.sample(hr, lr, generator)                      # (P+1 | N+1, B, C, H, W)
    d_loss = dual_contrastive_d_loss(embed.logits(real), embed.logits(fake))   # discriminator step
    cl = contrastive_term(embed, sr, pos, neg, layers=(4,))            # L_CL for the SR step
"""

from __future__ import annotations

from .embedding import NUM_BLOCKS, PATCH_GRID, EmbeddingNet
from .loss import (
    ContrastiveForm,
    contrastive_term,
    cosine_contrastive_loss,
    dual_contrastive_d_loss,
    feature_similarity,
    infonce_loss,
)
from .sampler import FrequencySampler, gaussian_blur, gaussian_kernel1d, quantize, sharpen, upsample_bicubic
from .wavelet import high_bands

__all__ = [
    "NUM_BLOCKS",
    "PATCH_GRID",
    "ContrastiveForm",
    "EmbeddingNet",
    "FrequencySampler",
    "contrastive_term",
    "cosine_contrastive_loss",
    "dual_contrastive_d_loss",
    "feature_similarity",
    "gaussian_blur",
    "gaussian_kernel1d",
    "high_bands",
    "infonce_loss",
    "quantize",
    "sharpen",
    "upsample_bicubic",
]
