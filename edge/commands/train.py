"""`edge train KIND ...`: train one of the project's models (resumable).

Each kind is a module ``edge.train.<kind>`` defining ``add_arguments(parser)`` and
``run(args) -> int``; kinds whose module is not installed are left out.
"""
from __future__ import annotations

import argparse
import importlib
import importlib.util

HELP = "train a model (seg, lossy, lossless, implicit, or all of them); resumes from its checkpoint directory"

# Kind -> module. A kind appears only when its module exists.
TRAINERS = {
    "seg": "edge.train.seg",
    "lossy": "edge.train.lossy",
    "lossless": "edge.train.lossless",
    "implicit": "edge.train.implicit",
    "all": "edge.train.all",            # every model above from its shipped weights, in one budget
    "promote": "edge.train.promote",    # ship what `all` trained, when clearly better
    "soup": "edge.train.soup",          # average the weights of runs from the same weights
}


def available_trainers() -> dict[str, str]:
    return {kind: module for kind, module in TRAINERS.items() if importlib.util.find_spec(module) is not None}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="kind", metavar="KIND", required=True)
    for kind, module_name in available_trainers().items():
        module = importlib.import_module(module_name)
        doc = (module.__doc__ or kind).strip().splitlines()[0]
        kind_parser = sub.add_parser(kind, help=doc, description=doc)
        module.add_arguments(kind_parser)
        kind_parser.set_defaults(_train_run=module.run)


def run(args: argparse.Namespace) -> int:
    return int(args._train_run(args) or 0)
