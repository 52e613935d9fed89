"""TensorRT: building engines (ONNX parser or torch2trt) and running them.

Written against the documented Python APIs of TensorRT 8.6 and 10.x:

- running: the named-tensor API (``set_input_shape`` / ``set_tensor_address`` /
  ``execute_async_v3``, TensorRT 8.5 and later, the only one in 10.x) when the execution
  context has it, else the binding API of 8.x (``set_binding_shape`` / ``execute_async_v2``);
- building: ``build_serialized_network`` with an explicit-batch network (the flag is needed
  before 10.x and gone in 10.x), one optimisation profile (min/opt/max shapes of the
  pipeline), FP16 when asked, a workspace pool limit and a persistent timing cache.

Buffers are PyTorch CUDA tensors (NVIDIA's torch for JetPack has CUDA), so neither pycuda nor
cuda-python is needed; the engines run on PyTorch's current CUDA stream.

Nothing here ran on this project's CPU-only build machine: see engines/README.md.
"""
from __future__ import annotations

import copy
import logging
import threading
from contextlib import contextmanager
from pathlib import Path

import torch

from edge.errors import ModelError
from edge.runtime.artifacts import EngineTarget
from edge.runtime.backends import Backend
from edge.runtime.networks import Network

log = logging.getLogger(__name__)

WORKSPACE_BYTES = 1 << 30      # scratch memory TensorRT may use while building (Orin shares RAM)


def tensorrt_module():
    try:
        import tensorrt
    except ImportError:
        raise ModelError("TensorRT is not installed (on a Jetson it comes with JetPack: "
                         "python3-libnvinfer; the venv needs --system-site-packages)") from None
    return tensorrt


def tensorrt_problem() -> str | None:
    """Why TensorRT cannot run here, or None if it can."""
    try:
        tensorrt_module()
    except ModelError as error:
        return str(error)
    if not torch.cuda.is_available():
        return "PyTorch sees no CUDA device (TensorRT buffers are torch CUDA tensors)"
    return None


def current_target(precision: str) -> EngineTarget:
    """This machine's TensorRT version and GPU, at ``precision``."""
    trt = tensorrt_module()
    if not torch.cuda.is_available():
        raise ModelError("no CUDA device: TensorRT engines cannot be built or run here")
    return EngineTarget(trt.__version__, torch.cuda.get_device_name(0), precision)


def _major(trt) -> int:
    return int(trt.__version__.split(".")[0])


# -- running --------------------------------------------------------------------------------

class _Engine:
    """One deserialized engine with one single-input, single-output execution context."""

    def __init__(self, trt, runtime, path: Path):
        try:
            engine = runtime.deserialize_cuda_engine(Path(path).read_bytes())
        except OSError as error:
            raise ModelError(f"cannot read TensorRT engine {path}: {error.strerror}") from None
        if engine is None:
            raise ModelError(f"TensorRT could not deserialize {path} (built by another TensorRT version "
                             f"or GPU?): rebuild with edge engines build")
        self.trt, self.engine, self.path = trt, engine, path
        self.context = engine.create_execution_context()
        self.named_api = hasattr(self.context, "execute_async_v3")
        self.lock = threading.Lock()          # an execution context is not thread-safe
        if self.named_api:
            names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
            inputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
            outputs = [n for n in names if n not in inputs]
            self.input, self.output = self._single(inputs, outputs)
            self.input_dtype = self._torch_dtype(engine.get_tensor_dtype(self.input))
            self.output_dtype = self._torch_dtype(engine.get_tensor_dtype(self.output))
        else:
            count = engine.num_bindings
            inputs = [i for i in range(count) if engine.binding_is_input(i)]
            outputs = [i for i in range(count) if not engine.binding_is_input(i)]
            self.input, self.output = self._single(inputs, outputs)
            self.input_dtype = self._torch_dtype(engine.get_binding_dtype(self.input))
            self.output_dtype = self._torch_dtype(engine.get_binding_dtype(self.output))

    def _single(self, inputs, outputs):
        if len(inputs) != 1 or len(outputs) != 1:
            raise ModelError(f"{self.path} has {len(inputs)} inputs and {len(outputs)} outputs, not 1 and 1")
        return inputs[0], outputs[0]

    def _torch_dtype(self, trt_dtype) -> torch.dtype:
        table = {self.trt.DataType.FLOAT: torch.float32, self.trt.DataType.HALF: torch.float16}
        if trt_dtype not in table:
            raise ModelError(f"{self.path}: unsupported I/O type {trt_dtype}")
        return table[trt_dtype]

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to("cuda", self.input_dtype).contiguous()
        stream = torch.cuda.current_stream()
        with self.lock:
            if self.named_api:
                if not self.context.set_input_shape(self.input, tuple(x.shape)):
                    raise ModelError(f"{self.path}: input shape {tuple(x.shape)} is outside the engine's profile")
                shape = tuple(self.context.get_tensor_shape(self.output))
                y = torch.empty(shape, dtype=self.output_dtype, device="cuda")
                self.context.set_tensor_address(self.input, x.data_ptr())
                self.context.set_tensor_address(self.output, y.data_ptr())
                ok = self.context.execute_async_v3(stream.cuda_stream)
            else:
                if not self.context.set_binding_shape(self.input, tuple(x.shape)):
                    raise ModelError(f"{self.path}: input shape {tuple(x.shape)} is outside the engine's profile")
                shape = tuple(self.context.get_binding_shape(self.output))
                y = torch.empty(shape, dtype=self.output_dtype, device="cuda")
                bindings = [0] * self.engine.num_bindings
                bindings[self.input], bindings[self.output] = x.data_ptr(), y.data_ptr()
                ok = self.context.execute_async_v2(bindings, stream.cuda_stream)
            if not ok:
                raise ModelError(f"{self.path}: TensorRT execution failed")
            # .cpu() is queued on the same stream, so it waits for the engine.
            return y.float().cpu()


