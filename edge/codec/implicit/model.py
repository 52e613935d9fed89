"""Implicit bit allocation: a mask-conditioned lossy codec (and its explicit baseline).

After "ROI-based Deep Image Compression with Implicit Bit Allocation". The blade mask is side
information on both sides (it travels in the bundle as the polygon mask code), so the encoder
and both decoders may look at it; no bit is spent telling the decoder where the ROI is.

Data flow of the implicit model (names as in the code)::

    x, mask --g_a (MGFE after stages 1-3)--> y --*gain[q]--> y_g --round--> y_hat
    y_hat, mask --g_s_fg (MGFE, RAA on mask)-----> x_f
    y_hat, mask --g_s_bg (MGFE, RAA on 1 - mask)-> x_b      x_hat = x_f * mask + x_b * (1 - mask)

    y_g --h_a--> z --round--> z_hat --h_s--> hyper (mean, log-scale features at y's grid)
    checkerboard context: anchors (even i+j) use hyper alone; non-anchors add ctx(anchors of y_hat)
    entropy_params(hyper, ctx) -> mean, log-scale of each y latent (float64 on the CPU when coding)

MGFE = RAA + FSCA:

* RAA (region-adaptive attention): m = sigmoid(conv3x3(LReLU(conv3x3(mask)))), per channel;
  f' = f * m + f (encoder, foreground decoder) or f * (1 - m) + f (background decoder).
* FSCA (frequency-spatial collaborative attention): a frequency branch (rfft2, softmax channel
  weights from the average amplitude applied to the phase, two 1x1 convolutions on the phase,
  irfft2 with the original amplitude; always float32) and a spatial branch (a residual
  bottleneck block and a multi-scale residual block of 3x3 and 11x11 kernels with a sigmoid
  attention); concatenated, fused by a 1x1 convolution, squeeze-excitation channel attention,
  residual. The 11x11 kernel is depthwise here, and FSCA runs at 1/4 and 1/8 resolution only
  (RAA at 1/2 too): at 1/2 resolution it cost about 70 % of a training step on this CPU.

Explicit baseline (``explicit=True``): the same backbone without RAA and with one decoder; the
mask is a hard gate on the latents instead: in latent cells that touch no blade pixel only the
first ``bg_channels`` channels are kept (and coded), in blade cells all ``m``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from edge.codec.lossy.model import LIKELIHOOD_MIN, SCALE_MIN, FactorizedPrior

# Lambdas of rate + lambda * 255^2 * distortion, one per quality level (low to high).
LAMBDAS = (0.004, 0.008, 0.016, 0.032)


@dataclass(frozen=True)
class ImplicitConfig:
    n: int = 64              # filters of the transforms
    m: int = 96              # channels of the latent y (1/16 resolution)
    nz: int = 64             # channels of the hyper-latent z (1/64 resolution)
    levels: int = len(LAMBDAS)
    explicit: bool = False   # the explicit baseline (hard latent gate, one decoder)
    bg_channels: int = 16    # explicit baseline: latent channels kept in background cells


# -- building blocks ---------------------------------------------------------------------------
def _down(cin: int, cout: int) -> nn.Module:
    return nn.Conv2d(cin, cout, 5, stride=2, padding=2)


def _up(cin: int, cout: int) -> nn.Module:
    return nn.ConvTranspose2d(cin, cout, 5, stride=2, padding=2, output_padding=1)


class RAA(nn.Module):
    """Region-adaptive attention: per-channel weights from the mask, added on top of f."""

    def __init__(self, channels: int, hidden: int = 16):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(1, hidden, 3, padding=1), nn.LeakyReLU(0.2),
                                 nn.Conv2d(hidden, channels, 3, padding=1))

    def forward(self, f: torch.Tensor, mask: torch.Tensor, invert: bool = False) -> torch.Tensor:
        m = torch.sigmoid(self.net(mask))
        return f * (1 - m if invert else m) + f


class FrequencyBranch(nn.Module):
    """FFT; amplitude-guided softmax channel weights on the phase; two 1x1 convs; inverse FFT."""

    def __init__(self, channels: int):
        super().__init__()
        self.phase = nn.Sequential(nn.Conv2d(channels, channels, 1), nn.LeakyReLU(0.2),
                                   nn.Conv2d(channels, channels, 1))

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        # FFTs stay in float32: bf16 has no FFT on the CPU and would lose the phase anyway.
        with torch.autocast(f.device.type, enabled=False):
            f = f.float()
            h, w = f.shape[-2:]
            spectrum = torch.fft.rfft2(f, norm="ortho")
            amplitude, phase = spectrum.abs(), spectrum.angle()
            weights = torch.softmax(amplitude.mean(dim=(2, 3), keepdim=True), dim=1) * f.shape[1]
            phase = self.phase(phase * weights)
            return torch.fft.irfft2(torch.polar(amplitude, phase), s=(h, w), norm="ortho")


class SpatialBranch(nn.Module):
    """A residual bottleneck block, then a multi-scale (3x3 and 11x11) residual block with sigmoid attention."""

    def __init__(self, channels: int):
        super().__init__()
        half = channels // 2
        self.bottleneck = nn.Sequential(nn.Conv2d(channels, half, 1), nn.LeakyReLU(0.2),
                                        nn.Conv2d(half, half, 3, padding=1), nn.LeakyReLU(0.2),
                                        nn.Conv2d(half, channels, 1))
        self.small = nn.Conv2d(channels, channels, 3, padding=1)
        self.large = nn.Conv2d(channels, channels, 11, padding=5, groups=channels)
        self.attention = nn.Conv2d(2 * channels, channels, 1)

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        f = f + self.bottleneck(f)
        both = torch.cat([F.leaky_relu(self.small(f), 0.2), F.leaky_relu(self.large(f), 0.2)], dim=1)
        return f + f * torch.sigmoid(self.attention(both))


class FSCA(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.frequency = FrequencyBranch(channels)
        self.spatial = SpatialBranch(channels)
        self.fuse = nn.Conv2d(2 * channels, channels, 1)
        self.squeeze = nn.Sequential(nn.Conv2d(channels, max(channels // 4, 4), 1), nn.LeakyReLU(0.2),
                                     nn.Conv2d(max(channels // 4, 4), channels, 1))

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        fused = self.fuse(torch.cat([self.frequency(f).to(f.dtype), self.spatial(f)], dim=1))
        fused = fused * torch.sigmoid(self.squeeze(fused.mean(dim=(2, 3), keepdim=True)))
        return f + fused


class MGFE(nn.Module):
    """Mask-guided feature enhancement: RAA (skipped in the explicit baseline) then FSCA (if ``fsca``)."""

    def __init__(self, channels: int, use_mask: bool, invert: bool = False, fsca: bool = True):
        super().__init__()
        self.raa = RAA(channels) if use_mask else None
        self.invert = invert
        self.fsca = FSCA(channels) if fsca else None

    def forward(self, f: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if self.raa is not None:
            f = self.raa(f, _resize_mask(mask, f), self.invert)
        return f if self.fsca is None else self.fsca(f)


def _resize_mask(mask: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Mask (B, 1, H, W) in [0, 1] averaged down to the resolution of ``like``."""
    if mask.shape[-2:] == like.shape[-2:]:
        return mask.to(like.dtype)
    return F.adaptive_avg_pool2d(mask.float(), like.shape[-2:]).to(like.dtype)


