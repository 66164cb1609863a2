"""Which code a run was made with: the package version and, when the package is a git checkout,
its commit and the tracked files that differ from it.

Training logs it at every start and keeps it in the checkpoints it writes, so a results table
can be traced to the code that made it, and a run started on uncommitted changes says so
(two runs of one config on one machine are the same to the bit; on different code they are not).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from asr import __version__

PACKAGE_ROOT = Path(__file__).resolve().parents[1]  # the folder holding asr/: a checkout, or site-packages
NAMED = 3  # changed files named before "and N more"


def _git(root: Path, *args: str) -> str:
    done = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=10)
    if done.returncode != 0:
        raise OSError(done.stderr.strip())
    return done.stdout


def code_version(root: Path = PACKAGE_ROOT) -> str:
    """``asr 0.1.0, git 0123456789ab`` (``... with uncommitted changes to asr/augment.py``), or
    ``asr 0.1.0`` alone where ``root`` is not the top of a git checkout (an installed package:
    a repository that merely contains site-packages says nothing about asr's code) or git is
    missing."""
    name = f"asr {__version__}"
    try:
        if Path(_git(root, "rev-parse", "--show-toplevel").strip()).resolve() != root.resolve():
            return name
        commit = _git(root, "rev-parse", "--short=12", "HEAD").strip()
        changed = [line[3:].split(" -> ")[-1] for line in
                   _git(root, "status", "--porcelain", "--untracked-files=no").splitlines() if line.strip()]
    except (OSError, subprocess.SubprocessError):
        return name
    name += f", git {commit}"
    if changed:
        more = f" and {len(changed) - NAMED} more" if len(changed) > NAMED else ""
        name += f" with uncommitted changes to {', '.join(changed[:NAMED])}{more}"
    return name
