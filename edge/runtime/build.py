"""`edge engines build`: ONNX files everywhere, TensorRT engines where TensorRT runs.

For each shipped model (or the weights files given): export every accelerated network to
ONNX (checked by onnx.checker), then, with TensorRT and a GPU, build one engine per network
with the ONNX parser (default) or torch2trt, sharing a timing cache, and check the engine
against PyTorch on a random input. Artifacts whose name and sidecar already match (model,
weights, shapes, TensorRT version, GPU, precision) are kept: a second run builds nothing.
Long builds keep systemd informed (EXTEND_TIMEOUT_USEC) through the notifier given.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import torch

from edge.errors import ModelError
from edge.registry import MODELS, load_model, load_weights_file
from edge.runtime.artifacts import (check_artifact, engine_path, expected_meta, timing_cache_path,
                                    write_artifact)
from edge.runtime.networks import NetworkGroup, example_input, lossy_group, segmentation_group
from edge.runtime.onnx_export import export_group
from edge.runtime.tensorrt import (TensorRTBackend, build_from_onnx, build_with_torch2trt, current_target,
                                   systemd_keepalive, tensorrt_problem)

log = logging.getLogger(__name__)

BUILDERS = ("onnx-trt", "torch2trt")


@dataclass(frozen=True)
class BuildLine:
    model: str
    network: str
    artifact: str        # file name, or "" when nothing was made
    status: str          # exported, built, up to date, skipped, failed
    detail: str = ""

    def __str__(self) -> str:
        text = f"{self.model:<12} {self.network:<5} {self.status:<10} {self.artifact}"
        return text + (f"  ({self.detail})" if self.detail else "")


@dataclass
class BuildReport:
    folder: Path
    lines: list[BuildLine] = field(default_factory=list)
    tensorrt: str = ""            # "" when engines were built, else why not

    @property
    def failed(self) -> bool:
        return any(line.status == "failed" for line in self.lines)


def groups_to_build(lossy_weights: Path | None = None, segment_weights: Path | None = None,
                    report: BuildReport | None = None) -> list[NetworkGroup]:
    """The shipped models whose weights are present (or the given weights files).

    A segmentation weights file goes through bunetv2's loader, which also reads bunetv2-lite0 files.
    """
    groups = []
    if lossy_weights is not None:
        groups.append(lossy_group(load_weights_file("hp-easn", lossy_weights)))
    if segment_weights is not None:
        model = load_weights_file("bunetv2", segment_weights)
        groups.append(segmentation_group(model, getattr(model, "registry_name", "bunetv2")))
    for name, spec in sorted(MODELS.items()):
        given = {"lossy": lossy_weights, "segmentation": segment_weights}
        if spec.kind not in given or given[spec.kind] is not None:
            continue
        if not spec.weights_path.is_file():
            if report is not None:
                report.lines.append(BuildLine(name, "-", "", "skipped", f"weights missing: {spec.weights_path}"))
            continue
        model = load_model(name)
        groups.append(lossy_group(model) if spec.kind == "lossy" else segmentation_group(model, name))
    return groups


def build_engines(folder: Path, precision: str = "fp16", builder: str = "onnx-trt", force: bool = False,
                  lossy_weights: Path | None = None, segment_weights: Path | None = None,
                  notifier=None) -> BuildReport:
    if builder not in BUILDERS:
        raise ModelError(f"unknown engine builder {builder!r} (choose from {', '.join(BUILDERS)})")
    folder = Path(folder)
    report = BuildReport(folder)
    groups = groups_to_build(lossy_weights, segment_weights, report)
    report.tensorrt = tensorrt_problem() or ""
    for group in groups:
        exported = export_group(group, folder)
        for name, (path, written) in exported.items():
            report.lines.append(BuildLine(group.model, name, path.name, "exported" if written else "up to date"))
        if report.tensorrt:
            continue
        for name in group.networks:
            report.lines.append(_build_one(group, name, exported[name][0], folder, precision, builder,
                                           force, notifier))
    return report


def _build_one(group: NetworkGroup, name: str, onnx_file: Path, folder: Path, precision: str,
               builder: str, force: bool, notifier) -> BuildLine:
    network = group.networks[name]
    target = current_target(precision)
    path = engine_path(folder, group, network, target)
    expected = expected_meta(group, network, target)
    if not force and check_artifact(path, expected) is None:
        return BuildLine(group.model, name, path.name, "up to date")
    if notifier is not None:
        notifier.status(f"building TensorRT engine {path.name}")
    log.info("building %s (%s, %s): this can take minutes", path.name, builder, precision)
    try:
        with systemd_keepalive(notifier):
            if builder == "torch2trt":
                data = build_with_torch2trt(network, precision)
            else:
                data = build_from_onnx(onnx_file.read_bytes(), network, precision,
                                       timing_cache_path(folder, target))
        write_artifact(path, data, dict(expected, builder=builder))
        difference = _engine_difference(TensorRTBackend({name: path}), group, name)
    except ModelError as error:
        return BuildLine(group.model, name, path.name, "failed", str(error))
    if not difference < float("inf"):
        path.unlink(missing_ok=True)
        return BuildLine(group.model, name, path.name, "failed", "the engine gives NaN or inf")
    return BuildLine(group.model, name, path.name, "built", f"max |engine - torch| = {difference:.2e}")


@torch.no_grad()
def _engine_difference(backend, group: NetworkGroup, name: str) -> float:
    network = group.networks[name]
    x = example_input(network.spec)
    expected = network.module.cpu()(x).float()
    return float((backend.run(name, x) - expected).abs().max())
