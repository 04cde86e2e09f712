"""The one base class of every error drnas reports to a user as a single line (the CLI catches it)."""


class DrnasError(Exception):
    """A problem with the user's input or run; the message names the problem and the fix."""
