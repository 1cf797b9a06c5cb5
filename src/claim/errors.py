"""The one exception type users see: a clear message naming the file and the problem."""

from __future__ import annotations

from pathlib import Path

__all__ = ["ClaimError", "InputError"]


class ClaimError(ValueError):
    """Error caused by user input or configuration; the CLI prints it as one line and exits 2."""


class InputError(ClaimError):
    """A bad input file or folder. The message always starts with the offending path."""

    def __init__(self, path: str | Path, problem: str) -> None:
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{path}: {problem}")

    def __reduce__(self) -> tuple:
        # Rebuilt from its two parts, so it survives the trip from a worker process to the parent.
        return type(self), (self.path, self.problem)
