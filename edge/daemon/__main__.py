"""`python -m edge.daemon --config edge.yaml`: the daemon without the rest of the command line
(`edge run` loads every command's module; this starts faster where the codec is not needed)."""
from __future__ import annotations

import argparse
import logging
import sys

from edge.config import load_edge_config
from edge.daemon.pipeline import run_daemon
from edge.errors import EdgeError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m edge.daemon", description="run the edge daemon")
    parser.add_argument("--config", required=True, help="edge config (see deploy/edge.yaml)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return run_daemon(load_edge_config(args.config))
    except EdgeError as error:
        print(f"edge daemon: error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
