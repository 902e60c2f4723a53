"""The embedding network "inherited from the discriminator" (docs/method.md, "The embedding network").

The SRGAN discriminator of EDSR-PyTorch on the Haar high bands of its input: 8 blocks
``conv3x3(bias=False) -> BatchNorm -> LeakyReLU(0.2)`` with channels ``(w, w, 2w, 2w, 4w, 4w, 8w, 8w)`` and
strides ``(1, 2, 1, 2, 1, 2, 1, 2)``, then a patch head ``AdaptiveAvgPool2d(4) -> conv1x1(8w -> 1)``.

State-dict keys: ``blocks.{i}.0`` (conv) and ``blocks.{i}.1`` (BatchNorm) for block ``i``, ``head.1`` (the 1x1
conv). The released ``Discriminator`` names them ``features.{2i}.0``, ``features.{2i}.1`` and ``classifier.1``
(same shapes), should one of its ``loss_d.pt`` files need converting.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from .wavelet import high_bands

__all__ = ["NUM_BLOCKS", "PATCH_GRID", "EmbeddingNet"]

NUM_BLOCKS = 8
"""Feature blocks; valid ``layers`` are ``0 .. NUM_BLOCKS - 1``."""

PATCH_GRID = 4
"""The patch head pools to ``PATCH_GRID x PATCH_GRID``: 16 logits per image."""

NEGATIVE_SLOPE = 0.2

_WIDTH_MULTIPLIERS = (1, 1, 2, 2, 4, 4, 8, 8)
_STRIDES = (1, 2, 1, 2, 1, 2, 1, 2)


class EmbeddingNet(nn.Module):
    """Discriminator and embedding network of PCL-SR.

    Args:
        in_channels: channels of the network's input, the high bands: ``3 x`` image channels (9 for RGB).
        width: ``w``, channels of the first block (64 as SRGAN/the released code: 4.69 M parameters; 16-32
            suit compact SR models, the cost falls as ``w**2``).

    Images go in as ``(B, in_channels // 3, H, W)``, float, ``[0, 1]``; :func:`high_bands` is applied inside.

    BatchNorm: the module is an ordinary ``nn.Module``; ``train()`` uses batch statistics (the discriminator
    step), ``eval()`` the running ones. :func:`pclup.contrastive.contrastive_term` runs it in eval mode (see
    there why).
    """

    def __init__(self, *, in_channels: int = 9, width: int = 64) -> None:
        super().__init__()
        if in_channels < 3 or in_channels % 3:
            raise ValueError(
                f"in_channels counts 3 high bands per image channel (9 for RGB), got {in_channels}"
            )
        if width < 1:
            raise ValueError(f"width must be positive, got {width}")
        self.in_channels = in_channels
        self.width = width
        blocks: list[nn.Module] = []
        channels = in_channels
        for mult, stride in zip(_WIDTH_MULTIPLIERS, _STRIDES, strict=True):
            out = width * mult
            blocks.append(
                nn.Sequential(
                    nn.Conv2d(channels, out, 3, stride=stride, padding=1, bias=False),
                    nn.BatchNorm2d(out),
                    # in place: BN's backward does not need its output, and a block's output is only read
                    # by the next conv, so the tensors that features() returns are never overwritten
                    nn.LeakyReLU(NEGATIVE_SLOPE, inplace=True),
                )
            )
            channels = out
        self.blocks = nn.ModuleList(blocks)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(PATCH_GRID), nn.Conv2d(channels, 1, kernel_size=1))

    def _check(self, x: Tensor) -> None:
        if x.dim() != 4 or 3 * x.shape[1] != self.in_channels:
            raise ValueError(
                f"EmbeddingNet(in_channels={self.in_channels}) takes (B, {self.in_channels // 3}, H, W) "
                f"images, got {tuple(x.shape)}"
            )

    def features(self, x: Tensor, layers: Sequence[int] = (4,)) -> list[Tensor]:
        """Post-LeakyReLU outputs of the listed blocks (the released ``--before_relu`` features, which its
        in-place LeakyReLU turns into post-activation ones).

        Args:
            x: ``(B, C, H, W)`` images, ``[0, 1]``.
            layers: block indices in ``0..7``, any order; the forward stops after the deepest one.

        Returns:
            One tensor per entry of ``layers``, in that order: ``(B, w * mult, h, w)``, block ``i`` at
            ``1 / 2**(1 + (i + 1) // 2)`` of the image size (``ceil`` at odd sizes): 96, 48, 48, 24, 24, 12,
            12, 6 for a 192-px image.
        """
        if not layers:
            raise ValueError("layers is empty")
        if any(not 0 <= i < NUM_BLOCKS for i in layers):
            raise ValueError(f"layers must lie in 0..{NUM_BLOCKS - 1}, got {tuple(layers)}")
        self._check(x)
        wanted = set(layers)
        deepest = max(layers)
        found: dict[int, Tensor] = {}
        h = high_bands(x)
        for i in range(deepest + 1):
            h = self.blocks[i](h)
            if i in wanted:
                found[i] = h
        return [found[i] for i in layers]

    def forward(self, x: Tensor) -> Tensor:
        """Patch logits, ``(B, 16)``: see :meth:`logits`."""
        self._check(x)
        h = high_bands(x)
        for block in self.blocks:
            h = block(h)
        out: Tensor = self.head(h)
        return out.flatten(1)

    def logits(self, x: Tensor) -> Tensor:
        """Discriminator output: ``(B, 16)`` patch logits (4x4, row-major) for ``(B, C, H, W)`` images."""
        out: Tensor = self(x)
        return out
