"""UserError: what the ``netcl`` command reports in one line, with exit status 2."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from netcl.core.device import DeviceError

# What an argument can make the commands' setup raise (a device index that is not there, a
# damaged data file, a checkpoint of another model, an optional package not installed).
USER_ERRORS = (DeviceError, FileNotFoundError, ModuleNotFoundError, ValueError)


class UserError(Exception):
    """Something the user asked for cannot be done: one line, exit status 2."""


@contextmanager
def user_errors(what: str = "") -> Iterator[None]:
    """Turn ``USER_ERRORS`` raised inside into a one-line UserError (``what`` goes first).

    Only around setup that reads the user's arguments: an error in training
    itself is a bug and keeps its traceback.
    """
    try:
        yield
    except USER_ERRORS as error:
        text = " ".join((str(error) or type(error).__name__).split())
        raise UserError(f"{what}: {text}" if what else text) from error
