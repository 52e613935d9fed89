"""The ``edge`` command line: one sub-command per module in :mod:`edge.commands`.

Each command module defines ``HELP`` (one line, a plain string: `edge --help` reads it from the
source), ``add_arguments(parser)`` and ``run(args) -> int``. A command parses its arguments,
calls one library function, and this dispatcher turns our own errors
(:class:`edge.errors.EdgeError`) into a one-line message and exit status 1.
"""
from __future__ import annotations

import argparse
import ast
import importlib
import importlib.util
import logging
import sys
from pathlib import Path

from edge.errors import EdgeError

# Sub-command name -> module under edge.commands. The order is the order of `edge --help`.
COMMANDS = {
    "demo": "demo",
    "synth": "synth",
    "compress": "compress",
    "decompress": "decompress",
    "train": "train",
    "eval": "eval",
    "segment": "segment",
    "run": "run",
    "subscribe": "subscribe",
    "engines": "engines",
    "doctor": "doctor",
}


def help_line(module_name: str) -> str:
    """The ``HELP`` of a command module, read from its source without importing it."""
    spec = importlib.util.find_spec(f"edge.commands.{module_name}")
    for node in ast.parse(Path(spec.origin).read_text()).body:
        if isinstance(node, ast.Assign) and any(getattr(target, "id", "") == "HELP" for target in node.targets):
            return ast.literal_eval(node.value)
    raise LookupError(f"edge.commands.{module_name} has no HELP line")


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The parser; with ``only``, just that command's module is imported (torch is slow to load).
    Without it the parser only lists the commands, and no command module is imported: `edge
    --help` took 2.7 s when it imported them all."""
    parser = argparse.ArgumentParser(
        prog="edge",
        description="Learned region-of-interest compression of blade inspection photos.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, module_name in COMMANDS.items():
        if only is None:
            line = help_line(module_name)
            sub.add_parser(name, help=line, description=line)
            continue
        if name != only:
            continue
        module = importlib.import_module(f"edge.commands.{module_name}")
        command_parser = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(command_parser)
        command_parser.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    chosen = next((arg for arg in argv if not arg.startswith("-")), None)
    args = build_parser(chosen if chosen in COMMANDS else None).parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args._run(args) or 0)
    except EdgeError as error:
        print(f"edge {args.command}: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
