"""Transcripts as files: plain text, JSON, SubRip (SRT), WebVTT and tab-separated segments.

Subtitles follow the usual broadcast rules (the BBC's and Netflix's guidelines agree on
them): at most two lines of at most 42 characters a cue, a cue on screen for at most 7
seconds and, where the next cue leaves room, at least 1 second; cues never overlap. A cue
ends at a pause in the speech (a segment's end, or ``CUE_GAP`` seconds between words) rather
than run across it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from asr.transcribe import Transcript, Word

FORMATS = ("txt", "json", "srt", "vtt", "tsv")
MAX_LINE = 42  # characters a subtitle line
MAX_LINES = 2
MAX_CUE = 7.0  # seconds on screen, at most
MIN_CUE = 1.0  # seconds on screen, at least (where the next cue allows)
CUE_GAP = 1.0  # a pause this long between words starts a new cue


@dataclass(frozen=True)
class Cue:
    start: float
    end: float
    lines: list[str]


def wrap(words: list[str], width: int = MAX_LINE) -> list[str]:
    """Words into lines of at most ``width`` characters (a longer word is a line of its own)."""
    lines: list[str] = []
    for word in words:
        if lines and len(lines[-1]) + 1 + len(word) <= width:
            lines[-1] += " " + word
        else:
            lines.append(word)
    return lines


def cues(transcript: Transcript) -> list[Cue]:
    """Subtitle cues from the transcript's timed words (see the module's rules)."""
    groups: list[list[Word]] = []
    for segment in transcript.segments:
        current: list[Word] = []
        for word in segment.words:
            if current and (word.start - current[-1].end >= CUE_GAP or word.end - current[0].start > MAX_CUE
                            or len(wrap([w.word for w in current] + [word.word])) > MAX_LINES):
                groups.append(current)
                current = []
            current.append(word)
        if current:
            groups.append(current)
    result: list[Cue] = []
    for i, group in enumerate(groups):
        start = max(group[0].start, result[-1].end if result else 0.0)
        end = max(group[-1].end, start + MIN_CUE)
        if i + 1 < len(groups):
            end = min(end, groups[i + 1][0].start)
        end = max(min(end, start + MAX_CUE), start + 0.001)
        result.append(Cue(start, end, wrap([w.word for w in group])))
    return result


def _clock(seconds: float, separator: str) -> str:
    ms = max(0, round(seconds * 1000))
    hours, ms = divmod(ms, 3_600_000)
    minutes, ms = divmod(ms, 60_000)
    secs, ms = divmod(ms, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{ms:03d}"


def to_srt(transcript: Transcript) -> str:
    return "".join(f"{n}\n{_clock(c.start, ',')} --> {_clock(c.end, ',')}\n" + "\n".join(c.lines) + "\n\n"
                   for n, c in enumerate(cues(transcript), start=1))


def to_vtt(transcript: Transcript) -> str:
    return "WEBVTT\n\n" + "".join(f"{_clock(c.start, '.')} --> {_clock(c.end, '.')}\n" + "\n".join(c.lines) + "\n\n"
                                  for c in cues(transcript))


def to_tsv(transcript: Transcript) -> str:
    """One segment a line: start and end in milliseconds, then the text (whisper's layout)."""
    rows = [f"{round(s.start * 1000)}\t{round(s.end * 1000)}\t{s.text}" for s in transcript.segments]
    return "start\tend\ttext\n" + "".join(row + "\n" for row in rows)


def to_json(transcript: Transcript) -> str:
    return json.dumps(transcript.as_dict(), ensure_ascii=False)


def to_txt(transcript: Transcript) -> str:
    return transcript.text + "\n"


WRITERS = {"txt": to_txt, "json": to_json, "srt": to_srt, "vtt": to_vtt, "tsv": to_tsv}


def render(transcript: Transcript, fmt: str) -> str:
    return WRITERS[fmt](transcript)
