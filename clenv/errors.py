"""Errors a user can cause. The CLI prints their one-line message and exits 2."""

from __future__ import annotations


class UserError(Exception):
    """A problem the user can fix: the message is one line naming the problem and the fix."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).split()))


class ConfigError(UserError):
    """A config value is wrong. ``key`` is the dotted YAML path of the value."""

    def __init__(self, key: str, problem: str, fix: str | None = None) -> None:
        self.key = key
        text = f"{key}: {problem}" if key else problem
        if fix:
            text += f"; {fix}"
        super().__init__(text)


class DataError(UserError):
    """A data root or file is missing or malformed."""


class EnvironmentFailure(Exception):
    """A failure of the machine or the network, not of the user's input (a download that fails or
    does not match its checksum, a full disk). The CLI prints the one-line message and exits 1."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).split()))
