"""The PCL half of a training step: the embedding network (the discriminator), its optimiser, the sampler.

A PCL run makes one :class:`PCL`; an L1 run makes none. Each step (docs/method.md, "One training step"):

1. :meth:`PCL.sample`: positives (HR and sharpened HR) and hard negatives (the bicubic-upsampled LR and
   blurred HR) from the frequency sampler, seeded by (seed, step);
2. :meth:`PCL.discriminator_step`: one Adam step of the embedding network on the dual contrastive GAN loss
   (real: HR and the positives; fake: ``sr.detach()`` and the blurred negatives);
3. :meth:`PCL.contrastive_term`: L_CL through the embedding network, frozen for this step, so that its
   gradient reaches the SR network (``no_grad``: computed without gradient, the released code's behaviour);
4. :meth:`PCL.sr_gradient`: the gradient on the SR output, ``grad L1 + lambda * grad L_CL``, with the
   measured ratio ``|grad L_CL| / |grad L1|``; with ``grad_ratio`` set, lambda follows it (smoothed) so that
   the contrastive gradient is ``grad_ratio`` times L1's.

Before the first step, :meth:`PCL.warmup_step` can train the embedding network alone (the SR network
frozen, on its outputs) on batches of its own random stream.
"""

from __future__ import annotations

