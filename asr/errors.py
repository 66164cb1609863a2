"""One exception type for every user-facing problem.

The CLI prints an ``AsrError`` as a single line and exits non-zero; anything
else is a bug and keeps its traceback.
"""


def reason(error: BaseException, limit: int = 160) -> str:
    """The first line of ``error``'s message, at most ``limit`` characters, or its type's name
    when it has no message: what goes in parentheses after a one-line error."""
    text = str(error).strip()
    return text.splitlines()[0][:limit] if text else type(error).__name__


class AsrError(Exception):
    """A problem with the user's input (file, manifest, config, checkpoint)."""


class Interrupted(AsrError):
    """Training got SIGINT or SIGTERM and saved its state first; the exit code is 128 + signal."""

    def __init__(self, signum: int, path=None):
        import signal

        self.signum = signum
        saved = f"training state saved in {path}" if path else "rank 0 saved the training state"
        super().__init__(f"interrupted by {signal.Signals(signum).name}; {saved} "
                         "(asr train --resume goes on from there)")

