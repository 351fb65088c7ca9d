"""Errors a user can cause (the CLI prints their one-line message and exits 2), and failures of
the environment (one line, exit 1)."""

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
    """The machine failed the run (a full disk, a quota, a download that fails): not the user's
    input. The CLI prints the one-line message and exits 1; the results folder is left without
    metrics.json (incomplete) and without temp files."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).split()))
