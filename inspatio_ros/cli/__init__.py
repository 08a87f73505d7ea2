"""``inspatio-ros`` command line: build | run | render | eval | train-generator | optimize | info | synth | demo |
sweep | build-many.

Each sub-command lives in its own module here (cli/<command>.py), which exposes
``register(subparsers)``; that function adds an argparse parser and sets ``func`` to the function
that runs it (``func(args) -> int``). The command modules turn options into plain typed arguments
of the library's functions; no domain code lives here, and no library module imports this package.
``main`` reports an InputError as one line naming the command, with exit code 2.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys

from ..errors import InputError

# Modules of this package whose register() adds a sub-command, in help order.
COMMAND_MODULES = ["build", "run", "render", "eval", "train_generator", "optimize", "info", "export", "synth", "demo",
                   "sweep", "build_many"]

# Options whose value may start with '-' followed by a digit: argparse takes "-100,80,79.5,47.5"
# for an option (it only knows plain negative numbers) and stops with "expected one argument".
# Their value is joined to them ("--intrinsics=-100,...") so that the command sees it and names
# what is wrong with it.
DASH_VALUE_OPTIONS = ("--intrinsics",)


def join_dash_values(argv: list[str]) -> list[str]:
    out: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        nxt = argv[i + 1] if i + 1 < len(argv) else ""
        if arg in DASH_VALUE_OPTIONS and len(nxt) > 1 and nxt[0] == "-" and (nxt[1].isdigit() or nxt[1] == "."):
            out.append(f"{arg}={nxt}")
            i += 2
            continue
        if arg == "--":
            out.extend(argv[i:])
            break
        out.append(arg)
        i += 1
    return out


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
    from ..runtime import keep_freed_memory

    keep_freed_memory()
    parser = make_parser()
    args = parser.parse_args(join_dash_values(sys.argv[1:] if argv is None else list(argv)))
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
    except BrokenPipeError as exc:
        if not stdout_reader_gone():
            # A pipe of our own broke (a camera writer process, a subprocess): a real failure,
            # which exiting quietly as for `| head` would hide.
            print(f"inspatio-ros {args.command}: error: a pipe to another process broke ({exc}); "
                  "see the messages above for the process that ended", file=sys.stderr)
            return 1
        # The reader went away (e.g. `inspatio-ros info W | head`): stop quietly, and keep
        # Python from failing again while flushing stdout at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


def stdout_reader_gone() -> bool:
    """True when stdout is a pipe whose reading end is closed (poll reports an error on it)."""
    import select

    try:
        fd = sys.stdout.fileno()
    except (AttributeError, ValueError, OSError):
        return False
    poller = select.poll()
    poller.register(fd, select.POLLOUT)
    return any(events & (select.POLLERR | select.POLLHUP) for _, events in poller.poll(0))
