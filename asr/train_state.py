"""Resumable training state: everything a killed run needs to go on where it was.

A state file holds the model and feature statistics, the optimizer, the LR schedule,
the step, the epoch and how many of its batches are done, every random generator,
the best dev score so far and the weights kept for averaging. Files are written to a
temporary name and renamed, so a kill at any moment leaves either the old file or
the new one; the newest file that loads is the one a resume uses, and a damaged
one is skipped with a message. States hold tensors and plain values only and load with
``weights_only=True``, so a crafted state file cannot run code.

    exp_dir/state/step-00000120.pt ... (the newest ``keep`` files)
"""

from __future__ import annotations

import logging
import os
import pickle
import random
import re
import zipfile
from pathlib import Path

import numpy as np
import torch

from asr.errors import reason
from asr.files import atomic_write

log = logging.getLogger("asr.train")

FORMAT = "asr-train-state"
_NAME = re.compile(r"step-(\d+)\.pt$")


def state_dir(exp_dir: str | os.PathLike) -> Path:
    return Path(exp_dir) / "state"


def rng_states(augment_rng: torch.Generator) -> dict:
    """Every generator's state, as tensors and plain values only (the file loads with
    ``weights_only=True``: nothing in it can run code)."""
    kind, keys, position, has_gauss, gauss = np.random.get_state()
    states = {"python": random.getstate(),
              "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "position": int(position),
                        "has_gauss": int(has_gauss), "gauss": float(gauss)},
              "torch": torch.get_rng_state(), "augment": augment_rng.get_state()}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def restore_rng_states(states: dict, augment_rng: torch.Generator) -> None:
    random.setstate(states["python"])
    saved = states["numpy"]
    np.random.set_state((saved["kind"], saved["keys"].numpy().astype(np.uint32), saved["position"],
                         saved["has_gauss"], saved["gauss"]))
    torch.set_rng_state(states["torch"])
    augment_rng.set_state(states["augment"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def save_state(exp_dir: str | os.PathLike, step: int, state: dict, keep: int) -> Path:
    """Write ``state`` for ``step`` atomically, then delete all but the newest ``keep`` files."""
    path = state_dir(exp_dir) / f"step-{step:08d}.pt"
    with atomic_write(path, fsync=True) as tmp:  # on disk before the rename makes it the newest state
        torch.save({"format": FORMAT, "step": step, **state}, tmp)
    for old in state_files(exp_dir)[keep:]:
        old.unlink(missing_ok=True)
    return path


def set_aside(exp_dir: str | os.PathLike) -> Path | None:
    """Before a fresh run: move an earlier run's states to ``exp_dir/state.old`` (replacing the
    one before), so that they cannot pass for this run's and are not lost. Returns that folder,
    or None when there was nothing to move."""
    import shutil

    old = state_files(exp_dir)
    if not old:
        return None
    aside = Path(exp_dir) / "state.old"
    shutil.rmtree(aside, ignore_errors=True)
    os.replace(state_dir(exp_dir), aside)
    return aside


def state_files(exp_dir: str | os.PathLike) -> list[Path]:
    """State files, newest first."""
    folder = state_dir(exp_dir)
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _NAME.search(p.name))]
    return [p for _, p in sorted(found, reverse=True)]


def load_latest_state(exp_dir: str | os.PathLike) -> dict | None:
    """The newest state that loads; damaged ones are reported and skipped. None if there is none."""
    if state_dir(exp_dir).is_dir():
        for partial in state_dir(exp_dir).glob("*.tmp"):  # a write that a kill cut short
            partial.unlink(missing_ok=True)
    for path in state_files(exp_dir):
        try:
            if not zipfile.is_zipfile(path):
                raise ValueError("not a complete PyTorch archive")
            state = torch.load(path, map_location="cpu", weights_only=True)  # tensors and plain values only
            if not isinstance(state, dict) or state.get("format") != FORMAT:
                raise ValueError("not an asr training state")
        except (RuntimeError, EOFError, OSError, ValueError, pickle.UnpicklingError, zipfile.BadZipFile) as e:
            log.warning("%s: damaged training state (%s); trying the one before", path,
                        reason(e, 120))
            continue
        state["path"] = str(path)
        return state
    return None
