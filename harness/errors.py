"""Errors a user can fix. The CLI prints them on one line and exits with code 2."""


class UserError(Exception):
    """Bad input: the message names the file, the field and the fix."""
