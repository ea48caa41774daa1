"""Error types a user sees: each maps to a clean message and exit code 2 in the CLI."""

from __future__ import annotations


class UserError(Exception):
    """A problem the user can fix (bad file, bad key, missing data). No traceback is shown."""

    exit_code = 2


def first_line(err: BaseException) -> str:
    """The first line of an exception's message, or its type's name when the message is empty."""
    return str(err).splitlines()[0] if str(err) else type(err).__name__


class DiskFullError(UserError):
    """A write failed for want of disk space; the message names what was being written, the free space and the way out."""


class DataError(UserError):
    """A dataset or body-model file is missing or corrupt; the message names the file."""


class LossDivergedError(RuntimeError):
    """Training produced a non-finite or exploding loss. Not retried: it would repeat."""

    def __init__(self, step: int, metric: str, value: float):
        self.step = step
        self.metric = metric
        self.value = value
        super().__init__(f"diverged at step {step}: {metric} = {value}")
