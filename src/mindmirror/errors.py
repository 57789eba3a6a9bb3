"""User-facing errors: one line, the problem and the fix, exit code 2, no traceback."""


class UserError(Exception):
    """A problem with the user's input (recipe, data, endpoint, key).

    The CLI prints ``str(error)`` on one line and exits with code 2. Raise it as early as
    possible (before anything is written) and put the fix in the message.
    """
