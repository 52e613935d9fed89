"""Training losses of BU-Netv2: class-balanced focal loss plus a relaxed dense-CRF loss.

Focal loss (Lin et al. 2017) with per-class weights: blade pixels are rare (a few per cent of a
far view), so each class is weighted by a softened inverse of its pixel frequency.

Relaxed dense-CRF loss (Tang et al. 2018, "On regularized losses for weakly-supervised CNN
segmentation"): the Potts model relaxed to probabilities S in [0, 1],

    L_crf = sum_k sum_ij W_ij S_i^k (1 - S_j^k)  =  2 sum_ij W_ij S_i (1 - S_j)   (two classes),

with the bilateral Gaussian kernel over position p and colour I,

    W_ij = exp(-|p_i - p_j|^2 / (2 sigma_xy^2) - |I_i - I_j|^2 / (2 sigma_rgb^2)).

It penalises neighbouring pixels of similar colour that get different labels, pulling the
predicted edge onto the colour edge. A dense evaluation costs (H W)^2, so we approximate:

1. **Downsampling**: the loss is computed on the probabilities and the image average-pooled by
   ``downsample`` (4 by default); sigma_xy is given in pixels of that coarse grid.
2. **Truncated spatial window**: W_ij is kept only for |p_i - p_j|_inf <= ``radius`` (the
   position Gaussian is below exp(-4.5) = 1 % past 3 sigma, so ``radius = 3 sigma_xy`` drops
   little). Within the window the colour term is exact, so the kernel stays bilateral; the sum
   is computed with shifted copies of the maps, O(H W (2 radius + 1)^2) time, no (H W)^2 memory.

The loss is divided by the number of coarse pixels, so its scale does not depend on image size.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def class_weights(blade_fraction: float, power: float = 0.5) -> tuple[float, float]:
    """(background, blade) weights proportional to frequency**-power, averaging 1 over pixels."""
    fraction = min(max(blade_fraction, 1e-3), 1 - 1e-3)
    w_background = (1 - fraction) ** -power
    w_blade = fraction ** -power
    mean = (1 - fraction) * w_background + fraction * w_blade
    return w_background / mean, w_blade / mean


def focal_loss(logits: torch.Tensor, target: torch.Tensor, weights: tuple[float, float],
               gamma: float = 2.0) -> torch.Tensor:
    """Class-weighted binary focal loss, mean over pixels. ``target`` holds 0/1 floats."""
    logits = logits.float()
    log_p = F.logsigmoid(logits)          # log P(blade)
    log_not_p = F.logsigmoid(-logits)     # log P(background)
    log_p_true = torch.where(target > 0.5, log_p, log_not_p)
    p_true = log_p_true.exp()
    weight = torch.where(target > 0.5, weights[1], weights[0])
    return (-weight * (1 - p_true) ** gamma * log_p_true).mean()


def dense_crf_loss(probability: torch.Tensor, image: torch.Tensor, sigma_xy: float = 2.0,
                   sigma_rgb: float = 0.1, downsample: int = 4, radius: int | None = None) -> torch.Tensor:
    """Relaxed Potts dense-CRF loss with the windowed bilateral approximation (module doc).

    ``probability``: (N, 1, H, W) blade probabilities; ``image``: (N, 3, H, W) RGB in [0, 1].
    """
    if radius is None:
        radius = max(1, int(round(3 * sigma_xy)))
    s = F.avg_pool2d(probability.float(), downsample) if downsample > 1 else probability.float()
    rgb = F.avg_pool2d(image.float(), downsample) if downsample > 1 else image.float()
    n, _, h, w = s.shape
    s_pad = F.pad(s, (radius, radius, radius, radius))
    rgb_pad = F.pad(rgb, (radius, radius, radius, radius))
    # Padded pixels must not count: a validity map zeroes their kernel weight.
    valid_pad = F.pad(torch.ones_like(s), (radius, radius, radius, radius))
    total = s.new_zeros(())
    for dy in range(-radius, radius + 1):
        for dx in range(-radius, radius + 1):
            if dy == 0 and dx == 0:
                continue
            window = (slice(None), slice(None), slice(radius + dy, radius + dy + h),
                      slice(radius + dx, radius + dx + w))
            colour_distance = ((rgb - rgb_pad[window]) ** 2).sum(1, keepdim=True)
            kernel = torch.exp(-(dy * dy + dx * dx) / (2 * sigma_xy ** 2)
                               - colour_distance / (2 * sigma_rgb ** 2)) * valid_pad[window]
            total = total + (kernel * s * (1 - s_pad[window])).sum()
    return 2 * total / (n * h * w)
