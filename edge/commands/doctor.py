"""`edge doctor`: check this machine (and a config's mounts and broker); exit 1 on any FAIL."""
from __future__ import annotations

import argparse
from pathlib import Path

from edge.doctor import FAIL, run_checks

HELP = "check Python, torch, GPU/TensorRT/ONNX Runtime, constriction, weights, engines, mounts and broker"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, help="edge or offshore YAML: also check its runtime "
                                                    "section, folders/mounts and broker")
    parser.add_argument("--engines", type=Path, help="engines folder (default: the config's, else engines/)")


def run(args: argparse.Namespace) -> int:
    checks = run_checks(args.config, args.engines)
    for check in checks:
        print(check)
    failed = sum(check.status == FAIL for check in checks)
    print(f"{len(checks)} checks, {failed} failed")
    return 1 if failed else 0
