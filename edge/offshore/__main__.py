"""`python -m edge.offshore --config offshore.yaml`: the subscriber without the rest of the
command line (`edge subscribe` does the same)."""
from __future__ import annotations

import argparse
import logging
import sys

from edge.config import load_offshore_config
from edge.errors import EdgeError
from edge.offshore.subscriber import run_subscriber


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m edge.offshore", description="run the offshore subscriber")
    parser.add_argument("--config", required=True, help="offshore config (see deploy/offshore.yaml)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return run_subscriber(load_offshore_config(args.config))
    except EdgeError as error:
        print(f"edge subscriber: error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
