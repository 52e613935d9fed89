"""Bit-swap's hierarchical VAE: L nested logistic latents over 64x64 RGB patches.

Data flow (L = 2, patch 64x64, ``C`` latent channels, ``w`` network width)::

    x (3,64,64) --q[0]--> z1 (C,32,32) --q[1]--> z2 (C,16,16)          inference  q(z_i | z_{i-1})
    x (3,64,64) <--px---- z1 (C,32,32) <--p[0]-- z2 (C,16,16) <-- p(zL) = standard logistic

- ``q[i]`` and ``p[i]`` give the mean and log-scale of a logistic per latent element; each level
  halves the resolution. Transforms of the top latent use 5x5 convolutions, the others 3x3.
- ``px`` gives, per sub-pixel, a logistic discretized over the 256 levels (the edge levels take
  the tails), with the means of G and B shifted linearly by the decoded R (and G) values, as in
  PixelCNN++: the coder therefore codes the R plane, then G, then B.
- ``pixel_stages`` = 1 is the reference: every sub-pixel depends on z1 only. With 4 or 7
  stages the pixels are coded as sub-lattices in the order of :data:`PIXEL_STAGES`; ``px`` maps
  z1 to features and ``px_stage[s]`` maps (features, the pixels already coded) to corrections
  of a mean and log-scale taken from the coded neighbours of each pixel of stage ``s``.
- Every network is a stem convolution, ``depth`` residual blocks (ELU, conv, ELU, conv, skip)
  and an output convolution; resolution changes by pixel (un)shuffle.

Training uses :meth:`BitswapVAE.forward` (the continuous ELBO, in nats per patch). Coding uses
the same networks through :meth:`posterior`, :meth:`prior` and :meth:`pixel_params`, which
:mod:`edge.codec.bitswap.coding` calls in float64 on the CPU and snaps to a fixed grid.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from edge.codec.bitswap.discretize import LATENT_LOG_SCALE_RANGE, PIXEL_LOG_SCALE_RANGE


@dataclass(frozen=True)
class BitswapConfig:
    levels: int = 2             # number of latent levels L
    latent_channels: int = 8
    width: int = 64             # channels inside every network
    depth: int = 2              # residual blocks per network
    patch_size: int = 64
    pixel_stages: int = 1       # 1: p(x|z1) factorized (the reference); 4, 7, 10: see PIXEL_STAGES

    def latent_shape(self, level: int) -> tuple[int, int, int]:
        """(C, H, W) of latent z_{level+1}; level 0 is z1 at half resolution."""
        side = self.patch_size >> (level + 1)
        return (self.latent_channels, side, side)

    def validate(self) -> None:
        if self.levels < 1 or self.patch_size % (1 << self.levels):
            raise ValueError(f"patch size {self.patch_size} not divisible by 2^{self.levels} levels")
        if self.pixel_stages not in PIXEL_STAGES:
            raise ValueError(f"pixel_stages must be one of {sorted(PIXEL_STAGES)}, not {self.pixel_stages}")
        if min(self.latent_channels, self.width, self.depth + 1) < 1:
            raise ValueError(f"bad Bit-swap config {self}")

    def to_dict(self) -> dict:
        return asdict(self)


class ResBlock(nn.Module):
    def __init__(self, width: int, kernel: int):
        super().__init__()
        self.conv1 = nn.Conv2d(width, width, kernel, padding=kernel // 2)
        self.conv2 = nn.Conv2d(width, width, kernel, padding=kernel // 2)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h + self.conv2(F.elu(self.conv1(F.elu(h))))


class Transform(nn.Module):
    """stem conv -> residual blocks -> ELU -> output conv, with an optional resolution change.

    ``scale`` = 0.5 halves the resolution (pixel unshuffle before the stem), 2 doubles it
    (pixel shuffle after the output conv), 1 keeps it.
    """

    def __init__(self, in_ch: int, out_ch: int, width: int, depth: int, kernel: int, scale: float):
        super().__init__()
        self.scale = scale
        stem_in = in_ch * 4 if scale == 0.5 else in_ch
        head_out = out_ch * 4 if scale == 2 else out_ch
        self.stem = nn.Conv2d(stem_in, width, kernel, padding=kernel // 2)
        self.blocks = nn.Sequential(*[ResBlock(width, kernel) for _ in range(depth)])
        self.head = nn.Conv2d(width, head_out, kernel, padding=kernel // 2)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        if self.scale == 0.5:
            h = F.pixel_unshuffle(h, 2)
        h = self.head(F.elu(self.blocks(self.stem(h))))
        if self.scale == 2:
            h = F.pixel_shuffle(h, 2)
        return h


def logistic_log_density(z: torch.Tensor, mean: torch.Tensor, log_scale: torch.Tensor) -> torch.Tensor:
    t = (z - mean) * torch.exp(-log_scale)
    return -t - 2.0 * F.softplus(-t) - log_scale


def discretized_logistic_log_prob(x_unit: torch.Tensor, mean: torch.Tensor, log_scale: torch.Tensor) -> torch.Tensor:
    """log P(x) of a logistic discretized to 256 levels of width 2/255 on [-1, 1]; edge levels take the tails."""
    inv_s = torch.exp(-log_scale)
    centered = x_unit - mean
    upper = (centered + 1.0 / 255.0) * inv_s
    lower = (centered - 1.0 / 255.0) * inv_s
    log_cdf_upper = -F.softplus(-upper)               # log sigmoid(upper)
    log_one_minus_cdf_lower = -F.softplus(lower)      # log(1 - sigmoid(lower))
    mass = torch.sigmoid(upper) - torch.sigmoid(lower)
    mid = centered * inv_s
    # log of the density at the bin centre times the bin width, for bins too thin for the difference
    log_mid = mid - log_scale - 2.0 * F.softplus(mid) + math.log(2.0 / 255.0)
    log_mass = torch.where(mass > 1e-5, torch.log(mass.clamp_min(1e-12)), log_mid)
    return torch.where(x_unit < -0.999, log_cdf_upper,
                       torch.where(x_unit > 0.999, log_one_minus_cdf_lower, log_mass))


def couple_means(mean: torch.Tensor, coeffs: torch.Tensor, x_unit: torch.Tensor) -> torch.Tensor:
    """Shift the G and B means by the (already coded) R and G residuals: channel coupling.

    ``mean`` (uncoupled), ``coeffs`` (tanh-squashed) and ``x_unit`` are (N, 3, H, W):
    G += a (R - mean_R), B += b (R - mean_R) + c (G - mean_G). The R mean does not depend on
    ``x_unit``, G only on R, B on R and G. :meth:`CanonicalNetworks.pixel_grid` computes the same.
    """
    residual_r = x_unit[:, 0:1] - mean[:, 0:1]
    residual_g = x_unit[:, 1:2] - mean[:, 1:2]
    mean_g = mean[:, 1:2] + coeffs[:, 0:1] * residual_r
    mean_b = mean[:, 2:3] + coeffs[:, 1:2] * residual_r + coeffs[:, 2:3] * residual_g
    return torch.cat([mean[:, 0:1], mean_g, mean_b], dim=1)


@dataclass(frozen=True)
class PixelStage:
    """Pixels ``(stride i + dy, stride j + dx)``, predicted from their coded neighbours at
    distance ``stride / 2``: ``"diagonal"``, ``"cross"`` (4-neighbours) or none."""

    stride: int
    dy: int
    dx: int
    neighbours: str = ""


_DIAGONAL = ((-1, -1), (-1, 1), (1, -1), (1, 1))
_CROSS = ((-1, 0), (1, 0), (0, -1), (0, 1))

# Coding orders of the pixels, coarse to fine. With 7 stages a quarter-resolution lattice is
# coded first (from z1 only), then the rest of the half-resolution lattice, then the other three
# quarters of the pixels, each pixel seeing its coded neighbours (up to all eight in the last
# stage); 10 stages start from an eighth-resolution lattice.
PIXEL_STAGES = {
    1: (PixelStage(1, 0, 0),),
    4: (PixelStage(2, 0, 0), PixelStage(2, 1, 1, "diagonal"), PixelStage(2, 0, 1, "cross"),
        PixelStage(2, 1, 0, "cross")),
    7: (PixelStage(4, 0, 0), PixelStage(4, 2, 2, "diagonal"), PixelStage(4, 0, 2, "cross"),
        PixelStage(4, 2, 0, "cross"), PixelStage(2, 1, 1, "diagonal"), PixelStage(2, 0, 1, "cross"),
        PixelStage(2, 1, 0, "cross")),
    10: (PixelStage(8, 0, 0), PixelStage(8, 4, 4, "diagonal"), PixelStage(8, 0, 4, "cross"),
         PixelStage(8, 4, 0, "cross"), PixelStage(4, 2, 2, "diagonal"), PixelStage(4, 0, 2, "cross"),
         PixelStage(4, 2, 0, "cross"), PixelStage(2, 1, 1, "diagonal"), PixelStage(2, 0, 1, "cross"),
         PixelStage(2, 1, 0, "cross")),
}


def stage_view(x, stage: int, stages: int):
    """The pixels coded in ``stage``: a strided view of ``x[..., H, W]`` (numpy or torch)."""
    plan = PIXEL_STAGES[stages][stage]
    return x[..., plan.dy::plan.stride, plan.dx::plan.stride]


def known_context(x_unit: torch.Tensor, stage: int, stages: int) -> torch.Tensor:
    """x with the pixels of ``stage`` and later zeroed, as 12 polyphase channels (N, 12, H/2, W/2)."""
    context = torch.zeros_like(x_unit)
    for plan in PIXEL_STAGES[stages][:stage]:
        context[..., plan.dy::plan.stride, plan.dx::plan.stride] = \
            x_unit[..., plan.dy::plan.stride, plan.dx::plan.stride]
    return F.pixel_unshuffle(context, 2)


def neighbour_stats(x_unit: torch.Tensor, stage: int, stages: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and mean absolute deviation of the coded neighbours of each pixel of ``stage``.

    Shaped like :func:`stage_view`; both are 0 for a stage without neighbours. The network
    predicts corrections to this mean and to a log-scale that follows the deviation, which it
    learns much faster than the prediction itself. Plain additions and divisions in a fixed
    order, so the result is exact on any processor.
    """
    plan = PIXEL_STAGES[stages][stage]
    target = stage_view(x_unit, stage, stages)
    if not plan.neighbours:
        return torch.zeros_like(target), torch.zeros_like(target)
    n, c, h, w = x_unit.shape
    known = x_unit.new_zeros((n, 1, h, w))
    values = torch.zeros_like(x_unit)
    for earlier in PIXEL_STAGES[stages][:stage]:
        known[..., earlier.dy::earlier.stride, earlier.dx::earlier.stride] = 1.0
        values[..., earlier.dy::earlier.stride, earlier.dx::earlier.stride] = \
            x_unit[..., earlier.dy::earlier.stride, earlier.dx::earlier.stride]
    step = plan.stride // 2
    values, known = F.pad(values, (step,) * 4), F.pad(known, (step,) * 4)
    rows, cols = target.shape[-2:]
    neighbours, weights = [], []
    for oy, ox in _DIAGONAL if plan.neighbours == "diagonal" else _CROSS:
        top, left = step + plan.dy + oy * step, step + plan.dx + ox * step
        neighbours.append(values[..., top::plan.stride, left::plan.stride][..., :rows, :cols])
        weights.append(known[..., top::plan.stride, left::plan.stride][..., :rows, :cols])
    count = (weights[0] + weights[1] + weights[2] + weights[3]).clamp_min(1.0)
    mean = (neighbours[0] + neighbours[1] + neighbours[2] + neighbours[3]) / count
    deviation = sum(((v - mean).abs() * k for v, k in zip(neighbours, weights)), torch.zeros_like(mean)) / count
    return mean, deviation


