"""User-facing errors: anything a person can cause raises `UserError`; the CLI prints it and exits 2."""

from __future__ import annotations


class UserError(Exception):
    """A problem with the user's input (recipe, files, arguments), explained in words.

    The message names the key, file, line or tensor at fault and says what was expected.
    The CLI turns it into a one-paragraph error and a non-zero exit instead of a traceback.
    """

    def __init__(self, message: str, problems: list[str] | None = None):
        self.problems = list(problems or [])
        if self.problems:
            message = message + "\n" + "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(message)
