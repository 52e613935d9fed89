"""Choosing the backend at run time, and attaching it to the lossy coder and the U-Net.

``auto`` takes the first that works, per model (all networks of a model on one backend):

1. TensorRT: ``tensorrt`` imports, PyTorch sees a GPU, and every network has a valid engine
   for this model, weights, TensorRT version, GPU and precision (see artifacts.py);
2. ONNX Runtime (TensorRT EP, CUDA EP or CPU): ``onnxruntime`` imports and every network has
   a valid ONNX file;
3. PyTorch (GPU if there is one, else CPU).

Naming a backend in the config (``runtime.backend``) forces it: if it cannot be used that is
an error at start-up, not a silent fallback. Whatever runs g_a, h_a, g_s and the U-Net, the
coder's h_s stays its float64 CPU copy (docs/design.md, rule 3).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from torch import nn

from edge.errors import ModelError
from edge.runtime.artifacts import (PRECISIONS, check_artifact, default_engines_folder, engine_path,
                                    expected_meta, onnx_path)
from edge.runtime.backends import Backend, OnnxRuntimeBackend, TorchBackend
from edge.runtime.networks import NetworkGroup, lossy_group, segmentation_group
from edge.runtime.onnx_export import onnx_expected
from edge.runtime.tensorrt import TensorRTBackend, current_target, tensorrt_problem

log = logging.getLogger(__name__)

BACKENDS = ("auto", "tensorrt", "onnxruntime", "torch")


@dataclass(frozen=True)
class RuntimeSettings:
    """The same fields as the config's ``runtime:`` section (edge.config.RuntimeConfig)."""

    backend: str = "auto"               # auto, tensorrt, onnxruntime or torch
    precision: str = "fp16"             # of the TensorRT engines to use
    engines_folder: Path | None = None  # default: engines/ of the checkout
    device: str = "auto"                # PyTorch backend: auto, cpu or cuda
    threads: int | None = None          # ONNX Runtime intra-op threads; default torch's

    def __post_init__(self):
        if self.backend not in BACKENDS:
            raise ModelError(f"unknown runtime backend {self.backend!r} (choose from {', '.join(BACKENDS)})")
        if self.precision not in PRECISIONS:
            raise ModelError(f"unknown precision {self.precision!r} (choose from {', '.join(PRECISIONS)})")

    @classmethod
    def of(cls, value) -> "RuntimeSettings":
        """Settings from None (defaults), settings, or the config's runtime section."""
        if value is None or isinstance(value, cls):
            return value or cls()
        return cls(**{name: getattr(value, name) for name in cls.__dataclass_fields__})

    @property
    def folder(self) -> Path:
        return Path(self.engines_folder) if self.engines_folder else default_engines_folder()


@dataclass(frozen=True)
class Selection:
    backend: Backend
    passed_over: tuple[str, ...]        # why each better backend was not used

    def describe(self) -> str:
        text = self.backend.describe()
        return text + (f" [{'; '.join(self.passed_over)}]" if self.passed_over else "")


def engine_paths(group: NetworkGroup, settings: RuntimeSettings) -> dict[str, Path]:
    """Valid TensorRT engines of every network of ``group``; ModelError says what is missing."""
    problem = tensorrt_problem()
    if problem:
        raise ModelError(problem)
    target = current_target(settings.precision)
    paths = {}
    for name, network in group.networks.items():
        path = engine_path(settings.folder, group, network, target)
        problem = check_artifact(path, expected_meta(group, network, target))
        if problem:
            raise ModelError(f"no valid engine for {name}: {problem} (run edge engines build)")
        paths[name] = path
    return paths


def onnx_paths(group: NetworkGroup, settings: RuntimeSettings) -> dict[str, Path]:
    """Valid ONNX files of every network of ``group``; ModelError says what is missing."""
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        raise ModelError("onnxruntime is not installed") from None
    paths = {}
    for name, network in group.networks.items():
        path = onnx_path(settings.folder, group, network)
        problem = check_artifact(path, onnx_expected(group, network))
        if problem:
            raise ModelError(f"no valid ONNX file for {name}: {problem} (run edge engines build)")
        paths[name] = path
    return paths


def select_backend(group: NetworkGroup, settings: RuntimeSettings | None = None) -> Selection:
    settings = RuntimeSettings.of(settings)
    wanted = settings.backend
    passed_over = []
    if wanted in ("auto", "tensorrt"):
        try:
            return Selection(TensorRTBackend(engine_paths(group, settings)), tuple(passed_over))
        except ModelError as error:
            if wanted == "tensorrt":
                raise ModelError(f"runtime.backend is tensorrt, but for {group.model}: {error}") from None
            passed_over.append(f"tensorrt: {error}")
    if wanted in ("auto", "onnxruntime"):
        try:
            backend = OnnxRuntimeBackend(onnx_paths(group, settings), threads=settings.threads,
                                         precision=settings.precision, cache_folder=settings.folder)
            return Selection(backend, tuple(passed_over))
        except ModelError as error:
            if wanted == "onnxruntime":
                raise ModelError(f"runtime.backend is onnxruntime, but for {group.model}: {error}") from None
            passed_over.append(f"onnxruntime: {error}")
    modules = {name: network.module for name, network in group.networks.items()}
    return Selection(TorchBackend(modules, settings.device), tuple(passed_over))


def accelerate_coder(coder, runtime=None) -> Selection:
    """Run the lossy coder's g_a, h_a and g_s on the selected backend (h_s never moves)."""
    selection = select_backend(lossy_group(coder), RuntimeSettings.of(runtime))
    coder.use_backend(selection.backend)
    log.info("lossy %s: g_a, h_a, g_s on %s", coder.model_name, selection.describe())
    return selection


class BackendUNet(nn.Module):
    """Stands in for BU-Netv2 in :func:`edge.segment.unet.predict_probability`: same config, logits."""

    def __init__(self, model: nn.Module, selection: Selection):
        super().__init__()
        self.config = model.config
        self.size_multiple = model.size_multiple
        self.selection = selection

    def forward(self, x):
        return self.selection.backend.run("unet", x)


def accelerate_segmenter(model: nn.Module, runtime=None, model_name: str = "bunetv2") -> BackendUNet:
    selection = select_backend(segmentation_group(model, model_name), RuntimeSettings.of(runtime))
    log.info("segmentation %s: U-Net on %s", model_name, selection.describe())
    return BackendUNet(model, selection)
