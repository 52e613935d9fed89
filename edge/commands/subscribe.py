"""`edge subscribe --config offshore.yaml`: the offshore subscriber (reassemble, decode, write, ack)."""
from __future__ import annotations

import argparse
from pathlib import Path

from edge.config import check_secrets, load_offshore_config
from edge.offshore.subscriber import run_subscriber

HELP = "run the offshore subscriber: receive bundles over MQTT, decode them, write images, acknowledge"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, type=Path, metavar="YAML",
                        help="offshore config (see deploy/offshore.yaml)")
    parser.add_argument("--validate-config", action="store_true",
                        help="check the config (keys, types, files, secrets) and exit")


def run(args: argparse.Namespace) -> int:
    config = load_offshore_config(args.config)
    if args.validate_config:
        check_secrets(config)
        print(f"{args.config}: valid (broker {config.mqtt.host}:{config.mqtt.port}, "
              f"output {config.output.folder})")
        return 0
    return run_subscriber(config)
