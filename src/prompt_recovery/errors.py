"""User-facing errors: the CLI prints them as one line on stderr and exits non-zero.

Raise `UserError` for anything the user can fix (bad input, missing files, unknown
model names); let real bugs surface as tracebacks (shown only with `--debug`).
"""


class UserError(Exception):
    """An error caused by input the user can fix; its message is shown as one line."""
