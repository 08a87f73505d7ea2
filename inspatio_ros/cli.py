"""``inspatio-ros`` command line: build | run | render | eval | train-generator | info | synth | demo.

Each sub-command lives in its own module, which exposes ``register(subparsers)``; that function
adds an argparse parser and sets ``func`` to the function that runs it (``func(args) -> int``).
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys

from .errors import InputError

# Module names (inside inspatio_ros) whose register() adds a sub-command, in help order.
COMMAND_MODULES = ["ingest.build", "ros.run_cli", "render_cli", "eval", "generator.train", "info", "synth.cli", "demo"]


def parse_size(text: str, minimum: int = 8, maximum: int = 8192) -> tuple[int, int]:
    """``--size WxH`` -> (W, H); an InputError naming the flag and the fix otherwise."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise InputError(f"--size '{text}' is not WIDTHxHEIGHT", "write it like 640x360") from None
    if w < minimum or h < minimum:
        raise InputError(f"--size {text} is too small", f"give at least {minimum}x{minimum}, e.g. 640x360")
    if w > maximum or h > maximum:
        raise InputError(f"--size {text} is too large", f"give at most {maximum}x{maximum}")
    return w, h


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="inspatio-ros",
        description="Turn a driving or robot video into an explorable 4D world and render it.",
    )
    parser.add_argument("--device", default="auto",
                        help="torch device for rendering: auto (CUDA if present), cpu, cuda, cuda:1 ...")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        module = importlib.import_module(f"{__package__}.{name}")
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    from .runtime import keep_freed_memory

    keep_freed_memory()
    parser = make_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except InputError as exc:
        print(f"inspatio-ros {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"inspatio-ros {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (e.g. `inspatio-ros info W | head`): stop quietly, and keep
        # Python from failing again while flushing stdout at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    sys.exit(main())
