"""`edge eval KIND ...`: evaluate a part of the system on labelled data.

Each kind is a module defining ``add_arguments(parser)`` and ``run(args) -> int``; kinds whose
module is not installed are left out.
"""
from __future__ import annotations

import argparse
import importlib
import importlib.util

HELP = "evaluate a part of the system (seg, seg-speed, ...)"

# Kind -> module.
EVALUATORS = {
    "seg": "edge.commands.eval_seg",
    "seg-speed": "edge.commands.eval_seg_speed",
    "seg-regions": "edge.commands.eval_seg_regions",
}


def available_evaluators() -> dict[str, str]:
    return {kind: module for kind, module in EVALUATORS.items() if importlib.util.find_spec(module) is not None}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="kind", metavar="KIND", required=True)
    for kind, module_name in available_evaluators().items():
        module = importlib.import_module(module_name)
        kind_parser = sub.add_parser(kind, help=module.HELP, description=module.HELP)
        module.add_arguments(kind_parser)
        kind_parser.set_defaults(_eval_run=module.run)


def run(args: argparse.Namespace) -> int:
    return int(args._eval_run(args) or 0)
