"""Long recordings, batching, subtitle formats, inputs and the Python API, on real FSDD speech."""

from __future__ import annotations

import json
import subprocess
import sys
import tracemalloc

import numpy as np
import pytest
import soundfile as sf

from asr.audio import load_audio, stream_audio
from asr.segment import Piece, SegmentOptions, segment_stream
from conftest import OVERFIT_ITEMS, WORDS, fsdd_file

RATE = 8000


def build_recording(path, repeats: int, seed: int = 0, noise: float = 3e-4, pauses=(0.6, 1.2)):
    """The tiny model's six recordings, ``repeats`` times over in random order, ``pauses``
    (seconds, at random in that range) of faint noise between them. Returns the true (word,
    start, end) of each."""
    rng = np.random.default_rng(seed)
    clips = [(WORDS[d], load_audio(fsdd_file(d, s, t), RATE)) for d, s, t in OVERFIT_ITEMS]
    parts, truth, position = [], [], 0
    for _ in range(repeats):
        for k in rng.permutation(len(clips)):
            word, audio = clips[k]
            pause = np.zeros(int(rng.uniform(*pauses) * RATE), np.float32)
            truth.append((word, (position + len(pause)) / RATE, (position + len(pause) + len(audio)) / RATE))
            parts += [pause, audio]
            position += len(pause) + len(audio)
    audio = np.concatenate(parts + [np.zeros(RATE // 2, np.float32)])
    audio += rng.normal(0, noise, len(audio)).astype(np.float32)
    sf.write(path, audio, RATE, subtype="PCM_16")
    return truth


def check_tiling(pieces: list[Piece], audio: np.ndarray, options: SegmentOptions) -> None:
    assert pieces[0].keep_start == 0 and pieces[-1].keep_end == len(audio)
    assert all(a.keep_end == b.keep_start for a, b in zip(pieces, pieces[1:]))
    for p in pieces:
        assert np.array_equal(p.audio, audio[p.start:p.end])
        assert p.start <= p.keep_start < p.keep_end <= p.end
        assert p.keep_end - p.keep_start <= options.max_seconds * RATE
        assert p.keep_start - p.start <= options.context * RATE and p.end - p.keep_end <= options.context * RATE


def test_pieces_cut_at_pauses_tile_the_recording(tmp_path):
    truth = build_recording(tmp_path / "long.wav", 4)
    audio = load_audio(tmp_path / "long.wav", RATE)
    options = SegmentOptions(max_seconds=8, min_pause=0.5)
    pieces = list(segment_stream(stream_audio(tmp_path / "long.wav", RATE, block_seconds=3), RATE, options))
    check_tiling(pieces, audio, options)
    # a cut near the end of a block waits for the next block: every piece reads its second past the cut
    assert all(p.end == min(p.keep_end + round(options.context * RATE), len(audio)) for p in pieces)
    # every cut falls in a pause, never inside a word
    cuts = [p.keep_start / RATE for p in pieces[1:]]
    assert all(not (start < cut < end) for cut in cuts for _, start, end in truth)
    assert len(pieces) >= len(truth) // 2


def test_where_nobody_pauses_pieces_are_cut_by_length_with_context():
    rng = np.random.default_rng(0)
    audio = (0.1 * rng.standard_normal(95 * RATE)).astype(np.float32)  # loud steady noise: no pause
    options = SegmentOptions(max_seconds=20, context=1.0)
    pieces = list(segment_stream((audio[i:i + 7 * RATE] for i in range(0, len(audio), 7 * RATE)), RATE, options))
    check_tiling(pieces, audio, options)
    assert len(pieces) >= 5 and all(p.end - p.keep_end == RATE for p in pieces[:-1])  # a second of context


def test_a_recording_no_longer_than_the_maximum_is_one_piece(tmp_path):
    audio = load_audio(fsdd_file(3, "theo", 1), RATE)
    (piece,) = segment_stream([audio[:500], audio[500:]], RATE)
    assert (piece.start, piece.keep_start, piece.keep_end, piece.end) == (0, 0, len(audio), len(audio))


def test_streamed_blocks_equal_the_whole_file_at_any_rate(tmp_path):
    audio = load_audio(fsdd_file(7, "lucas", 2), RATE)
    flac = tmp_path / "a.flac"
    sf.write(flac, np.stack([audio, audio * 0.5], axis=1).repeat(4, axis=0)[:len(audio) * 4 - 3], 32000)
    whole = load_audio(flac, 16000)
    blocks = list(stream_audio(flac, 16000, block_seconds=0.1))
    assert len(blocks) >= 4
    assert np.allclose(np.concatenate(blocks), whole, atol=1e-6)


def test_segmenting_memory_stays_flat_as_the_recording_doubles():
    """Peak Python/numpy memory while cutting 2 and 4 minutes of audio into pieces."""
    rng = np.random.default_rng(1)
    speech = (0.2 * rng.standard_normal(3 * RATE)).astype(np.float32)
    pause = np.zeros(RATE, np.float32)

    def blocks(minutes):
        for _ in range(minutes * 15):
            yield np.concatenate([speech, pause])

    peaks = []
    for minutes in (2, 4):
        tracemalloc.start()
        count = sum(1 for _ in segment_stream(blocks(minutes), RATE))
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
        assert count == minutes * 15
    assert peaks[1] < 1.2 * peaks[0]


@pytest.mark.slow
def test_long_recording_gives_segments_and_timed_words(tiny_model, tmp_path):
    """A 25-second recording read in pieces gives what each piece gives alone, put back in
    file time: the words, their times, and subtitles that follow the rules and parse with
    other people's parsers. (The tiny model knows six trimmed recordings and nothing else, so
    what it hears in the pauses is no measure of accuracy: scripts/bench_longform.py is.)"""
    import asr

    checkpoint, _ = tiny_model
    truth = build_recording(tmp_path / "long.wav", 8, pauses=(0.3, 0.6))
    options = SegmentOptions(max_seconds=8, min_pause=0.25, context=0)
    with asr.load(checkpoint, segments=options) as model:
        result = model.transcribe(tmp_path / "long.wav")
        pieces = list(segment_stream(stream_audio(tmp_path / "long.wav", RATE), RATE, options))
        alone = [(p, model.transcribe(p.audio)) for p in pieces]
    assert len(pieces) >= 12 and result.duration == pytest.approx(truth[-1][2] + 0.5, abs=1e-3)
    assert result.text == " ".join(t.text for _, t in alone if t.text)
    expected = [(w.word, w.start + p.start / RATE, w.end + p.start / RATE) for p, t in alone for w in t.words]
    assert [w.word for w in result.words] == [word for word, _, _ in expected]
    times = [t for w in result.words for t in (w.start, w.end)]
    # the same to within one 10 ms energy frame (file time and piece time round differently)
    assert times == pytest.approx([t for _, start, end in expected for t in (start, end)], abs=0.0101)
    assert [w.word for w in result.words] == result.text.split()
    assert all(0 <= w.confidence <= 1 for w in result.words)
    for segment in result.segments:
        assert segment.words and segment.start == segment.words[0].start and segment.end == segment.words[-1].end
    import srt
    import webvtt

    from asr.outputs import MAX_CUE, MAX_LINE, MAX_LINES, to_srt, to_vtt
    subtitles = list(srt.parse(to_srt(result)))
    captions = webvtt.from_string(to_vtt(result)).captions
    assert " ".join(s.content.replace("\n", " ") for s in subtitles).split() == result.text.split()
    assert [c.text for c in captions] == [s.content for s in subtitles]
    for a, b in zip(subtitles, subtitles[1:]):
        assert a.end <= b.start
    for s in subtitles:
        lines = s.content.split("\n")
        assert len(lines) <= MAX_LINES and all(len(line) <= MAX_LINE for line in lines)
        assert 0 < (s.end - s.start).total_seconds() <= MAX_CUE


def test_words_widen_over_their_speech_and_short_closures_but_not_into_neighbours():
    from asr.align import WordTime, snap_to_speech

    # 10 ms frames from t = 1 s: "eight" is speech at 1.00-1.20, a silent closure at
    # 1.20-1.24, its burst at 1.24-1.30; "six" is speech at 1.50-1.80.
    speech = np.zeros(100, bool)
    speech[0:20] = speech[24:30] = speech[50:80] = True
    words = [WordTime("eight", 1.05, 1.15), WordTime("six", 1.60, 1.70)]
    eight, six = snap_to_speech(words, speech, 0.01, 1.0, 2.0)
    assert (eight.start, eight.end) == pytest.approx((1.0, 1.30))  # through the 40 ms closure
    assert (six.start, six.end) == pytest.approx((1.50, 1.80))
    eight, _ = snap_to_speech(words, speech, 0.01, 1.0, 2.0, bridge=0.03)
    assert eight.end == pytest.approx(1.20)  # a closure longer than the bridge ends the word
    # A neighbour's speech is never taken: the words touch at most.
    close = [WordTime("eight", 1.05, 1.15), WordTime("six", 1.22, 1.28)]
    eight, six = snap_to_speech(close, speech, 0.01, 1.0, 2.0)
    assert eight.end <= six.start


def test_subtitle_cues_follow_the_rules():
    import srt

    from asr.outputs import MAX_CUE, MAX_LINE, cues, to_srt
    from asr.transcribe import Segment, Transcript, Word

    # 40 words, 0.3 s each, 0.1 s apart, in two segments: the cues must split by length and time
    words = [Word(f"word{i:02d}", 0.4 * i, 0.4 * i + 0.3) for i in range(40)]
    segments = [Segment(0.0, 7.9, "", words[:20]), Segment(8.0, 15.9, "", words[20:])]
    transcript = Transcript("x.wav", " ".join(w.word for w in words), 16.0, segments=segments)
    found = cues(transcript)
    assert all(len(line) <= MAX_LINE for c in found for line in c.lines)
    assert all(c.end - c.start <= MAX_CUE for c in found)
    assert " ".join(" ".join(c.lines) for c in found) == transcript.text
    assert not any(c.start < 8.0 < c.end for c in found)  # no cue runs across a segment's end
    parsed = list(srt.parse(to_srt(transcript)))
    assert [p.index for p in parsed] == list(range(1, len(found) + 1))
    assert parsed[0].start.total_seconds() == 0.0 and parsed[1].start.total_seconds() == pytest.approx(found[1].start)


@pytest.mark.slow
def test_many_files_batched_equal_one_at_a_time(tiny_model):
    from asr.checkpoint import load_checkpoint
    from asr.decoding import GreedyDecoder
    from asr.transcribe import transcribe_files

    checkpoint, _ = tiny_model
    recognizer = load_checkpoint(checkpoint)
    files = [fsdd_file(d, s, t) for d, s, t in OVERFIT_ITEMS] + [fsdd_file(5, "george", 3)]
    greedy = GreedyDecoder(recognizer.vocab)
    together = transcribe_files(recognizer, files, greedy, timestamps=True)
    apart = [transcribe_files(recognizer, [f], greedy, timestamps=True)[0] for f in files]
    assert [(t.path, t.text, t.duration) for t in together] == [(t.path, t.text, t.duration) for t in apart]
    assert [w.as_dict() for t in together for w in t.words] == [w.as_dict() for t in apart for w in t.words]
    # padding in a batch moves the float sums by rounding only
    assert [t.nbest[0].score for t in together] == pytest.approx([t.nbest[0].score for t in apart], abs=1e-4)
    assert [t.text for t in together[:6]] == [WORDS[d] for d, _, _ in OVERFIT_ITEMS]


@pytest.mark.slow
def test_python_api_takes_paths_and_arrays(tiny_model):
    import asr
    from asr.errors import AsrError

    checkpoint, _ = tiny_model
    with asr.load(checkpoint, decoder="greedy") as model:
        assert model.sample_rate == RATE
        assert model.transcribe(fsdd_file(8, "jackson", 10)).text == "eight"
        assert model.transcribe(load_audio(fsdd_file(2, "jackson", 10), RATE)).text == "two"
        with pytest.raises(AsrError, match="missing.wav: audio file not found"):
            model.transcribe("missing.wav")
        with pytest.raises(AsrError, match="audio array"):
            model.transcribe(np.zeros((2, 100), np.float32))


def run_asr(*args, stdin=None):
    return subprocess.run([sys.executable, "-m", "asr", *map(str, args)], capture_output=True, text=stdin is None,
                          input=stdin)


@pytest.mark.slow
def test_folder_with_a_broken_file_manifest_and_stdin(tiny_model, tmp_path):
    checkpoint, manifest = tiny_model
    folder = tmp_path / "calls"
    (folder / "day2").mkdir(parents=True)
    good = {"a": fsdd_file(0, "jackson", 10), "day2/b": fsdd_file(6, "jackson", 10)}
    for name, source in good.items():
        (folder / f"{name}.wav").write_bytes(source.read_bytes())
    (folder / "day2" / "broken.wav").write_bytes(b"RIFF....WAVEfmt garbage" * 3)
    (folder / "notes.txt").write_text("not audio")
    out = tmp_path / "out"
    result = run_asr("transcribe", "--model", checkpoint, "--format", "all", "--output-dir", out, folder)
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if "broken.wav" in line]
    assert len(errors) == 1 and "not a readable audio file" in errors[0]
    assert (out / "a.txt").read_text() == "zero\n" and (out / "day2" / "b.txt").read_text() == "six\n"
    assert sorted(p.name for p in (out / "day2").iterdir()) == [f"b.{f}" for f in ("json", "srt", "tsv", "txt", "vtt")]
    assert json.loads((out / "a.json").read_text())["segments"][0]["words"][0]["word"] == "zero"
    # a manifest's audio, and audio on standard input
    result = run_asr("transcribe", "--model", checkpoint, manifest)
    assert result.returncode == 0
    assert [line.split("\t")[1] for line in result.stdout.splitlines()] == [WORDS[d] for d, _, _ in OVERFIT_ITEMS]
    result = run_asr("transcribe", "--model", checkpoint, "--json", "-", stdin=fsdd_file(3, "jackson", 10).read_bytes())
    assert result.returncode == 0
    assert json.loads(result.stdout)["text"] == "three" and json.loads(result.stdout)["path"] == "-"
    result = run_asr("transcribe", "--model", checkpoint, "--format", "srt", fsdd_file(3, "jackson", 10), folder)
    assert result.returncode == 1 and "needs --output-dir" in result.stderr


class ScriptedModel:
    """A stand-in acoustic model that reads labels written into the audio: every 10 ms frame is
    a square wave whose height spells one label (loud for speech, faint for pauses), so a test
    can put any letter anywhere, the first letter of a word inside the pause before it, say."""

    sample_rate = RATE
    frame_seconds = 0.01
    per_speaker = False
    LOUD, FAINT, STEP = 0.1, 0.001, 64

    def __init__(self):
        from types import SimpleNamespace

        from asr.text import BLANK, Vocabulary

        self.vocab = Vocabulary([BLANK, " "] + sorted(set("".join(WORDS))))
        self.features = SimpleNamespace(config=SimpleNamespace(kind="logmel"))

    def audio(self, script: list[tuple[str, float, bool]]) -> np.ndarray:
        """Samples for ``script``: (letters, seconds, loud) runs; each letter three frames then a
        blank one, the rest of the run blank."""
        hop = round(self.frame_seconds * RATE)
        frames: list[tuple[int, bool]] = []
        for letters, seconds, loud in script:
            run = [(self.vocab.symbols.index(c), loud) for c in letters for _ in range(3)] if letters else []
            run = [f for i in range(0, len(run), 3) for f in run[i:i + 3] + [(0, loud)]]
            frames += run + [(0, loud)] * (round(seconds / self.frame_seconds) - len(run))
        heights = [(self.LOUD if loud else self.FAINT) * (1 + label / self.STEP) for label, loud in frames]
        signs = np.resize([1.0, -1.0], hop)
        return np.concatenate([h * signs for h in heights]).astype(np.float32)

    def batch_log_probs(self, waves, means=None, vtln=0.0):
        hop = round(self.frame_seconds * RATE)
        out = []
        for wave in waves:
            heights = np.median(np.abs(wave[:len(wave) // hop * hop]).reshape(-1, hop), axis=1)
            base = np.where(heights > 0.01, self.LOUD, self.FAINT)
            labels = np.clip(np.rint((heights / base - 1) * self.STEP).astype(int), 0, len(self.vocab.symbols) - 1)
            scores = np.full((len(labels), len(self.vocab.symbols)), -10.0, np.float32)
            scores[np.arange(len(labels)), labels] = 0.0
            out.append(scores - np.log(np.exp(scores).sum(axis=1, keepdims=True)))
        return out


def test_a_word_whose_first_letter_the_model_puts_before_a_cut_is_read_whole():
    """Held-out voices put a word's first letter early, in the pause before it: the piece before
    the cut holds the "f", the next one "ive". The word is read whole, timed by its speech."""
    from asr.decoding import GreedyDecoder
    from asr.transcribe import Transcriber

    model = ScriptedModel()
    script = [("eight ", 0.4, True), ("", 0.3, False), ("f", 0.3, False), ("", 0.4, False), ("ive ", 0.4, True)]
    for word in ["three", "one", "seven", "two"]:
        script += [("", 1.0, False), (word + " ", 0.4, True)]
    script += [("", 0.5, False)]
    audio = model.audio(script)
    options = SegmentOptions(max_seconds=5, min_pause=0.5, context=1.0)
    pieces = list(segment_stream([audio], RATE, options))
    assert len(pieces) >= 2 and 0.7 < pieces[1].keep_start / RATE < 1.5  # the "f" lies before the first cut
    for timestamps in (False, True):  # the same text either way; the timed result is kept
        with Transcriber(model, GreedyDecoder(model.vocab), options, timestamps=timestamps) as transcriber:
            (result,) = transcriber.run([audio])
        assert result.text == "eight five three one seven two"
    five = result.words[1]
    # timed by its speech (1.4-1.8 s), not from the letter in the pause (0.7 s)
    assert five.word == "five" and five.start == pytest.approx(1.4, abs=0.02) and five.end == pytest.approx(1.8, abs=0.1)
    assert [w.word for s in result.segments for w in s.words] == result.text.split()
    # Within a piece too: the "f" right after "two", 0.4 s before the rest, does not time "five".
    audio = model.audio([("two f", 0.4, True), ("", 0.4, False), ("ive ", 0.4, True), ("", 0.3, False)])
    with Transcriber(model, GreedyDecoder(model.vocab), options) as transcriber:
        (result,) = transcriber.run([audio])
    two, five = result.words
    assert (two.word, five.word) == ("two", "five") and five.start == pytest.approx(0.8, abs=0.02)
    assert [w.word for s in result.segments for w in s.words] == result.text.split()


def test_where_two_readings_meet_at_a_cut():
    """Each piece reads its own window; at a cut the two readings settle the word between them."""
    from asr.transcribe import _Part, Word

    def part(words, before=None, after=None, prior="", following=""):
        timed = [Word(w, s, e) for w, s, e in words]
        return _Part(timed[0].start, timed[-1].end, [w.word for w in timed], timed,
                     lead=before and Word(*before), trail=after and Word(*after), first_letter=timed[0].start,
                     last_letter=timed[-1].end, word_before=prior, word_after=following)

    def meet(a, b):
        a.meet(b)
        return [w.word for w in a.words + b.words], a.spelled + b.spelled

    # Both run a word over the cut (at 10 s): the reading holding more of it on its own side wins.
    words, spelled = meet(part([("two", 8, 9), ("t", 9.6, 9.7)], after=("wo", 10.4, 10.6)),
                          part([("even", 10.2, 10.6)], before=("s", 9.6, 9.7)))
    assert words == spelled == ["two", "seven"]
    words, _ = meet(part([("thr", 9.5, 9.9)], after=("ee", 10.1, 10.2)), part([("e", 10.1, 10.2)], before=("thre", 9.5, 9.9)))
    assert words == ["three"]
    # One reading runs two words together over the pause, the other sees two: they stay two.
    words, _ = meet(part([("three", 9.0, 9.4)], after=("one", 10.5, 10.9)), part([("one", 10.5, 10.9)]))
    assert words == ["three", "one"]
    words, _ = meet(part([("three", 9.0, 9.4)]), part([("one", 10.5, 10.9)], before=("three", 9.0, 9.4)))
    assert words == ["three", "one"]
    # Letters one reading puts where the other has nothing join their word.
    words, _ = meet(part([("zero", 9.0, 9.4)]), part([("ive", 10.5, 10.9)], before=("f", 9.5, 9.6)))
    assert words == ["zero", "five"]
    words, _ = meet(part([("fi", 9.5, 9.9)], after=("ve", 10.1, 10.3)), part([("one", 10.5, 10.9)]))
    assert words == ["five", "one"]
    # ... or where the other reading has the same word wholly on this side of the cut.
    words, _ = meet(part([("fiv", 9.5, 9.9)], after=("e", 10.8, 10.9)), part([("three", 10.6, 10.9)], prior="five"))
    assert words == ["five", "three"]
    words, _ = meet(part([("nine", 9.0, 9.4)], following="zero"), part([("ero", 10.2, 10.5)], before=("z", 9.3, 9.4)))
    assert words == ["nine", "zero"]
