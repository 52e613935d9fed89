"""HP+EASN-deep: the learned lossy coder (two-level hyperprior with EASN non-linearities).

Data flow (names as in the code)::

    x --g_a--> y --*gain[q]--> y_g --round--> y_hat --*inv_gain[q]--> g_s --> x_hat
                          |                    ^
                          +--abs--h_a--> z --round--> z_hat --h_s--> scales (of y_g)
                                          factorized prior p(z_hat)

One network serves every quality level: a learned per-channel gain vector per level scales
the latent before rounding (coarse steps at low quality, fine at high), so quality levels
cost a few hundred numbers each instead of a whole model.

EASN(x) = x + f(x) * sigmoid(g(x)) with f a 5x5 convolution ("deep" variant) and
g = conv3x3 - LeakyReLU - conv3x3. Each analysis stage is
conv5x5s2(x) * sigmoid(conv3x3s2 - LeakyReLU - conv3x3)(x) + conv1x1s2(x), followed by EASN.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

# Lambdas of the training loss (rate + lambda * 255^2 * MSE) for each quality level, low to high.
# The two highest serve the blade of lossy ROI bundles, which must reach 40 dB and more.
LAMBDAS = (0.0018, 0.0035, 0.0067, 0.013, 0.025, 0.0483, 0.0932, 0.18)
SCALE_MIN = 0.11  # smallest Gaussian scale; below it a symbol costs (almost) nothing anyway
LIKELIHOOD_MIN = 1e-9  # floor on likelihoods in training, so a far-out value costs 30 bits, not inf


@dataclass(frozen=True)
class LossyConfig:
    n: int = 128          # filters of the transforms
    m: int = 192          # channels of the first latent y
    levels: int = len(LAMBDAS)


class EASN(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.f = nn.Conv2d(channels, channels, 5, padding=2)
        self.g = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(channels, channels, 3, padding=1),
        )

    def forward(self, x):
        return x + self.f(x) * torch.sigmoid(self.g(x))


class DownStage(nn.Module):
    """conv5x5s2(x) * sigmoid(gate(x)) + conv1x1s2(x)."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.main = nn.Conv2d(cin, cout, 5, stride=2, padding=2)
        self.gate = nn.Sequential(
            nn.Conv2d(cin, cout, 3, stride=2, padding=1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(cout, cout, 3, padding=1),
        )
        self.skip = nn.Conv2d(cin, cout, 1, stride=2)

    def forward(self, x):
        return self.main(x) * torch.sigmoid(self.gate(x)) + self.skip(x)


class UpStage(nn.Module):
    """The mirror of :class:`DownStage` with transposed convolutions (stride 2 in the kernel)."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.main = nn.ConvTranspose2d(cin, cout, 5, stride=2, padding=2, output_padding=1)
        self.gate = nn.Sequential(
            nn.ConvTranspose2d(cin, cout, 3, stride=2, padding=1, output_padding=1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(cout, cout, 3, padding=1),
        )
        self.skip = nn.ConvTranspose2d(cin, cout, 2, stride=2)

    def forward(self, x):
        return self.main(x) * torch.sigmoid(self.gate(x)) + self.skip(x)


class Analysis(nn.Module):
    """g_a: image in [0, 1] -> y at 1/16 resolution."""

    def __init__(self, n: int, m: int):
        super().__init__()
        self.layers = nn.Sequential(
            DownStage(3, n), EASN(n),
            DownStage(n, n), EASN(n),
            DownStage(n, n), EASN(n),
            nn.Conv2d(n, m, 5, stride=2, padding=2),
        )

    def forward(self, x):
        return self.layers(x)


class Synthesis(nn.Module):
    """g_s: y_hat -> image (not clamped; the coder rounds and clamps)."""

    def __init__(self, n: int, m: int):
        super().__init__()
        self.layers = nn.Sequential(
            UpStage(m, n), EASN(n),
            UpStage(n, n), EASN(n),
            UpStage(n, n), EASN(n),
            nn.ConvTranspose2d(n, 3, 5, stride=2, padding=2, output_padding=1),
        )

    def forward(self, y):
        return self.layers(y)


class HyperAnalysis(nn.Module):
    def __init__(self, n: int, m: int):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Conv2d(m, n, 3, padding=1), nn.LeakyReLU(0.2),
            nn.Conv2d(n, n, 5, stride=2, padding=2), nn.LeakyReLU(0.2),
            nn.Conv2d(n, n, 5, stride=2, padding=2),
        )

    def forward(self, y):
        return self.layers(torch.abs(y))


class HyperSynthesis(nn.Module):
    """h_s: z_hat -> log-scales of y_g. Runs in float64 on the CPU when coding (docs/design.md, rule 3)."""

    def __init__(self, n: int, m: int):
        super().__init__()
        self.layers = nn.Sequential(
            nn.ConvTranspose2d(n, n, 5, stride=2, padding=2, output_padding=1), nn.LeakyReLU(0.2),
            nn.ConvTranspose2d(n, n, 5, stride=2, padding=2, output_padding=1), nn.LeakyReLU(0.2),
            nn.Conv2d(n, m, 3, padding=1),
        )

    def forward(self, z_hat):
        return self.layers(z_hat)


class FactorizedPrior(nn.Module):
    """Balle et al. 2018's learned per-channel density for z (cumulative of a small monotone MLP)."""

    def __init__(self, channels: int, filters=(3, 3, 3), init_scale: float = 10.0):
        super().__init__()
        dims = (1,) + tuple(filters) + (1,)
        scale = init_scale ** (1 / (len(filters) + 1))
        self.matrices = nn.ParameterList()
        self.biases = nn.ParameterList()
        self.factors = nn.ParameterList()
        for i in range(len(filters) + 1):
            init = math.log(math.expm1(1 / scale / dims[i + 1]))
            self.matrices.append(nn.Parameter(torch.full((channels, dims[i + 1], dims[i]), init)))
            self.biases.append(nn.Parameter(torch.rand(channels, dims[i + 1], 1) - 0.5))
            if i < len(filters):
                self.factors.append(nn.Parameter(torch.zeros(channels, dims[i + 1], 1)))

    def logits_cdf(self, values: torch.Tensor) -> torch.Tensor:
        """``values`` (C, 1, K) -> logit of the cumulative at each value, (C, 1, K)."""
        x = values
        for i, (matrix, bias) in enumerate(zip(self.matrices, self.biases)):
            x = torch.matmul(F.softplus(matrix), x) + bias
            if i < len(self.factors):
                x = x + torch.tanh(self.factors[i]) * torch.tanh(x)
        return x

    def likelihood(self, z: torch.Tensor) -> torch.Tensor:
        """Probability mass of the unit interval around each value of z (B, C, H, W)."""
        b, c, h, w = z.shape
        values = z.permute(1, 0, 2, 3).reshape(c, 1, -1)
        lower = self.logits_cdf(values - 0.5)
        upper = self.logits_cdf(values + 0.5)
        # Evaluate on the side where the sigmoid difference is numerically stable.
        sign = -torch.sign(lower + upper).detach()
        mass = torch.abs(torch.sigmoid(sign * upper) - torch.sigmoid(sign * lower))
        return mass.reshape(c, b, h, w).permute(1, 0, 2, 3)


def gaussian_likelihood(values: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    """Mass of [v - 0.5, v + 0.5] under a zero-mean Gaussian of the given scales."""
    scales = scales.clamp_min(SCALE_MIN)
    upper = (0.5 - values.abs()) / scales
    lower = (-0.5 - values.abs()) / scales
    # Use the lower tail (erfc) so tiny masses far out are not lost to cancellation.
    return 0.5 * (torch.erfc(-upper / math.sqrt(2)) - torch.erfc(-lower / math.sqrt(2)))


class HyperpriorEASN(nn.Module):
    """The whole variable-rate model. ``forward`` is the training path (noise relaxation)."""

    def __init__(self, config: LossyConfig = LossyConfig()):
        super().__init__()
        self.config = config
        n, m = config.n, config.m
        self.g_a = Analysis(n, m)
        self.g_s = Synthesis(n, m)
        self.h_a = HyperAnalysis(n, m)
        self.h_s = HyperSynthesis(n, m)
        self.prior_z = FactorizedPrior(n)
        # Per-level gains, stored as logs; initialised so higher levels quantise more finely.
        init = torch.linspace(math.log(0.5), math.log(4.0), config.levels)
        self.log_gain = nn.Parameter(init[:, None].repeat(1, m).clone())
        self.log_inv_gain = nn.Parameter(-init[:, None].repeat(1, m).clone())

    def gains(self, level: torch.Tensor | int):
        """(gain, inverse gain) broadcastable to y, for an integer level or a batch of levels."""
        level = torch.as_tensor(level, device=self.log_gain.device)
        gain = torch.exp(self.log_gain[level])
        inv = torch.exp(self.log_inv_gain[level])
        if gain.dim() == 1:
            return gain[None, :, None, None], inv[None, :, None, None]
        return gain[:, :, None, None], inv[:, :, None, None]

    def forward(self, x: torch.Tensor, level: torch.Tensor):
        """x in [0, 1], level (B,) ints. Returns x_hat, likelihoods of y_g and z (float32)."""
        gain, inv_gain = self.gains(level)
        y_g = self.g_a(x).float() * gain
        z = self.h_a(y_g).float()
        z_noisy = z + torch.empty_like(z).uniform_(-0.5, 0.5)
        log_scales = self.h_s(z_noisy).float()
        y_noisy = y_g + torch.empty_like(y_g).uniform_(-0.5, 0.5)
        # The synthesis sees rounded latents (straight-through), as it will at test time.
        y_round = y_g + (torch.round(y_g) - y_g).detach()
        x_hat = self.g_s(y_round * inv_gain)
        # Rates in float32 even under bf16 autocast: the prior's matmuls would otherwise drop to bf16.
        with torch.autocast(x.device.type, enabled=False):
            y_likelihood = gaussian_likelihood(y_noisy, torch.exp(log_scales.clamp(max=8.0)))
            z_likelihood = self.prior_z.likelihood(z_noisy)
        return {
            "x_hat": x_hat,
            "y_likelihood": y_likelihood.clamp_min(LIKELIHOOD_MIN),
            "z_likelihood": z_likelihood.clamp_min(LIKELIHOOD_MIN),
        }
