"""Offline speech synthesis as a data source: the voices of Debian's engines, and one call
that speaks a text into a WAV file.

Engines (installed by ``recipes/synth/install_voices.sh``): espeak-ng with its English
accents and voice variants (formant sets), espeak-ng driving the MBROLA diphone voices
(the four English ones, and sixteen of other languages reading English through espeak-ng's
phoneme mapping), flite, SVOX pico, RHVoice (six English voices) and Festival (four diphone
voices and an HTS voice). Rate varies per call on every engine, pitch on espeak-ng, MBROLA,
RHVoice and pico. Recipes choose which voices train and which are held out.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from asr.audio import audio_duration
from asr.corpus import Conversion, convert
from asr.errors import AsrError

ESPEAK_ACCENTS = ("en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan", "en-029", "en-us-nyc",
                  "en-gb-x-gbcwmd")
ESPEAK_VARIANTS = ("", "f1", "f2", "f4", "f5", "m1", "m2", "m3", "m4", "m6", "m7", "m8", "klatt", "klatt2",
                   "klatt4", "Alex", "Annie", "adam", "aunty", "belinda", "benjamin", "david", "edward", "grandma",
                   "grandpa", "john", "linda", "max", "paul", "quincy", "robert", "shelby", "steph", "travis",
                   "victor")
MBROLA_VOICES = ("mb-us1", "mb-us2", "mb-us3", "mb-en1")
# Diphone sets recorded for other languages, reading English: espeak-ng maps each English
# phoneme to the nearest one of the set, so the speech is accented, but it is MBROLA's
# concatenation and voice quality, of which the four English sets give few examples.
MBROLA_ACCENTED_VOICES = tuple(f"mb-{db}-en" for db in ("af1", "de1", "de2", "de3", "de4", "de5", "de6", "fr1",
                                                         "fr4", "gr2", "hu1", "nl2", "pl1", "ro1", "sw1", "sw2"))
FLITE_VOICES = ("kal", "kal16", "slt", "awb", "rms")
PICO_VOICES = ("en-US", "en-GB")
RHVOICE_VOICES = ("slt", "clb", "bdl", "alan", "evgeniy-eng", "lyubov")
FESTIVAL_VOICES = ("kal_diphone", "ked_diphone", "rab_diphone", "don_diphone", "cmu_us_slt_arctic_hts")
PROGRAMS = {"espeak": "espeak-ng", "flite": "flite", "pico": "pico2wave", "rhvoice": "RHVoice-test",
            "festival": "text2wave"}
# A drawn utterance picks a family by these shares, then one of its voices: espeak-ng has hundreds
# of voices and the other engines a few each, so their families get more than their count's share.
FAMILY_SHARE = {"espeak": 0.4, "mbrola": 0.2, "mbrola-accented": 0.15, "flite": 0.25, "pico": 0.15, "rhvoice": 0.2,
                "festival": 0.15}


@dataclass(frozen=True)
class Voice:
    name: str  # unique, used in file names and manifests
    engine: str  # a key of PROGRAMS: espeak | flite | pico | rhvoice | festival
    id: str  # the engine's voice name


def espeak_voices(*ids: str) -> list[Voice]:
    """espeak-ng voices by id: an accent, optionally ``+variant``, or an MBROLA voice (``mb-us1``)."""
    return [Voice(f"espeak-{i.replace('+', '-')}", "espeak", i) for i in ids]


def flite_voices(*ids: str) -> list[Voice]:
    return [Voice(f"flite-{i}", "flite", i) for i in ids]


def pico_voices(*ids: str) -> list[Voice]:
    return [Voice(f"pico-{i}", "pico", i) for i in ids]


def rhvoice_voices(*ids: str) -> list[Voice]:
    return [Voice(f"rhvoice-{i}", "rhvoice", i) for i in ids]


def festival_voices(*ids: str) -> list[Voice]:
    return [Voice(f"festival-{i.split('_')[0] if i.endswith('_diphone') else i}", "festival", i) for i in ids]


def voice_families(accents=ESPEAK_ACCENTS, variants=ESPEAK_VARIANTS) -> dict[str, list[Voice]]:
    """Every voice, by engine family: espeak (accent x variant), mbrola, mbrola-accented, flite, pico,
    rhvoice, festival."""
    return {
        "espeak": espeak_voices(*(a + (f"+{v}" if v else "") for a in accents for v in variants)),
        "mbrola": espeak_voices(*MBROLA_VOICES),
        "mbrola-accented": espeak_voices(*MBROLA_ACCENTED_VOICES),
        "flite": flite_voices(*FLITE_VOICES),
        "pico": pico_voices(*PICO_VOICES),
        "rhvoice": rhvoice_voices(*RHVOICE_VOICES),
        "festival": festival_voices(*FESTIVAL_VOICES),
    }


def draw_voice(rng: random.Random, families: dict[str, list[Voice]], share: dict = FAMILY_SHARE) -> Voice:
    """A family by ``share``, then one of its voices uniformly."""
    names = list(families)
    return rng.choice(families[rng.choices(names, [share.get(n, 1.0) for n in names])[0]])


# Where espeak-ng looks for an MBROLA diphone set (besides its own data folder), {0} its name
MBROLA_PATHS = ("/usr/share/mbrola/{0}", "/usr/share/mbrola/{0}/{0}", "/usr/share/mbrola/voices/{0}")


def mbrola_database(voice: Voice) -> str | None:
    """The MBROLA diphone set an espeak-ng voice speaks with (mb-us1: us1, mb-de1-en: de1), else None."""
    return voice.id[3:].split("-")[0] if voice.engine == "espeak" and voice.id.startswith("mb-") else None


def mbrola_installed(database: str) -> bool:
    return any(os.path.isfile(path.format(database)) for path in MBROLA_PATHS)


def missing_engines(voices) -> list[str]:
    """What ``voices`` need that is not installed, sorted: engine programs, the ``mbrola`` program,
    and MBROLA diphone sets by their Debian package (mbrola-us1)."""
    programs, databases = set(), set()
    for voice in voices:
        programs.add(PROGRAMS[voice.engine])
        database = mbrola_database(voice)
        if database:
            programs.add("mbrola")
            databases.add(database)
    return sorted([p for p in programs if shutil.which(p) is None]
                  + [f"mbrola-{d}" for d in databases if not mbrola_installed(d)])


def check_engines(voices) -> None:
    missing = missing_engines(voices)
    if missing:
        raise AsrError(f"speech engine(s) not installed: {', '.join(missing)} (run recipes/synth/install_voices.sh)")


def synth_command(voice: Voice, text: str, text_file: Path, wav: Path, rate: float, pitch: int) -> list[str]:
    """The engine's command line for ``text`` (RHVoice and Festival read it from ``text_file``, which
    holds the same text); ``rate`` scales the speaking rate (1 = the voice's default), ``pitch`` is
    0-100 (50 = the voice's default)."""
    if voice.engine == "espeak":
        return ["espeak-ng", "-v", voice.id, "-s", str(round(170 * rate)), "-p", str(pitch), "-w", str(wav), text]
    if voice.engine == "flite":
        return ["flite", "-voice", voice.id, "--setf", f"duration_stretch={1 / rate:.3f}", "-t", text, "-o", str(wav)]
    if voice.engine == "rhvoice":  # rate and pitch in percent of the default; RHVoice's rate floor is 50
        return ["RHVoice-test", "-p", voice.id, "-r", str(round(100 * rate)), "-t", str(2 * pitch),
                "-i", str(text_file), "-o", str(wav)]
    if voice.engine == "festival":
        return ["text2wave", "-eval", f"(voice_{voice.id})", "-eval",
                f"(Parameter.set 'Duration_Stretch {1 / rate:.3f})", str(text_file), "-o", str(wav)]
    # pico: rate and pitch through its markup, in percent of the default. pico reads "&" as "and"
    # inside the markup too, but would spell out an entity (&lt;), so "<" and ">" cannot be escaped:
    # they become spaces ("salt <b> pepper" as it is came out 1.1 s longer than "salt b pepper").
    plain = text.replace("<", " ").replace(">", " ")
    marked = f"<speed level='{round(100 * rate)}'><pitch level='{2 * pitch}'>{plain}</pitch></speed>"
    return ["pico2wave", "-l", voice.id, "-w", str(wav), marked]


ENGINE_TIMEOUT = 120.0  # seconds an engine may take for one utterance before it counts as hung


def synthesize(voice: Voice, text: str, out: Path, sample_rate: int, rate: float = 1.0, pitch: int = 50,
               timeout: float = ENGINE_TIMEOUT) -> float:
    """Speak ``text`` into ``out`` (``sample_rate``, 16-bit WAV), atomically; returns the duration in seconds.
    An existing ``out`` is kept and only measured (as ``convert`` keeps its targets), so a rerun resumes.
    An engine that runs past ``timeout`` seconds is killed and reported."""
    if out.is_file():
        return audio_duration(out)
    with tempfile.TemporaryDirectory() as tmp:
        raw, text_file = Path(tmp) / "raw.wav", Path(tmp) / "text.txt"
        text_file.write_text(text + "\n")
        try:
            run = subprocess.run(synth_command(voice, text, text_file, raw, rate, pitch), capture_output=True,
                                 text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AsrError(f"{voice.name}: {voice.engine} did not finish {text[:40]!r} within {timeout:g} s "
                           "(killed); is the engine hung?") from None
        if run.returncode != 0 or not raw.is_file() or raw.stat().st_size <= 44:
            raise AsrError(f"{voice.name}: synthesis failed for {text!r} ({run.stderr.strip() or 'no audio'})")
        return convert(Conversion(raw, out, sample_rate))  # resampled, written atomically


@dataclass(frozen=True)
class Utterance:
    """One thing to say: where its audio goes (relative to the corpus folder), who says it, how."""

    path: Path
    voice: Voice
    text: str
    rate: float = 1.0
    pitch: int = 50

    def entry(self, duration: float) -> dict:
        """Its manifest entry."""
        return {"audio_filepath": str(self.path), "duration": round(duration, 4), "text": self.text,
                "speaker": self.voice.name, "rate": self.rate, "pitch": self.pitch}


def synthesize_all(utterances: list[Utterance], out_dir: Path, sample_rate: int,
                   workers: int = os.cpu_count() or 1) -> list[dict]:
    """Speak every utterance into ``out_dir`` (engines in parallel) and return their manifest entries.
    A file that exists is kept and only measured, so an interrupted preparation resumes."""
    check_engines({u.voice for u in utterances})

    def one(u: Utterance) -> dict:
        return u.entry(synthesize(u.voice, u.text, out_dir / u.path, sample_rate, u.rate, u.pitch))

    with ThreadPoolExecutor(max(1, workers)) as pool:
        return list(pool.map(one, utterances))
