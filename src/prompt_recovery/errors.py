"""User-facing errors and notices: what the user sees as one line on stderr.

Raise `UserError` for anything the user can fix (bad input, missing files, unknown
model names); let real bugs surface as tracebacks (shown only with `--debug`). `notice`
prints a one-line note that is not an error (a fallback taken, a cache being built).
"""

import sys


class UserError(Exception):
    """An error caused by input the user can fix; its message is shown as one line."""


def notice(msg: str) -> None:
    """A one-line note on stderr, e.g. that a slower engine is used or a cache is being built."""
    print(f"prompt-recovery: {msg}", file=sys.stderr, flush=True)


class Interrupted(UserError):
    """A run stopped by a signal after saving what it had done; the CLI exits with 128 + the signal's number."""

    def __init__(self, message: str, signum: int):
        super().__init__(message)
        self.signum = int(signum)  # 0: asked to stop some other way (a launcher's stop file)
        self.exit_code = 128 + self.signum if self.signum else 1
