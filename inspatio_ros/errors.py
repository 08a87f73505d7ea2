"""The one error type users see: what input is wrong and how to fix it."""
from __future__ import annotations


class InputError(Exception):
    """Bad user input. ``str()`` is one line naming the input and the fix."""

    def __init__(self, problem: str, fix: str):
        self.problem = problem
        self.fix = fix
        super().__init__(f"{problem}: {fix}")


class WorldFileError(InputError):
    """A world file that cannot be used (missing, damaged, wrong version)."""