class TensorRTBackend(Backend):
    """Deserialized engines built by `edge engines build` (one per network)."""

    kind = "tensorrt"

    def __init__(self, paths: dict[str, Path]):
        super().__init__(paths)
        trt = tensorrt_module()
        if not torch.cuda.is_available():
            raise ModelError("TensorRT engines need a CUDA device, and PyTorch sees none")
        self.version = trt.__version__
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        self._engines = {name: _Engine(trt, self._runtime, path) for name, path in paths.items()}

    @torch.no_grad()
    def _run(self, name: str, x: torch.Tensor) -> torch.Tensor:
        return self._engines[name](x)

    def describe(self) -> str:
        return f"tensorrt {self.version} on {torch.cuda.get_device_name(0)}"


# -- building -------------------------------------------------------------------------------

@contextmanager
def systemd_keepalive(notifier, every_s: float = 30.0, extend_s: float = 120.0):
    """While a slow build runs, tell systemd every ``every_s`` to extend its timeout by ``extend_s``."""
    if notifier is None or not notifier.enabled:
        yield
        return
    done = threading.Event()

    def ping():
        notifier.extend_timeout(extend_s)
        while not done.wait(every_s):
            notifier.extend_timeout(extend_s)

    thread = threading.Thread(target=ping, name="engine-build-keepalive", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()


def build_from_onnx(onnx_bytes: bytes, network: Network, precision: str, timing_cache: Path) -> bytes:
    """A serialized engine from an ONNX graph (TensorRT ONNX parser), updating the timing cache."""
    trt = tensorrt_module()
    spec = network.spec
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = 0 if _major(trt) >= 10 else 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    graph = builder.create_network(flags)
    parser = trt.OnnxParser(graph, logger)
    if not parser.parse(onnx_bytes):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise ModelError(f"the TensorRT ONNX parser refuses {spec.name}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, WORKSPACE_BYTES)
    if precision == "fp16":
        config.set_flag(trt.BuilderFlag.FP16)
    cache = _load_timing_cache(config, timing_cache)
    profile = builder.create_optimization_profile()
    profile.set_shape(spec.input, spec.min_shape, spec.opt_shape, spec.max_shape)
    config.add_optimization_profile(profile)
    serialized = builder.build_serialized_network(graph, config)
    if serialized is None:
        raise ModelError(f"TensorRT failed to build an engine for {spec.name} (see the log above)")
    _save_timing_cache(cache, timing_cache)
    return bytes(serialized)


def _load_timing_cache(config, path: Path):
    data = Path(path).read_bytes() if Path(path).is_file() else b""
    cache = config.create_timing_cache(data)
    if cache is None or not config.set_timing_cache(cache, ignore_mismatch=False):
        log.warning("timing cache %s does not fit this TensorRT/GPU: starting a new one", path)
        cache = config.create_timing_cache(b"")
        config.set_timing_cache(cache, ignore_mismatch=False)
    return cache


def _save_timing_cache(cache, path: Path) -> None:
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(bytes(cache.serialize()))
    tmp.replace(path)


def build_with_torch2trt(network: Network, precision: str) -> bytes:
    """A serialized engine converted layer by layer by torch2trt (no ONNX step).

    torch2trt traces Python calls with the example's sizes; the optimisation profile still
    spans the pipeline's shapes. The ONNX parser path is the default and the better tested one.
    """
    try:
        from torch2trt import torch2trt
    except ImportError:
        raise ModelError("torch2trt is not installed (see deploy/JETSON.md), use --backend onnx-trt") from None
    spec = network.spec
    module = copy.deepcopy(network.module).cuda().eval()
    example = torch.rand(spec.opt_shape, device="cuda")
    with torch.no_grad():
        converted = torch2trt(module, [example], input_names=[spec.input], output_names=[spec.output],
                              fp16_mode=precision == "fp16", max_workspace_size=WORKSPACE_BYTES,
                              min_shapes=[spec.min_shape], opt_shapes=[spec.opt_shape],
                              max_shapes=[spec.max_shape])
    return bytes(converted.engine.serialize())
