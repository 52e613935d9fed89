"""Backends that run the accelerated networks: PyTorch and ONNX Runtime (TensorRT: tensorrt.py).

One small contract, whatever runs underneath::

    backend.run(name, x) -> y      name in backend.names(); x, y float32 CPU tensors

A backend only ever holds the networks of :data:`edge.runtime.networks.ACCELERATED` (the
analysis and synthesis transforms and the U-Net, docs/design.md, rule 3); the coder asks it for nothing
else.
"""
from __future__ import annotations

import copy
from pathlib import Path

import torch
from torch import nn

from edge.errors import ModelError
from edge.runtime.networks import ACCELERATED

# ONNX Runtime execution providers, best first; only the available ones are used.
ORT_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")


class Backend:
    """Base: checks names, keeps the list; subclasses implement :meth:`_run`."""

    kind = "?"

    def __init__(self, names):
        unknown = sorted(set(names) - set(ACCELERATED))
        if unknown:
            # Rule 3: h_s, priors and Bit-swap's networks never leave the canonical CPU path.
            raise ModelError(f"networks {unknown} may not run on an accelerated backend "
                             f"(only {', '.join(ACCELERATED)})")
        self._names = tuple(names)

    def names(self) -> tuple[str, ...]:
        return self._names

    def run(self, name: str, x: torch.Tensor) -> torch.Tensor:
        if name not in self._names:
            raise ModelError(f"the {self.kind} backend has no network {name!r} (it has {', '.join(self._names)})")
        return self._run(name, x)

    def _run(self, name: str, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def describe(self) -> str:
        return self.kind


def torch_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise ModelError("runtime.device is cuda but PyTorch sees no CUDA device; use auto or cpu")
    return torch.device(device)


class TorchBackend(Backend):
    """The modules themselves, on the CPU (shared with the model) or a copy on the GPU."""

    kind = "torch"

    def __init__(self, modules: dict[str, nn.Module], device: str = "auto"):
        super().__init__(modules)
        self.device = torch_device(device)
        if self.device.type == "cpu":
            self._modules = {name: module.eval() for name, module in modules.items()}
        else:   # a copy: the caller's modules stay on the CPU for its own fallback path
            self._modules = {name: copy.deepcopy(module).to(self.device).eval()
                             for name, module in modules.items()}

    @torch.no_grad()
    def _run(self, name: str, x: torch.Tensor) -> torch.Tensor:
        y = self._modules[name](x.to(self.device, torch.float32))
        return y.float().cpu()

    def describe(self) -> str:
        return f"torch {torch.__version__} on {self.device}"


def ort_providers(precision: str = "fp16", cache_folder: Path | None = None) -> list:
    """Available ONNX Runtime providers in our order of preference, with their options."""
    import onnxruntime
    available = set(onnxruntime.get_available_providers())
    chosen = []
    for name in ORT_PROVIDERS:
        if name not in available:
            continue
        if name == "TensorrtExecutionProvider":
            options = {"trt_fp16_enable": precision == "fp16", "trt_timing_cache_enable": True}
            if cache_folder is not None:
                options.update(trt_engine_cache_enable=True,
                               trt_engine_cache_path=str(Path(cache_folder) / "ort-trt-cache"))
            chosen.append((name, options))
        else:
            chosen.append(name)
    return chosen


class OnnxRuntimeBackend(Backend):
    """ONNX Runtime sessions over exported graphs: TensorRT EP, CUDA EP, then CPU."""

    kind = "onnxruntime"

    def __init__(self, paths: dict[str, Path], threads: int | None = None, precision: str = "fp16",
                 cache_folder: Path | None = None, providers: list | None = None):
        super().__init__(paths)
        try:
            import onnxruntime
        except ImportError:
            raise ModelError("onnxruntime is not installed (pip install onnxruntime, the 'onnx' extra)") from None
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        options.inter_op_num_threads = 1
        options.log_severity_level = 3            # errors only
        providers = providers if providers is not None else ort_providers(precision, cache_folder)
        self._sessions, self._inputs = {}, {}
        for name, path in paths.items():
            try:
                session = onnxruntime.InferenceSession(str(path), options, providers=providers)
            except Exception as error:            # ORT raises its own untyped errors for bad files
                raise ModelError(f"onnxruntime cannot load {path}: {error}") from None
            self._sessions[name] = session
            self._inputs[name] = session.get_inputs()[0].name
        self.version = onnxruntime.__version__

    def _run(self, name: str, x: torch.Tensor) -> torch.Tensor:
        array = x.detach().to(torch.float32).cpu().contiguous().numpy()
        (y,) = self._sessions[name].run(None, {self._inputs[name]: array})
        return torch.from_numpy(y)

    def providers(self) -> list[str]:
        return list(next(iter(self._sessions.values())).get_providers()) if self._sessions else []

    def describe(self) -> str:
        return f"onnxruntime {self.version} ({', '.join(self.providers())})"
