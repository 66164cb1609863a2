"""What ``asr transcribe`` reads: files, folders of audio, manifests, standard input.

Each input gets a ``label`` (how results name it) and a ``name`` (the output file name
without its extension, under ``--output-dir``): a file's stem, or for audio found in a
folder its path inside that folder, so that a tree of recordings gives a tree of outputs.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from asr.errors import AsrError

# What libsndfile reads, by extension, when a folder is searched.
AUDIO_EXTENSIONS = {".wav", ".wave", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff", ".aifc",
                    ".au", ".snd", ".sph", ".nist", ".w64", ".rf64", ".caf", ".voc"}
MANIFEST_EXTENSIONS = {".jsonl", ".json"}


@dataclass(frozen=True)
class Input:
    path: str  # what is read
    label: str  # how the results name it
    name: str  # output file name, extension left off


def collect_inputs(specs: list[str], stdin_path: str | None = None) -> list[Input]:
    """Expand files, folders (recursively, audio extensions only, sorted), manifests and ``-``.
    A missing input, an empty folder, a bad manifest line or two inputs that would write the
    same output name are one-line errors, before anything is transcribed."""
    inputs: list[Input] = []
    for spec in specs:
        path = Path(spec)
        if spec == "-":
            inputs.append(Input(str(stdin_path), "-", "stdin"))
        elif path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS and p.is_file())
            if not found:
                raise AsrError(f"{path}: no audio files in this folder (looked for {', '.join(sorted(AUDIO_EXTENSIONS))})")
            inputs += [Input(str(p), str(p), str(p.relative_to(path).with_suffix(""))) for p in found]
        elif path.suffix.lower() in MANIFEST_EXTENSIONS and path.is_file():
            inputs += _manifest_inputs(path)
        else:  # a file, or a path that load_audio reports as missing when it comes to it
            inputs.append(Input(str(path), str(path), path.stem))
    seen: dict[str, str] = {}
    for i in inputs:
        if i.name in seen and seen[i.name] != i.path:
            raise AsrError(f"{seen[i.name]} and {i.path} would both be written as {i.name!r}: "
                           "transcribe them in separate calls or folders")
        seen[i.name] = i.path
    return inputs


def _manifest_inputs(path: Path) -> list[Input]:
    inputs = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
                audio = Path(entry["audio_filepath"])
            except (json.JSONDecodeError, KeyError, TypeError):
                raise AsrError(f"{path}:{number}: expected a JSON object with 'audio_filepath'") from None
            audio = audio if audio.is_absolute() else path.parent / audio
            inputs.append(Input(str(audio), str(audio), audio.stem))
    if not inputs:
        raise AsrError(f"{path}: manifest has no utterances")
    return inputs


@contextlib.contextmanager
def stdin_to_file():
    """Standard input copied to a temporary file (removed afterwards), so that any format,
    even one libsndfile must seek in, is read in blocks like a file."""
    fd, name = tempfile.mkstemp(prefix="asr-stdin-")
    try:
        with os.fdopen(fd, "wb") as f:
            shutil.copyfileobj(sys.stdin.buffer, f, 1 << 20)
        yield name
    finally:
        os.unlink(name)