# -- transforms --------------------------------------------------------------------------------
class Analysis(nn.Module):
    """g_a: (x, mask) -> y at 1/16 resolution; MGFE after each of the first three stages (RAA only at 1/2)."""

    def __init__(self, n: int, m: int, use_mask: bool):
        super().__init__()
        self.stages = nn.ModuleList([_down(3, n), _down(n, n), _down(n, n)])
        self.mgfe = nn.ModuleList([MGFE(n, use_mask, fsca=i > 0) for i in range(3)])
        self.last = _down(n, m)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        f = x
        for stage, mgfe in zip(self.stages, self.mgfe):
            f = mgfe(F.leaky_relu(stage(f), 0.2), mask)
        return self.last(f)


class Synthesis(nn.Module):
    """g_s: (y_hat, mask) -> image (unclamped); MGFE after each of the first three stages (RAA only at 1/2)."""

    def __init__(self, n: int, m: int, use_mask: bool, invert: bool):
        super().__init__()
        self.stages = nn.ModuleList([_up(m, n), _up(n, n), _up(n, n)])
        self.mgfe = nn.ModuleList([MGFE(n, use_mask, invert, fsca=i < 2) for i in range(3)])
        self.last = _up(n, 3)

    def forward(self, y: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        f = y
        for stage, mgfe in zip(self.stages, self.mgfe):
            f = mgfe(F.leaky_relu(stage(f), 0.2), mask)
        return self.last(f)


class HyperAnalysis(nn.Module):
    def __init__(self, m: int, nz: int):
        super().__init__()
        self.layers = nn.Sequential(nn.Conv2d(m, nz, 3, padding=1), nn.LeakyReLU(0.2),
                                    _down(nz, nz), nn.LeakyReLU(0.2), _down(nz, nz))

    def forward(self, y):
        return self.layers(y)


class HyperSynthesis(nn.Module):
    """h_s: z_hat -> 2m hyper features at y's grid. float64 on the CPU when coding (docs/design.md, rule 3)."""

    def __init__(self, m: int, nz: int):
        super().__init__()
        self.layers = nn.Sequential(_up(nz, nz), nn.LeakyReLU(0.2), _up(nz, nz), nn.LeakyReLU(0.2),
                                    nn.Conv2d(nz, 2 * m, 3, padding=1))

    def forward(self, z_hat):
        return self.layers(z_hat)


def anchor_mask(height: int, width: int, dtype=torch.float32, device=None) -> torch.Tensor:
    """(1, 1, h, w): 1 on anchors (even row + column), 0 on the others (the checkerboard)."""
    rows = torch.arange(height, device=device)[:, None]
    cols = torch.arange(width, device=device)[None, :]
    return ((rows + cols) % 2 == 0).to(dtype)[None, None]


class CheckerboardContext(nn.Module):
    """Parallel context (He et al. 2021): non-anchors see the decoded anchors through a 5x5 conv.

    Anchors are decoded first from the hyperprior alone, so each half decodes in one parallel pass.
    """

    def __init__(self, m: int):
        super().__init__()
        self.conv = nn.Conv2d(m, 2 * m, 5, padding=2)
        self.params = nn.Sequential(nn.Conv2d(4 * m, 3 * m, 1), nn.LeakyReLU(0.2),
                                    nn.Conv2d(3 * m, 2 * m, 1))

    def forward(self, hyper: torch.Tensor, y_hat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(hyper features, quantised y) -> (mean, log-scale) of every latent."""
        anchors = anchor_mask(*y_hat.shape[-2:], dtype=y_hat.dtype, device=y_hat.device)
        ctx = self.conv(y_hat * anchors) * (1 - anchors)   # anchors get no context
        mean, log_scale = self.params(torch.cat([hyper, ctx], dim=1)).chunk(2, dim=1)
        return mean, log_scale


def gaussian_likelihood(values: torch.Tensor, mean: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    """Mass of [v - 0.5, v + 0.5] under a Gaussian of the given mean and scales."""
    scales = scales.clamp_min(SCALE_MIN)
    centred = (values - mean).abs()
    upper = (0.5 - centred) / scales
    lower = (-0.5 - centred) / scales
    return 0.5 * (torch.erfc(-upper / math.sqrt(2)) - torch.erfc(-lower / math.sqrt(2)))


def latent_gate(mask: torch.Tensor, y_shape: tuple, bg_channels: int) -> torch.Tensor:
    """Explicit baseline: (B, m, h, w) gate, 1 for kept latents (all channels in blade cells)."""
    blade = F.adaptive_max_pool2d(mask.float(), y_shape[-2:]) > 0    # cell touches a blade pixel
    channels = torch.arange(y_shape[1], device=mask.device)[None, :, None, None]
    return (blade | (channels < bg_channels)).float()


# -- the model ---------------------------------------------------------------------------------
class ImplicitROI(nn.Module):
    """The variable-rate mask-conditioned model. ``forward`` is the training path."""

    def __init__(self, config: ImplicitConfig = ImplicitConfig()):
        super().__init__()
        self.config = config
        n, m, nz = config.n, config.m, config.nz
        use_mask = not config.explicit
        self.g_a = Analysis(n, m, use_mask)
        self.g_s_fg = Synthesis(n, m, use_mask, invert=False)
        self.g_s_bg = Synthesis(n, m, use_mask, invert=True) if use_mask else None
        self.h_a = HyperAnalysis(m, nz)
        self.h_s = HyperSynthesis(m, nz)
        self.context = CheckerboardContext(m)
        self.prior_z = FactorizedPrior(nz)
        init = torch.linspace(math.log(0.5), math.log(2.0), config.levels)
        self.log_gain = nn.Parameter(init[:, None].repeat(1, m).clone())
        self.log_inv_gain = nn.Parameter(-init[:, None].repeat(1, m).clone())

    def gains(self, level):
        """(gain, inverse gain) broadcastable to y, for an int level or a (B,) tensor of levels."""
        level = torch.as_tensor(level, device=self.log_gain.device)
        gain, inv = torch.exp(self.log_gain[level]), torch.exp(self.log_inv_gain[level])
        if gain.dim() == 1:
            return gain[None, :, None, None], inv[None, :, None, None]
        return gain[:, :, None, None], inv[:, :, None, None]

    def gate(self, mask: torch.Tensor, y_shape: tuple) -> torch.Tensor | None:
        """The explicit baseline's latent gate; None for the implicit model (every latent is coded)."""
        if not self.config.explicit:
            return None
        return latent_gate(mask, y_shape, self.config.bg_channels)

    def synthesize(self, y: torch.Tensor, mask: torch.Tensor) -> dict:
        """Dequantised latents + mask -> x_hat (and the two decoders' outputs)."""
        x_f = self.g_s_fg(y, mask)
        if self.g_s_bg is None:
            return {"x_hat": x_f, "x_f": x_f, "x_b": x_f}
        x_b = self.g_s_bg(y, mask)
        m = mask.to(x_f.dtype)
        return {"x_hat": x_f * m + x_b * (1 - m), "x_f": x_f, "x_b": x_b}

    def forward(self, x: torch.Tensor, mask: torch.Tensor, level: torch.Tensor) -> dict:
        """x in [0, 1] (B, 3, H, W), mask in {0, 1} (B, 1, H, W), level (B,) ints.

        Returns x_hat, x_f, x_b and per-image bits (float32) of y and z.
        """
        gain, inv_gain = self.gains(level)
        y_g = self.g_a(x, mask).float() * gain
        gate = self.gate(mask, y_g.shape)
        if gate is not None:
            y_g = y_g * gate
        z = self.h_a(y_g).float()
        z_noisy = z + torch.empty_like(z).uniform_(-0.5, 0.5)
        hyper = self.h_s(z_noisy).float()
        # Straight-through rounding: the context and the decoders see what they will at test time.
        y_round = y_g + (torch.round(y_g) - y_g).detach()
        y_noisy = y_g + torch.empty_like(y_g).uniform_(-0.5, 0.5)
        out = self.synthesize(y_round * inv_gain, mask)
        with torch.autocast(x.device.type, enabled=False):
            mean, log_scale = self.context(hyper, y_round)
            y_like = gaussian_likelihood(y_noisy, mean.float(), torch.exp(log_scale.float().clamp(max=8.0)))
            y_bits = -torch.log2(y_like.clamp_min(LIKELIHOOD_MIN))
            if gate is not None:
                y_bits = y_bits * gate
            z_bits = -torch.log2(self.prior_z.likelihood(z_noisy).clamp_min(LIKELIHOOD_MIN))
        out["y_bits"] = y_bits.sum(dim=(1, 2, 3))
        out["z_bits"] = z_bits.sum(dim=(1, 2, 3))
        return out
