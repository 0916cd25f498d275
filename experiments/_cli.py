"""What the entry points share: a user's error is one line on stderr and exit code 2.

A mistake in the command line (an unknown flag, config file, field, encoding, task, option,
--only pattern or folder) is reported in the manner of absl's `app.UsageError`, with the close
matches, and without a traceback; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable
from pathlib import Path

from absl import app, flags

from pe_jax._names import did_you_mean

EXIT_USAGE = 2


def _fail(message: str) -> None:
    prog = os.path.basename(sys.argv[0]) or "pe_jax"
    one_line = " ".join(str(message).split())
    sys.stderr.write(f"{prog}: error: {one_line}\n")
    sys.exit(EXIT_USAGE)


def _parse_flags(argv: list[str]) -> list[str]:
    try:
        return flags.FLAGS(argv)
    except flags.Error as error:
        _fail(str(error))


@contextlib.contextmanager
def user_errors():
    """The ValueErrors raised inside are the user's (checks of the command line and the
    config, before any work): they become `app.UsageError`s."""
    try:
        yield
    except ValueError as error:
        raise app.UsageError(str(error)) from None


def check_folder(flag: str, path: str | os.PathLike) -> Path:
    """`path` as a Path when it is a folder, else a usage error naming the flag and the
    folders close to it.

    Raises:
      app.UsageError: not a folder.
    """
    path = Path(path)
    if path.is_dir():
        return path
    parent = path.parent if path.parent.is_dir() else None
    nearby = [p.name for p in parent.iterdir() if p.is_dir()] if parent else []
    hint = did_you_mean(path.name, nearby)
    if hint and parent != Path():
        hint = hint.replace(" '", f" '{parent}{os.sep}")
    raise app.UsageError(f"{flag}={str(path)!r} is not a folder.{hint}")


def run(main: Callable[[list[str]], None]) -> None:
    """`app.run(main)` with user errors (flag parsing included) as one line and exit code 2."""

    def checked(argv):
        try:
            return main(argv)
        except app.UsageError as error:
            _fail(str(error))

    app.run(checked, flags_parser=_parse_flags)
