"""User-facing errors and the CLI's exit codes.

Anything a user can fix (a bad recipe, a missing dataset, a corrupt model file) is raised
as a `UserError` whose message is one line naming the problem and the fix; the CLI prints
it without a traceback and exits with `code`.
"""

# Exit codes are part of the CLI contract: CI scripts branch on them.
EXIT_OK = 0
EXIT_USAGE = 2  # bad arguments, recipe or input files
EXIT_GATE = 3  # a gate (minimum accuracy, flash or RAM budget, ...) was not met
EXIT_INTERRUPTED = 130


class UserError(Exception):
    """A problem with the user's input; `str(err)` is the one-line message.

        raise UserError("no dataset for the model; name the one it was trained on", option="dataset")

    Code below the CLI words messages without CLI flags; `option` names the job option at
    fault (the request field, e.g. "dataset"), so a front end can point at its own flag for it.
    """

    code = EXIT_USAGE

    def __init__(self, message: str, *, code: int | None = None, option: str | None = None):
        super().__init__(message)
        self.option = option
        if code is not None:
            self.code = code


class GateFailed(UserError):
    """A budget or accuracy gate was not met."""

    code = EXIT_GATE


class Interrupted(UserError):
    """Ctrl-C (or a stop) during a long job; the message says how to continue."""

    code = EXIT_INTERRUPTED
