"""User-facing errors and the CLI's exit codes.

Anything a user can fix (a bad recipe, a missing dataset, a corrupt model file) is raised
as a `UserError` whose message is one line naming the problem and the fix; the CLI prints
it without a traceback and exits with `code`.
"""

# Exit codes are part of the CLI contract: CI scripts branch on them.
EXIT_OK = 0
EXIT_USAGE = 2  # bad arguments, recipe or input files
EXIT_GATE = 3  # a gate (--fail-under, --max-flash, ...) was not met
EXIT_INTERRUPTED = 130


class UserError(Exception):
    """A problem with the user's input; `str(err)` is the one-line message."""

    code = EXIT_USAGE

    def __init__(self, message: str, *, code: int | None = None):
        super().__init__(message)
        if code is not None:
            self.code = code


class GateFailed(UserError):
    """A budget or accuracy gate was not met."""

    code = EXIT_GATE


class Interrupted(UserError):
    """Ctrl-C (or a stop) during a long job; the message says how to continue."""

    code = EXIT_INTERRUPTED
