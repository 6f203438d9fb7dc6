"""Errors that end a command with one clear line and exit code 2."""


class UserError(Exception):
    """A problem with what the user asked for: bad input, unreachable target, unknown file.

    The message names the input and says what to do; the CLI prints it on one line and exits 2.
    """
