"""One exception type for every user-facing problem.

The CLI prints an ``AsrError`` as a single line and exits non-zero; anything
else is a bug and keeps its traceback.
"""


class AsrError(Exception):
    """A problem with the user's input (file, manifest, config, checkpoint)."""
