"""`edge run --config edge.yaml`: the edge daemon (watch, code, spool, publish)."""
from __future__ import annotations

import argparse
from pathlib import Path

from edge.config import check_secrets, load_edge_config
from edge.daemon.coding import resolve_coder
from edge.daemon.pipeline import run_daemon

HELP = "run the edge daemon: watch the camera folder, code each photo, spool and publish it over MQTT"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, type=Path, metavar="YAML", help="edge config (see deploy/edge.yaml)")
    parser.add_argument("--validate-config", action="store_true",
                        help="check the config (keys, types, files, secrets, codec mode) and exit")


def run(args: argparse.Namespace) -> int:
    config = load_edge_config(args.config)
    if args.validate_config:
        check_secrets(config)
        resolve_coder(config.coding)
        print(f"{args.config}: valid (device {config.device}, broker {config.mqtt.host}:{config.mqtt.port})")
        return 0
    return run_daemon(config)
