"""`edge engines build`: ONNX files of the accelerated networks, and TensorRT engines on a Jetson."""
from __future__ import annotations

import argparse
from pathlib import Path

from edge.runtime.artifacts import PRECISIONS, default_engines_folder
from edge.runtime.build import BUILDERS, build_engines
from edge.service.health import Notifier

HELP = "export the analysis/synthesis transforms and the U-Net to ONNX and build TensorRT engines"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    build = sub.add_parser("build", help="export ONNX files and (with TensorRT and a GPU) build engines; "
                                         "up-to-date artifacts are kept",
                           description="Export g_a, h_a, g_s and BU-Netv2 to ONNX (checked by onnx.checker) and, "
                                       "where TensorRT and a GPU are present, build one engine per network.")
    build.add_argument("--precision", choices=PRECISIONS, default="fp16", help="TensorRT engine precision")
    build.add_argument("--backend", choices=BUILDERS, default="onnx-trt",
                       help="onnx-trt: TensorRT's ONNX parser (default); torch2trt: convert from PyTorch")
    build.add_argument("--out", type=Path, default=default_engines_folder(),
                       help=f"folder of the artifacts (default {default_engines_folder()})")
    build.add_argument("--force", action="store_true", help="rebuild engines even when they are up to date")
    build.add_argument("--lossy-weights", type=Path, help="lossy weights file (default: the shipped hp-easn)")
    build.add_argument("--segment-weights", type=Path, help="BU-Netv2 weights file (default: the shipped bunetv2)")


def run(args: argparse.Namespace) -> int:
    report = build_engines(args.out, args.precision, args.backend, args.force,
                           args.lossy_weights, args.segment_weights, Notifier())
    for line in report.lines:
        print(line)
    if not report.lines:
        print("nothing to build: no shipped weights found (give --lossy-weights / --segment-weights)")
    if report.tensorrt:
        print(f"TensorRT engines not built: {report.tensorrt}. "
              f"The ONNX files in {report.folder} serve ONNX Runtime (CPU here).")
    return 1 if report.failed else 0
