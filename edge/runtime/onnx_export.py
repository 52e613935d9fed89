"""ONNX export of the accelerated networks, checked by ``onnx.checker``.

The graphs use the TorchScript-based exporter (``dynamo=False``): it needs nothing beyond
torch and onnx, works from PyTorch 2.1 (JetPack 6's builds) to 2.13, and gives plain
Conv/ConvTranspose/Resize graphs that the TensorRT ONNX parser reads. The batch dimension is
dynamic (and height/width for the U-Net), so one file serves every batch the pipeline uses.
"""
from __future__ import annotations

import inspect
import io
import warnings
from pathlib import Path

import torch

from edge.errors import ModelError
from edge.runtime.artifacts import check_artifact, expected_meta, onnx_path, write_artifact
from edge.runtime.networks import Network, NetworkGroup

OPSET = 17


def export_bytes(network: Network) -> bytes:
    """The network as a checked ONNX model (serialized)."""
    import onnx
    spec = network.spec
    example = torch.rand((1, *spec.opt_shape[1:]), generator=torch.Generator().manual_seed(0))
    axis_names = {0: "batch", 2: "height", 3: "width"}
    dynamic_axes = {spec.input: {d: axis_names[d] for d in spec.dynamic}}
    # Output dims follow the input's: batch always, height/width for the U-Net.
    dynamic_axes[spec.output] = {d: axis_names[d] for d in spec.dynamic}
    options = {}
    if "dynamo" in inspect.signature(torch.onnx.export).parameters:
        options["dynamo"] = False
    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")          # tracer and deprecation chatter, not our problems
        torch.onnx.export(network.module.eval(), (example,), buffer, input_names=[spec.input],
                          output_names=[spec.output], dynamic_axes=dynamic_axes, opset_version=OPSET,
                          do_constant_folding=True, **options)
    data = buffer.getvalue()
    try:
        onnx.checker.check_model(onnx.load_from_string(data), full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as error:
        raise ModelError(f"the ONNX export of {network.spec.name} fails onnx.checker: {error}") from None
    return data


def onnx_expected(group: NetworkGroup, network: Network) -> dict:
    """The sidecar fields a usable ONNX file of ``network`` has."""
    return dict(expected_meta(group, network), opset=OPSET)


def export_group(group: NetworkGroup, folder: Path) -> dict[str, tuple[Path, bool]]:
    """Export every network of ``group`` whose ONNX file is missing or stale.

    Returns name -> (path, True if written now / False if already up to date).
    """
    done = {}
    for name, network in group.networks.items():
        path = onnx_path(folder, group, network)
        expected = onnx_expected(group, network)
        if check_artifact(path, expected) is None:
            done[name] = (path, False)
            continue
        write_artifact(path, export_bytes(network), expected)
        done[name] = (path, True)
    return done
