"""Exception types shared by every layer (a leaf module: imports nothing of ours).

A :class:`UserError` is a problem with what the user gave us (a file, a flag, a spec): the CLI prints its
one-line message and exits with code 2, never a traceback.
"""


class UserError(ValueError):
    """Bad user input; ``str(err)`` is one line naming the source, the key and the reason."""

    exit_code = 2


class SpecError(UserError):
    """An :class:`~pisearch.spec.ArchSpec` (or its JSON) is malformed; the message names the field."""
