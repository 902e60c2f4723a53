"""The PCL half of a training step: the embedding network (the discriminator), its optimiser, the sampler.

A PCL run makes one :class:`PCL`; an L1 run makes none. Each step (docs/method.md, "One training step"):

1. :meth:`PCL.sample`: positives (HR and sharpened HR) and hard negatives (the bicubic-upsampled LR and
   blurred HR) from the frequency sampler, seeded by (seed, step);
2. :meth:`PCL.discriminator_step`: one Adam step of the embedding network on the dual contrastive GAN loss
   (real: HR and the positives; fake: ``sr.detach()`` and the blurred negatives);
3. :meth:`PCL.contrastive_term`: L_CL through the embedding network, frozen for this step, so that its
   gradient reaches the SR network (``no_grad``: computed without gradient, the released code's behaviour).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager

import torch
from torch import Tensor, nn

from ..config import LossConfig
from ..contrastive import EmbeddingNet, FrequencySampler, contrastive_term, dual_contrastive_d_loss
from ..data import step_generator
from ..device import to_channels_last
from .distributed import Distributed

Autocast = Callable[[], AbstractContextManager[object]]


class PCL:
    """The contrastive machinery of one run, on ``device``.

    Args:
        cfg: the loss settings.
        seed: the run's seed (the embedding network is initialised from ``seed + 1``, the samples of a step
            from ``(seed, step)``).
        colours: the SR network's colour channels.
        lr: the SR network's learning rate, the discriminator's unless ``cfg.disc_lr`` is set.
        channels_last: run the embedding network channels-last (1.2-1.4x faster on CPUs).
    """

    def __init__(
        self, cfg: LossConfig, *, seed: int, colours: int, lr: float, device: torch.device,
        channels_last: bool,
    ) -> None:
        self.cfg, self.seed = cfg, seed
        with torch.random.fork_rng(devices=[]):  # the discriminator's init must not shift the SR run's RNG
            torch.manual_seed(seed + 1)
            self.net = EmbeddingNet(width=cfg.disc_width, in_channels=3 * colours)
        self.net.to(device)
        if channels_last and device.type != "mps":
            to_channels_last(self.net)
        self.opt = torch.optim.Adam(self.net.parameters(), lr=cfg.disc_lr or lr, betas=(0.9, 0.999))
        self.sampler = FrequencySampler(positives=cfg.positives, negatives=cfg.negatives)
        # what the discriminator step runs: both halves in one forward, so that DDP's wrapper (when
        # distributed) sees one forward per backward and averages the gradients over the processes
        self.disc: nn.Module = _RealFake(self.net)
        self.dist = Distributed()

    def distribute(self, dist: Distributed, device: torch.device) -> None:
        """Train the discriminator over ``dist``'s processes: its gradients averaged by DDP (which also
        starts every process from rank 0's weights), its BatchNorm statistics rank 0's after each step, so
        that the frozen embedding network of L_CL is the same on every process."""
        self.dist = dist
        self.disc = dist.wrap(_RealFake(self.net), device)

    def sample(self, hr: Tensor, lr: Tensor, step: int) -> tuple[Tensor, Tensor]:
        """Positives and negatives of this step's batch, ``(P+1, B, C, H, W)`` and ``(N+1, B, C, H, W)``."""
        return self.sampler.sample(hr, lr.float(), step_generator(self.seed, step, "sampler"))

    def discriminator_step(
        self, hr: Tensor, sr: Tensor, pos: Tensor, neg: Tensor, autocast: Autocast
    ) -> Tensor:
        """One step of the embedding network: real = HR and its sharpened copies, fake = SR and the blurred
        HR. Returns its loss."""
        self.disc.train()
        with autocast():
            real, fake = self.disc(torch.cat([hr, *pos[1:]]), torch.cat([sr.detach(), *neg[1:]]))
        d_loss = dual_contrastive_d_loss(real.float(), fake.float())
        self.opt.zero_grad(set_to_none=True)
        d_loss.backward()
        self.opt.step()
        self.dist.broadcast_buffers(self.net)  # each process updated the running statistics with its batch
        return d_loss

    def contrastive_term(self, sr: Tensor, pos: Tensor, neg: Tensor, autocast: Autocast) -> Tensor:
        """L_CL of the SR batch, through the embedding network frozen for this step."""
        cfg = self.cfg
        with autocast():
            return contrastive_term(self.net, sr, pos, neg, layers=cfg.layers, loss=cfg.form, tau=cfg.tau,
                                    no_grad=cfg.no_grad).float()


class _RealFake(nn.Module):
    """The discriminator's two forwards (real, fake: separate BatchNorm batches) as one module call."""

    def __init__(self, net: EmbeddingNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, real: Tensor, fake: Tensor) -> tuple[Tensor, Tensor]:
        return self.net.logits(real), self.net.logits(fake)
