"""Which networks an accelerated backend may run, with the tensor names and shapes they use.

Design rule 3 decides the list: only transforms whose outputs are transmitted exactly (after
rounding, the decoder gets whatever the encoder sent) or only approximate the picture::

    lossy coder   g_a   x (N, 3, p, p) in [0, 1]     -> y (N, M, p/16, p/16)   (the coder multiplies
                                                                                 by the level's gain)
                  h_a   y_hat (N, M, p/16, p/16)     -> z (N, Nz, p/64, p/64)  (rounded, transmitted)
                  g_s   y (N, M, p/16, p/16)         -> x_hat (N, 3, p, p)     (y = y_hat * inverse gain)
    segmentation  unet  image (N, 3, H, W) normalised -> logit (N, 1, H, W)

Never h_s, the priors or Bit-swap's networks: they shape probability tables and run on the
canonical float64 CPU path. The per-level gains stay outside the graphs (one float32 multiply
in the coder), so one engine serves every quality level.

A :class:`NetworkGroup` is the set of networks of one model (a lossy coder, a U-Net), each with
its module, its I/O names and the shapes engines are built for, and a fingerprint of its
weights that names every artifact made from it.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

import torch
from torch import nn

# The only network names a backend is ever asked to run.
LOSSY_NETWORKS = ("g_a", "h_a", "g_s")
SEGMENTATION_NETWORKS = ("unet",)
ACCELERATED = LOSSY_NETWORKS + SEGMENTATION_NETWORKS


@dataclass(frozen=True)
class NetworkSpec:
    """One network: single input, single output, the batch (and for the U-Net H, W) dynamic."""

    name: str
    input: str
    output: str
    min_shape: tuple[int, ...]     # TensorRT optimisation profile: smallest input
    opt_shape: tuple[int, ...]     # the shape the pipeline uses most (kernels are tuned for it)
    max_shape: tuple[int, ...]     # largest input
    dynamic: tuple[int, ...]       # input dims that may vary (0 = batch)
    shape_tag: str                 # short tag of the fixed dims, part of artifact names

    def describe(self) -> dict:
        return {"input": self.input, "output": self.output, "min_shape": list(self.min_shape),
                "opt_shape": list(self.opt_shape), "max_shape": list(self.max_shape),
                "dynamic": list(self.dynamic), "shape_tag": self.shape_tag}


@dataclass(frozen=True)
class Network:
    spec: NetworkSpec
    module: nn.Module
    fingerprint: str               # SHA-256 of the module's parameters and buffers (float32)


@dataclass(frozen=True)
class NetworkGroup:
    """The accelerated networks of one model, e.g. ``hp-easn`` (g_a, h_a, g_s) or ``bunetv2``."""

    model: str
    kind: str                      # "lossy" or "segmentation"
    networks: dict[str, Network]

    def names(self) -> tuple[str, ...]:
        return tuple(self.networks)


def weights_fingerprint(module: nn.Module) -> str:
    """SHA-256 over every parameter and buffer of ``module`` (names, shapes, float32 values).

    It names ONNX files and engines, so an artifact built from other weights is never used.
    """
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        value = tensor.detach().cpu()
        value = value.float() if value.is_floating_point() else value
        digest.update(f"{name}:{value.dtype}:{tuple(value.shape)};".encode())
        digest.update(value.contiguous().numpy().tobytes())
    return digest.hexdigest()


def lossy_group(coder, batch: int | None = None) -> NetworkGroup:
    """g_a, h_a and g_s of a :class:`edge.codec.lossy.coder.LossyCoder` at its patch size and batch."""
    batch = batch or coder.batch
    model, p = coder.model, coder.patch_size
    m = model.config.m
    tag = f"p{p}"

    def spec(name, input_name, output_name, channels, size):
        shape = (channels, size, size)
        return NetworkSpec(name, input_name, output_name, (1, *shape), (batch, *shape), (batch, *shape),
                           (0,), tag)

    specs = [spec("g_a", "x", "y", 3, p), spec("h_a", "y_hat", "z", m, p // 16),
             spec("g_s", "y", "x_hat", m, p // 16)]
    networks = {}
    for item in specs:
        module = getattr(model, item.name).eval()
        networks[item.name] = Network(item, module, weights_fingerprint(module))
    return NetworkGroup(coder.model_name, "lossy", networks)


def segmentation_group(model: nn.Module, model_name: str = "bunetv2", flips: int = 4) -> NetworkGroup:
    """BU-Netv2 at the pipeline's working size: long side ``input_long_side``, 4 flips per photo.

    Height and width are multiples of the network's ``size_multiple`` (16, or 32 for
    ``bunetv2-lite0``), as :func:`edge.segment.unet.network_size` gives them."""
    multiple = model.size_multiple
    long_side = model.config.input_long_side
    typical_short = max(multiple, int(round(0.75 * long_side / multiple)) * multiple)
    spec = NetworkSpec("unet", "image", "logit",
                       (1, 3, multiple, multiple),
                       (flips, 3, typical_short, long_side),
                       (flips, 3, long_side, long_side),
                       (0, 2, 3), f"L{long_side}")
    model = model.eval()
    return NetworkGroup(model_name, "segmentation", {"unet": Network(spec, model, weights_fingerprint(model))})


def example_input(spec: NetworkSpec, seed: int = 0) -> torch.Tensor:
    """A random input of the profile's opt shape (export tracing, tests, benchmarks)."""
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(spec.opt_shape, generator=generator)