class BitswapVAE(nn.Module):
    def __init__(self, config: BitswapConfig = BitswapConfig()):
        super().__init__()
        config.validate()
        self.config = config
        c, w, d, levels = config.latent_channels, config.width, config.depth, config.levels
        kernel = [5 if level == levels - 1 else 3 for level in range(levels)]
        # q[0]: x -> z1; q[i]: z_i -> z_{i+1}. Outputs mean and log-scale.
        self.q = nn.ModuleList(
            Transform(3 if level == 0 else c, 2 * c, w, d, kernel[level], 0.5) for level in range(levels)
        )
        # p[i]: z_{i+2} -> z_{i+1} (for i < L-1); the top latent has the fixed standard logistic prior.
        self.p = nn.ModuleList(
            Transform(c, 2 * c, w, d, kernel[level + 1], 2) for level in range(levels - 1)
        )
        # px: z1 -> per sub-pixel mean, log-scale and the three coupling coefficients (1 stage),
        # or z1 -> features that px_stage[s] turns into those of sub-lattice s (4 stages).
        if config.pixel_stages == 1:
            self.px = Transform(c, 9, w, d, kernel[0], 2)
        else:
            self.px = Transform(c, w, w, d, kernel[0], 1)
            self.px_stage = nn.ModuleList(Transform(w + 12, 9, w, 0, 3, 1) for _ in range(config.pixel_stages))
        # Start from pixel scales of about 10 levels rather than 127 (an almost flat distribution)
        # where no neighbour gives a scale, and from G and B following the R residual.
        with torch.no_grad():
            shuffled = config.pixel_stages == 1
            heads = [self.px.head] if shuffled else [t.head for t in self.px_stage]
            for head, plan in zip(heads, PIXEL_STAGES[config.pixel_stages]):
                if plan.neighbours:
                    head.weight.mul_(0.01)    # start as the neighbour predictor itself
                self._init_bias(head, range(3, 6), 0.0 if plan.neighbours else -2.5, shuffled)
                self._init_bias(head, range(6, 8), 0.85, shuffled)     # tanh(0.85) = 0.69

    @staticmethod
    def _init_bias(head: nn.Conv2d, channels: range, value: float, shuffled: bool) -> None:
        """Set the bias of some of the 9 pixel outputs (before any pixel shuffle)."""
        groups = 4 if shuffled else 1       # pixel_shuffle(2): output channel k comes from k*4 .. k*4+3
        for channel in channels:
            head.bias[channel * groups:(channel + 1) * groups] = value

    # --- distribution parameters (shared by training and coding) -------------------------------
    @staticmethod
    def _split_latent(h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, log_scale = h.chunk(2, dim=1)
        return mean, log_scale.clamp(*LATENT_LOG_SCALE_RANGE)

    def posterior(self, level: int, below: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """q(z_{level+1} | below): ``below`` is x in [-1, 1] for level 0, else z_level."""
        return self._split_latent(self.q[level](below))

    def prior(self, level: int, above: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """p(z_{level+1} | z_{level+2}); the top level ignores ``above`` (standard logistic)."""
        if level == self.config.levels - 1:
            shape = (above.shape[0] if above is not None else 1, *self.config.latent_shape(level))
            zeros = torch.zeros(shape, dtype=torch.get_default_dtype())
            return zeros, zeros
        return self._split_latent(self.p[level](above))

    def pixel_features(self, z1: torch.Tensor) -> torch.Tensor:
        return self.px(z1)

    def pixel_params(self, features: torch.Tensor, x_unit: torch.Tensor | None,
                     stage: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Uncoupled means, log-scales and tanh coupling coefficients of the pixels of ``stage``.

        ``features`` come from :meth:`pixel_features`; ``x_unit`` is the patch in [-1, 1], read
        only on the sub-lattices coded before ``stage`` (ignored with one stage). Each output is
        (N, 3, h, w) over the stage's pixels.
        """
        stages = self.config.pixel_stages
        if stages == 1:
            h = features
        else:
            context = known_context(x_unit, stage, stages).to(features.dtype)
            h = self.px_stage[stage](torch.cat([features, context], 1))
            plan = PIXEL_STAGES[stages][stage]
            if plan.stride > 2:        # the head predicts every 2x2 cell; keep the cells of this stage
                h = h[..., plan.dy // 2::plan.stride // 2, plan.dx // 2::plan.stride // 2]
            h = h.to(x_unit.dtype)     # out of autocast: the mean needs more than bfloat16's 8 bits
            if plan.neighbours:
                base_mean, deviation = neighbour_stats(x_unit, stage, stages)
                base_log_scale = torch.log(0.5 * deviation + 1.0 / 127.5)
                h = torch.cat([h[:, 0:3] + base_mean, h[:, 3:6] + base_log_scale, h[:, 6:9]], 1)
        mean, log_scale, coeffs = h[:, 0:3], h[:, 3:6], h[:, 6:9]
        return mean, log_scale.clamp(*PIXEL_LOG_SCALE_RANGE), torch.tanh(coeffs)

    # --- training --------------------------------------------------------------------------------
    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """Negative ELBO terms per patch in nats: ``x`` = -log p(x|z1), ``z{i}`` = log q - log p.

        ``x`` is uint8 (N, 3, P, P). Networks may run under autocast; every log-likelihood is
        computed in float32.
        """
        x_unit = x.float() / 127.5 - 1.0
        terms: dict[str, torch.Tensor] = {}
        below = x_unit
        samples, log_q = [], []
        for level in range(self.config.levels):
            mean, log_scale = (t.float() for t in self.posterior(level, below))
            u = torch.rand(mean.shape, generator=generator).clamp(1e-6, 1 - 1e-6)
            z = mean + torch.exp(log_scale) * (torch.log(u) - torch.log1p(-u))
            samples.append(z)
            log_q.append(logistic_log_density(z, mean, log_scale).flatten(1).sum(1))
            below = z
        for level in range(self.config.levels):
            above = samples[level + 1] if level + 1 < self.config.levels else None
            if above is None:
                log_p = logistic_log_density(samples[level], torch.zeros(()), torch.zeros(()))
            else:
                mean, log_scale = (t.float() for t in self.prior(level, above))
                log_p = logistic_log_density(samples[level], mean, log_scale)
            terms[f"z{level + 1}"] = log_q[level] - log_p.flatten(1).sum(1)
        features = self.pixel_features(samples[0])
        stages = self.config.pixel_stages
        terms["x"] = torch.zeros(x.shape[0])
        for stage in range(stages):
            mean, log_scale, coeffs = (t.float() for t in self.pixel_params(features, x_unit, stage))
            x_stage = stage_view(x_unit, stage, stages)
            mean = couple_means(mean, coeffs, x_stage)
            log_prob = discretized_logistic_log_prob(x_stage, mean, log_scale)
            terms["x"] = terms["x"] - log_prob.flatten(1).sum(1)
        return terms


def bits_per_subpixel(terms: dict[str, torch.Tensor], patch_size: int) -> torch.Tensor:
    """Mean negative ELBO over the batch, in bits per sub-pixel."""
    total = sum(terms.values())
    return total.mean() / (3 * patch_size * patch_size * math.log(2.0))
