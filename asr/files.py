"""Writing files so that a kill or a full disk never leaves half of one.

    with atomic_write("exp/best.pt") as tmp:
        torch.save(state, tmp)

The block writes a temporary file beside the target; only when it ends without error is
the temporary file renamed over the target (``os.replace``, atomic on POSIX). On any error
the temporary file is removed, and a full disk becomes one line naming the file.
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterator
from pathlib import Path

from asr.errors import AsrError


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, fsync: bool = False) -> Iterator[Path]:
    """Yields the temporary path to write; ``fsync``: on disk before the rename makes it visible."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    try:
        yield tmp
        if fsync:
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        tmp.unlink(missing_ok=True)
        if is_disk_full(e):
            raise AsrError(f"{path}: disk full while writing it; free some space and rerun") from None
        raise


def is_disk_full(error: BaseException) -> bool:
    """ENOSPC (or a quota), as Python raises it, or as torch.save reports a failed write."""
    if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    return isinstance(error, RuntimeError) and "file write failed" in str(error)
