"""BU-Netv2: a small U-Net that maps an RGB photo to a blade probability map.

Four encoder blocks and four decoder blocks joined by skip connections::

    x -> enc1 -> enc2 -> enc3 -> enc4 -> bottom -> dec4 -> dec3 -> dec2 -> dec1 -> head -> logit
          |_______|_______|_______|______________^_______^_______^_______^

Each block is two 3x3 convolutions with batch norm and ReLU; the encoder halves the resolution
between blocks (max pooling), the decoder doubles it (bilinear upsampling) and concatenates the
encoder features of the same resolution. With ``base_width=16`` the network has about 1.9 M
parameters, small enough to run on a CPU. The network never sees the full-resolution photo:
:func:`predict_probability` downscales the photo so its long side is ``input_long_side`` pixels
(the paper downscales too) and returns the probability map at that size; callers upscale it.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from edge.errors import ModelError
from edge.registry import float_state, fp16_weights, write_weights_file

# Normalisation of the RGB input (ImageNet statistics; any fixed values would do).
RGB_MEAN = (0.485, 0.456, 0.406)
RGB_STD = (0.229, 0.224, 0.225)
# Height and width must be multiples of this (four poolings).
SIZE_MULTIPLE = 16


@dataclass(frozen=True)
class UNetConfig:
    base_width: int = 16
    input_long_side: int = 512
    threshold: float = 0.5  # tau_BU: threshold on the flip-averaged probability
    min_confidence: float = 0.0  # edge.segment.confidence: below it a photo is unsure (0: never)
    use_forest: bool = True      # the pipeline's per-surface forest vote (off where it lowers F1)


def _conv_block(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
        nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class BUNetV2(nn.Module):
    """U-Net returning one blade logit per pixel, shape (N, 1, H, W) for input (N, 3, H, W)."""

    size_multiple = SIZE_MULTIPLE   # input height and width are multiples of this

    def __init__(self, config: UNetConfig = UNetConfig()):
        super().__init__()
        self.config = config
        w = config.base_width
        widths = [w, 2 * w, 4 * w, 8 * w]
        self.encoders = nn.ModuleList()
        in_channels = 3
        for width in widths:
            self.encoders.append(_conv_block(in_channels, width))
            in_channels = width
        self.bottom = _conv_block(widths[-1], 16 * w)
        self.decoders = nn.ModuleList()
        in_channels = 16 * w
        for width in reversed(widths):
            self.decoders.append(_conv_block(in_channels + width, width))
            in_channels = width
        self.head = nn.Conv2d(w, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for encoder in self.encoders:
            x = encoder(x)
            skips.append(x)
            x = F.max_pool2d(x, 2)
        x = self.bottom(x)
        for decoder, skip in zip(self.decoders, reversed(skips)):
            x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            x = decoder(torch.cat([x, skip], dim=1))
        return self.head(x)


def network_size(height: int, width: int, long_side: int, multiple: int = SIZE_MULTIPLE) -> tuple[int, int]:
    """(height, width) the network sees: long side ``long_side``, both multiples of ``multiple``."""
    scale = long_side / max(height, width)
    def snap(n: float) -> int:
        return max(multiple, int(round(n / multiple)) * multiple)
    return snap(height * scale), snap(width * scale)


def image_to_tensor(rgb: np.ndarray) -> torch.Tensor:
    """uint8 RGB (H, W, 3) -> normalised float tensor (3, H, W)."""
    x = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1).float() / 255.0
    mean = torch.tensor(RGB_MEAN).view(3, 1, 1)
    std = torch.tensor(RGB_STD).view(3, 1, 1)
    return (x - mean) / std


# The four flips of test-time augmentation, as the tensor dims they reverse.
FLIPS: tuple[tuple[int, ...], ...] = ((), (-1,), (-2,), (-2, -1))


@torch.no_grad()
def predict_probability(model: BUNetV2, rgb: np.ndarray, flips: bool = True) -> np.ndarray:
    """Blade probability (float32, network size) of one uint8 RGB photo.

    With ``flips`` the probability is the average over the four flips (none, horizontal,
    vertical, both), each flipped back before averaging.
    """
    height, width = rgb.shape[:2]
    net_h, net_w = network_size(height, width, model.config.input_long_side,
                                getattr(model, "size_multiple", SIZE_MULTIPLE))
    small = cv2.resize(rgb, (net_w, net_h), interpolation=cv2.INTER_AREA)
    x = image_to_tensor(small).unsqueeze(0)
    model.eval()
    batch = torch.cat([torch.flip(x, dims) if dims else x for dims in (FLIPS if flips else ((),))])
    probabilities = torch.sigmoid(model(batch).float())
    unflipped = [torch.flip(p, dims) if dims else p for p, dims in zip(probabilities, FLIPS)]
    return torch.stack(unflipped).mean(0)[0].numpy().astype(np.float32)


def save_weights(model: BUNetV2, path: Path) -> None:
    """Write the weights as a small fp16 state dict plus the config."""
    state = fp16_weights(model.state_dict())
    write_weights_file({"config": asdict(model.config), "state_dict": state}, path)


def load_weights(path: Path) -> BUNetV2:
    """Registry loader: a float32 model in eval mode from a file written by :func:`save_weights`
    (or by :func:`edge.segment.effnet.save_weights`, whose payload names its ``arch``)."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
        if isinstance(payload, dict) and payload.get("arch"):
            # Weights of another segmentation network (edge.segment.effnet) given by file name;
            # imported here because effnet imports this module (its blocks and normalisation).
            from edge.segment import effnet
            return effnet.model_from_payload(payload)      # refuses an arch it does not know
        model = BUNetV2(UNetConfig(**payload["config"]))
        model.load_state_dict(float_state(payload["state_dict"]))
    except (OSError, KeyError, TypeError, RuntimeError, ModelError) as error:
        raise ModelError(f"cannot load BU-Netv2 weights from {path}: {error}") from None
    return model.eval()