import math
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
        degraded_negatives: the blurred negatives also get noise and JPEG (see
            :class:`~pclup.contrastive.FrequencySampler`): real-world negatives.
    """

    def __init__(
        self, cfg: LossConfig, *, seed: int, colours: int, lr: float, device: torch.device,
        channels_last: bool, degraded_negatives: bool = False,
    ) -> None:
        self.cfg, self.seed = cfg, seed
        with torch.random.fork_rng(devices=[]):  # the discriminator's init must not shift the SR run's RNG
            torch.manual_seed(seed + 1)
            self.net = EmbeddingNet(width=cfg.disc_width, in_channels=3 * colours)
        self.net.to(device)
        if channels_last and device.type != "mps":
            to_channels_last(self.net)
        self.opt = torch.optim.Adam(self.net.parameters(), lr=cfg.disc_lr or lr, betas=(0.9, 0.999))
        self.sampler = FrequencySampler(positives=cfg.positives, negatives=cfg.negatives,
                                        degraded=degraded_negatives)
        # what the discriminator step runs: both halves in one forward, so that DDP's wrapper (when
        # distributed) sees one forward per backward and averages the gradients over the processes
        self.disc: nn.Module = _RealFake(self.net, joint=cfg.d_batchnorm == "joint")
        self.dist = Distributed()
        self.warmup_done = 0  # embedding warm-up steps done (kept in checkpoints)
        self.ratio_avg: float | None = None  # smoothed |grad L_CL| / |grad L1| per unit lambda (auto lambda)
        self.weight = cfg.weight  # lambda of the latest step

    #: The smoothing of the measured gradient ratio for the automatic lambda: an exponential average with
    #: this decay (about the last three steps), enough to damp one batch's noise while following the
    #: ratio's drift as the discriminator learns (a ten-step average lagged it by 1.5-2x in fast runs).
    SMOOTHING = 0.7
    #: The largest lambda the automatic setting gives (a vanishing contrastive gradient would ask for more).
    MAX_WEIGHT = 100.0

    def state(self) -> dict[str, float | int | None]:
        """What a checkpoint keeps besides the networks: the warm-up's progress, the automatic lambda."""
        return {"warmup_done": self.warmup_done, "ratio_avg": self.ratio_avg, "weight": self.weight}

    def load_state(self, state: dict[str, float | int | None]) -> None:
        self.warmup_done = int(state.get("warmup_done") or 0)
        ratio = state.get("ratio_avg")
        self.ratio_avg = None if ratio is None else float(ratio)
        self.weight = float(state.get("weight", self.cfg.weight) or 0.0)

    def distribute(self, dist: Distributed, device: torch.device) -> None:
        """Train the discriminator over ``dist``'s processes: its gradients averaged by DDP (which also
        starts every process from rank 0's weights), its BatchNorm statistics rank 0's after each step, so
        that the frozen embedding network of L_CL is the same on every process."""
        self.dist = dist
        self.disc = dist.wrap(_RealFake(self.net, joint=self.cfg.d_batchnorm == "joint"), device)

    def sample(self, hr: Tensor, lr: Tensor, step: int, stream: str = "sampler") -> tuple[Tensor, Tensor]:
        """Positives and negatives of this step's batch, ``(P+1, B, C, H, W)`` and ``(N+1, B, C, H, W)``."""
        return self.sampler.sample(hr, lr.float(), step_generator(self.seed, step, stream))

    def chance(self, batch: int) -> float:
        """The discriminator loss of a network that cannot tell real from fake (all logits equal):
        ``ln(1 + |fake logits|) + ln(1 + |real logits|)`` for a batch of ``batch`` images."""
        from ..contrastive.embedding import PATCH_GRID

        n_pos, n_neg = self.sampler.counts
        patches = batch * PATCH_GRID * PATCH_GRID
        return math.log(1 + (1 + n_neg) * patches) + math.log(1 + (1 + n_pos) * patches)

    def warmup_step(self, model: nn.Module, lr: Tensor, hr: Tensor, step: int, autocast: Autocast) -> Tensor:
        """One step of the embedding network alone: the SR network frozen (no gradient), its output the
        fake, positives and negatives from the warm-up's own random stream. Returns the D loss."""
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad(), autocast():
                sr = model(lr).float()
        finally:
            model.train(was_training)
        pos, neg = self.sample(hr, lr, step, stream="warmup-sampler")
        d_loss = self.discriminator_step(hr, sr, pos, neg, autocast)
        self.warmup_done = step + 1
        return d_loss.detach()

    def discriminator_step(
        self, hr: Tensor, sr: Tensor, pos: Tensor, neg: Tensor, autocast: Autocast
    ) -> Tensor:
        """One step of the embedding network: real = HR and its sharpened copies, fake = SR and the blurred
        HR. Returns its loss."""
        self.disc.train()
        with autocast():  # one copy of the images: real (HR, sharpened HR), then fake (SR, blurred HR)
            real, fake = self.disc(torch.cat([hr, *pos[1:], sr.detach(), *neg[1:]]), hr.shape[0] * len(pos))
        d_loss = dual_contrastive_d_loss(real.float(), fake.float())
        self.opt.zero_grad(set_to_none=True)
        d_loss.backward()
        self.opt.step()
        self.dist.broadcast_buffers(self.net)  # each process updated the running statistics with its batch
        return d_loss

    def sr_gradient(self, sr: Tensor, l1: Tensor, cl: Tensor) -> tuple[Tensor, float, float]:
        """The gradient on the SR output of ``L1 + lambda * L_CL``, lambda and the measured ratio
        ``|lambda * grad L_CL| / |grad L1|`` (norms over the whole batch, averaged over the processes).

        With ``grad_ratio`` > 0 (the automatic lambda), lambda is ``grad_ratio / m``, where ``m`` is an
        average of ``|grad L_CL| / |grad L1|`` over about the last three steps (this one included), at most
        :attr:`MAX_WEIGHT`; otherwise lambda is the configured weight."""
        g_l1, = torch.autograd.grad(l1, sr, retain_graph=True)
        g_cl, = torch.autograd.grad(cl, sr)  # frees the embedding's graph; the SR network's is kept
        n_l1 = float(g_l1.norm())
        raw = self.dist.mean(float(g_cl.norm()) / n_l1) if n_l1 > 0 else 0.0
        if self.cfg.grad_ratio > 0:
            a = self.SMOOTHING
            self.ratio_avg = raw if self.ratio_avg is None else a * self.ratio_avg + (1 - a) * raw
            self.weight = min(self.cfg.grad_ratio / self.ratio_avg, self.MAX_WEIGHT) if self.ratio_avg > 0 \
                else self.MAX_WEIGHT
        else:
            self.weight = self.cfg.weight
        return g_l1.add(g_cl, alpha=self.weight), self.weight, self.weight * raw

    def contrastive_term(self, sr: Tensor, pos: Tensor, neg: Tensor, autocast: Autocast) -> Tensor:
        """L_CL of the SR batch, through the embedding network frozen for this step."""
        cfg = self.cfg
        with autocast():
            return contrastive_term(self.net, sr, pos, neg, layers=cfg.layers, loss=cfg.form, tau=cfg.tau,
                                    no_grad=cfg.no_grad, grouped=cfg.cl_batchnorm == "grouped").float()


class _RealFake(nn.Module):
    """The discriminator's forward of the real and the fake images as one module call: ``joint``, one
    BatchNorm batch of both; otherwise two batches (the released code's grouping). Normalising the real and
    the fake batch apart divides out, per channel, the difference in high-frequency energy that tells a
    blurred image from a sharp one: with it the discriminator's loss stays at chance (docs/method.md)."""

    def __init__(self, net: EmbeddingNet, *, joint: bool = True) -> None:
        super().__init__()
        self.net, self.joint = net, joint

    def forward(self, images: Tensor, n_real: int) -> tuple[Tensor, Tensor]:
        """Logits of ``images[:n_real]`` (real) and of ``images[n_real:]`` (fake)."""
        if not self.joint:
            return self.net.logits(images[:n_real]), self.net.logits(images[n_real:])
        logits = self.net.logits(images)
        return logits[:n_real], logits[n_real:]
