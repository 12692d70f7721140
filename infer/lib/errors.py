"""The project's error types.

`UserInputError` is a problem the user caused and can fix (bad URL, too little audio, a model file for
the wrong variant): its message says what is wrong and what to do, and front ends show it alone,
without a traceback. Everything else is an internal failure and keeps its traceback in the logs.
"""

from __future__ import annotations


class RVCError(Exception):
    """Base class of the project's own errors."""


class UserInputError(RVCError):
    """Bad input from the user: the message says what is wrong and how to fix it.

    `field`: the option or input at fault (e.g. "epochs", "dataset"), when one is; front ends show its
    label (the web UI names the form field).
    """

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class ConfigError(UserInputError):
    """A configuration file or value is invalid."""


class WeightsError(RVCError):
    """Model weights are missing, corrupt or cannot be fetched."""


class CancelledError(RVCError):
    """The job was cancelled (SIGTERM, cog's cancel) and stopped cleanly."""


class DiskFullError(UserInputError):
    """Not enough free disk space: the message names the folder and the space needed.

    A `UserInputError` so that front ends show the message alone: whoever runs the service fixes it
    (free space, or point `RVC_JOBS_DIR` at a larger disk), not the maintainers.
    """
