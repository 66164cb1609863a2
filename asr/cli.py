"""The ``asr`` command. It parses arguments, then calls the library; nothing else parses argv.

Library modules are imported inside each command, so ``asr --help`` does not
pay for importing torch.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from pathlib import Path

TRAIN_EXAMPLE = """example:
  asr train --config recipes/fsdd/conf.yaml exp_dir=exp/fsdd data.train_manifest=data/train.jsonl \\
      data.dev_manifest=data/dev.jsonl model.rnn_type=lstm epochs=10
  asr train --resume ...the same arguments...     # after a kill or Ctrl-C
Overrides are KEY=VALUE with dotted section names (see asr/config.py); unknown keys are errors."""

EVALUATE_EXAMPLE = """example:
  asr evaluate --model exp/fsdd/best.pt --manifest data/test.jsonl --report exp/fsdd/test-report.jsonl
Prints WER, CER and error counts; the report has one JSON line per utterance."""

CONDITIONS_EXAMPLE = """example:
  asr conditions --manifest data/test.jsonl --out-dir data/conditions --sample-rate 8000
  asr evaluate --model exp/fsdd/best.pt --manifest data/conditions/conditions.jsonl   # WER per condition
Conditions (asr/conditions.py): clean, level-30dB, level-20dB, level-10dB, level+6dB, white-snr20,
white-snr10, pink-snr20, pink-snr10, babble-snr20, babble-snr10, speed-0.9, speed-1.1, telephone,
room, wav-44k-stereo, flac-22k-24bit, wav-48k-float, ogg-16k; any level as level-25dB."""

TRANSCRIBE_EXAMPLE = """example:
  asr transcribe --model exp/fsdd/best.pt recording.wav other.flac
  asr transcribe --model exp/fsdd/best.pt --format srt --output-dir subs/ meeting.wav calls/
  asr transcribe --model exp/fsdd/best.pt --format all --output-dir out/ data/test.jsonl
  sox in.mp3 -t wav - | asr transcribe --model exp/fsdd/best.pt -
Inputs are files (any format libsndfile reads: wav, flac, ogg, mp3, ... at any rate), folders
(searched recursively for audio), JSON Lines manifests (.jsonl: their audio_filepath), or -
for audio on standard input. Recordings of any length are cut at pauses and read in bounded
memory.
Decoder settings tuned by asr tune-decoder (best.decoder.json beside the checkpoint) are
used by default; decoder flags override them."""

LM_EXAMPLE = """example:
  asr lm build --text exp/fsdd/data/train.jsonl extra.txt --order 3 --out exp/fsdd/lm.arpa
Text files have one sentence per line; .jsonl manifests give their "text" fields. Text is
normalized like transcripts (lower case, numbers as words, no punctuation)."""

TUNE_EXAMPLE = """example:
  asr tune-decoder --model exp/fsdd/best.pt --manifest exp/fsdd/data/dev.jsonl --lm exp/fsdd/lm.arpa \\
      --lm-weights 0,0.25,0.5,1,2 --word-scores=-1,0,1,2
Prints WER for every setting and writes the best next to the checkpoint
(best.decoder.json), where asr evaluate and asr transcribe find it."""


EXPORT_EXAMPLE = """example:
  asr export --model exp/fsdd/best.pt --out exp/fsdd/model.onnx
  asr transcribe --model exp/fsdd/model.onnx recording.wav     # no torch needed: pip install ".[runtime]"
Writes the network as ONNX (dynamic batch and time), with vocabulary and feature settings
in its metadata; tuned decoder settings and their LM/lexicon files are copied beside it."""

SERVE_EXAMPLE = """example:
  asr serve --model exp/fsdd/model.onnx --port 8000
  curl -F file=@recording.wav -F model=asr -F response_format=srt \
      http://127.0.0.1:8000/v1/audio/transcriptions
Implements OpenAI's POST /v1/audio/transcriptions (response_format json, text, srt, vtt,
verbose_json; timestamp_granularities word, segment) and GET /health."""

FORMAT_CHOICES = ("txt", "json", "srt", "vtt", "tsv")  # asr/outputs.py writes them


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="asr", description="Train and use CTC speech recognizers.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    fmt = argparse.RawDescriptionHelpFormatter

    p = sub.add_parser("train", help="train a model from manifests", epilog=TRAIN_EXAMPLE, formatter_class=fmt)
    p.add_argument("--config", help="YAML or JSON config file")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="config overrides, e.g. optim.lr=1e-3")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (the log file is still written)")
    p.add_argument("--resume", action="store_true",
                   help="go on from the newest training state in EXP_DIR/state (after a kill, say)")
    p.set_defaults(run=cmd_train)

    p = sub.add_parser("evaluate", help="WER/CER of a model on a manifest", epilog=EVALUATE_EXAMPLE,
                       formatter_class=fmt)
    p.add_argument("--model", required=True, help="checkpoint (.pt) written by asr train")
    p.add_argument("--manifest", required=True, help="JSON Lines manifest with reference transcripts")
    p.add_argument("--report", help="per-utterance report, JSON Lines (default: next to the checkpoint)")
    add_decoder_flags(p)
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:N")
    p.add_argument("--batch-seconds", type=float, default=200.0, help="audio per batch, seconds")
    p.add_argument("--workers", type=int, help="decoding processes (default: one per core)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(run=cmd_evaluate)

    p = sub.add_parser("transcribe", help="transcribe audio files", epilog=TRANSCRIBE_EXAMPLE,
                       formatter_class=fmt)
    p.add_argument("--model", required=True,
                   help="checkpoint (.pt) written by asr train, or model (.onnx) written by asr export")
    p.add_argument("files", nargs="+", metavar="INPUT", help="audio files, folders, .jsonl manifests, or - (stdin)")
    p.add_argument("--format", choices=[*FORMAT_CHOICES, "all"],
                   help="txt (default), json (segments and words with times and confidence), srt, vtt, "
                        "tsv, or all (needs --output-dir)")
    p.add_argument("--output-dir", help="write one file per input and format here (name.txt, name.srt, ...)")
    add_decoder_flags(p)
    p.add_argument("--nbest", type=int, default=1, help="with --json: this many alternatives per file")
    p.add_argument("--same-speaker", action="store_true",
                   help="the files are one speaker's: a model trained with features.normalize=speaker "
                        "normalizes them by their common mean (otherwise each file by its own)")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:N")
    p.add_argument("--json", action="store_true", help="the same as --format json")
    p.add_argument("--max-segment", type=float, default=30.0,
                   help="seconds the model reads at most; longer recordings are cut at pauses (default: 30)")
    p.add_argument("--min-pause", type=float, default=0.5, help="seconds of quiet where a cut may fall (default: 0.5)")
    p.add_argument("--batch-seconds", type=float, default=200.0, help="audio through the model at once, seconds")
    p.add_argument("--workers", type=int, help="decoding processes (default: one per core)")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction,
                   help="a progress bar on stderr (default: when stderr is a terminal and there is over a minute of audio)")
    p.set_defaults(run=cmd_transcribe)

    p = sub.add_parser("export", help="write a checkpoint as an ONNX model for onnxruntime",
                       epilog=EXPORT_EXAMPLE, formatter_class=fmt)
    p.add_argument("--model", required=True, help="checkpoint (.pt) written by asr train")
    p.add_argument("--out", required=True, help="ONNX file to write (.onnx), or a folder to put model.onnx in")
    p.set_defaults(run=cmd_export)

    p = sub.add_parser("serve", help="serve a model over HTTP (OpenAI-compatible transcriptions API)",
                       epilog=SERVE_EXAMPLE, formatter_class=fmt)
    p.add_argument("--model", required=True, help="checkpoint (.pt) or exported model (.onnx)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1, this machine only)")
    p.add_argument("--port", type=int, default=8000, help="port (default: 8000)")
    p.add_argument("--max-upload-mb", type=float, default=25.0, help="largest upload accepted, MB (default: 25)")
    p.add_argument("--max-audio-seconds", type=float, default=3600.0,
                   help="longest recording accepted, seconds (default: 3600)")
    p.add_argument("--max-concurrent", type=int, default=64,
                   help="requests admitted at once, running or queued; more get 503 (default: 64)")
    p.add_argument("--timeout", type=float, default=600.0,
                   help="seconds a request may wait and run before it gets 504 (default: 600)")
    p.add_argument("--device", default="auto", help="for a checkpoint: auto, cpu, cuda, cuda:N")
    p.add_argument("--workers", type=int, help="decoding processes (default: one per core)")
    p.add_argument("--untuned", action="store_true", help="ignore the tuned decoder settings beside the model")
    p.set_defaults(run=cmd_serve)

    p = sub.add_parser("conditions", help="robustness test sets: a manifest's recordings at other levels, "
                       "with noise, faster/slower, by telephone, in a room, in other formats",
                       epilog=CONDITIONS_EXAMPLE, formatter_class=fmt)
    p.add_argument("--manifest", required=True, help="the test set to change (JSON Lines manifest)")
    p.add_argument("--out-dir", required=True, help="where the changed recordings go (one folder per condition)")
    p.add_argument("--out", help="the manifest written (default: OUT_DIR/conditions.jsonl)")
    p.add_argument("--conditions", default="", help="comma-separated names (default: all of them)")
    p.add_argument("--sample-rate", type=int, default=16000, help="rate the recordings are read and changed at")
    p.add_argument("--seed", type=int, default=7)
    p.set_defaults(run=cmd_conditions)

    p = sub.add_parser("lm", help="language models")
    lm_sub = p.add_subparsers(dest="lm_command", required=True, metavar="LM_COMMAND")
    p = lm_sub.add_parser("build", help="word n-gram LM (Kneser-Ney) from text, written as ARPA",
                          epilog=LM_EXAMPLE, formatter_class=fmt)
    p.add_argument("--text", nargs="+", required=True, metavar="FILE", help="text files or .jsonl manifests")
    p.add_argument("--order", type=int, default=3, help="n-gram order (default: 3)")
    p.add_argument("--out", required=True, help="ARPA file to write")
    p.add_argument("--binary", help="also write a KenLM binary here (needs KenLM's build_binary on PATH)")
    p.add_argument("--lexicon", help="also write the LM's words here, one per line (a lexicon for the decoder)")
    p.set_defaults(run=cmd_lm_build)

    p = sub.add_parser("tune-decoder", help="search LM weight / word score / beam on a dev set",
                       epilog=TUNE_EXAMPLE, formatter_class=fmt)
    p.add_argument("--model", required=True, help="checkpoint (.pt) written by asr train")
    p.add_argument("--manifest", required=True, help="dev manifest with reference transcripts")
    p.add_argument("--lm", help="ARPA or KenLM binary language model")
    p.add_argument("--lexicon", help="word list the output is restricted to")
    p.add_argument("--hotwords", help="file or comma-separated words/phrases to boost")
    p.add_argument("--hotword-weight", type=float, default=5.0, help="bonus per hotword (default: 5)")
    p.add_argument("--lm-weights", default="0,0.25,0.5,0.75,1,1.5,2", help="comma-separated")
    p.add_argument("--word-scores", default="-1,0,1,2,3", help="comma-separated")
    p.add_argument("--beam-sizes", default="16", help="comma-separated")
    p.add_argument("--vtln", type=float, default=0.0,
                   help="read the dev set as transcription will, with this warp search (asr.vtln; default 0: off); "
                        "saved with the tuned settings")
    p.add_argument("--trials", type=int, help="try this many settings drawn at random from the grid")
    p.add_argument("--workers", type=int, help="decoding processes (default: one per core)")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:N")
    p.set_defaults(run=cmd_tune)
    return parser


def add_decoder_flags(p: argparse.ArgumentParser) -> None:
    """One flag per field of DecoderSettings (its help and default come from there)."""
    from dataclasses import fields

    from asr.decoder_settings import DEFAULTS, DecoderSettings

    g = p.add_argument_group("decoder (default: the tuned settings beside the checkpoint, else greedy)")
    for f in fields(DecoderSettings):
        default = getattr(DEFAULTS, f.name)
        kind = type(default) if isinstance(default, (int, float)) and not isinstance(default, bool) else str
        shown = "" if default is None or f.name == "decoder" else f" (default: {default:g})" if kind is not str else ""
        g.add_argument(f"--{f.name.replace('_', '-')}", type=kind, choices=f.metadata.get("choices"),
                       help=f.metadata["help"] + shown)
    g.add_argument("--untuned", action="store_true", help="ignore the tuned settings beside the checkpoint")


def decoder_from_args(args, vocab, nbest: int = 1):
    """(settings, decoder): the tuned settings beside the checkpoint with the flags given on top."""
    from dataclasses import fields

    from asr.decoder_settings import DecoderSettings, build_decoder, load_settings

    flags = {f.name: getattr(args, f.name) for f in fields(DecoderSettings)}
    settings = load_settings(args.model, flags, tuned=not args.untuned)
    return settings, build_decoder(settings, vocab, nbest=nbest)


def cmd_train(args) -> int:
    from asr.config import load_train_config
    from asr.train import train

    config = load_train_config(args.config, args.overrides)
    best = train(config, show_progress=not args.no_progress, resume=args.resume)
    print(f"best checkpoint: {best}")
    return 0


def cmd_evaluate(args) -> int:
    from dataclasses import asdict
    from pathlib import Path

    from asr.checkpoint import load_checkpoint
    from asr.recognizer import pick_device
    from asr.decoder_settings import describe
    from asr.evaluate import evaluate_manifest, group_summaries, write_report

    recognizer = load_checkpoint(args.model, pick_device(args.device))
    settings, decoder = decoder_from_args(args, recognizer.vocab)
    summary, rows = evaluate_manifest(recognizer, args.manifest, decoder, args.batch_seconds,
                                      decode_workers=args.workers, vtln=settings.vtln)
    report = Path(args.report or Path(args.model).with_name(f"report-{Path(args.manifest).stem}.jsonl"))
    write_report(report, rows)
    groups = group_summaries(rows)
    if args.json:
        print(json.dumps({**summary.as_dict(), "model": str(args.model),
                          "model_code": recognizer.info.get("code"), "manifest": args.manifest, "report": str(report),
                          "decoder": describe(settings), "decoder_settings": asdict(settings),
                          **{f"by_{key}": {value: s.as_dict() for value, s in by.items()}
                             for key, by in groups.items()}}))
    else:
        print(f"{args.manifest} ({describe(settings)}): {summary}")
        for key, by in groups.items():
            width = max(len(value) for value in by)
            for value, s in by.items():
                print(f"  {key} {value:<{width}}  {s}")
        print(f"per-utterance report: {report}")
    return 0


def cmd_conditions(args) -> int:
    from pathlib import Path

    from asr.conditions import pick, write_condition_manifest
    from asr.data import read_manifest

    out = Path(args.out or Path(args.out_dir) / "conditions.jsonl")
    count = write_condition_manifest(read_manifest(args.manifest), args.out_dir, out, args.sample_rate, args.seed,
                                     pick(args.conditions))
    print(f"wrote {out}: {count} recordings")
    return 0


def cmd_transcribe(args) -> int:
    import contextlib

    from dataclasses import fields

    from asr.api import load
    from asr.decoder_settings import DecoderSettings
    from asr.errors import AsrError
    from asr.files import atomic_write
    from asr.inputs import collect_inputs, stdin_to_file
    from asr.outputs import FORMATS, render
    from asr.segment import SegmentOptions

    if args.nbest < 1:
        raise AsrError(f"--nbest must be at least 1, got {args.nbest}")
    fmt = args.format or ("json" if args.json else "txt")
    formats = list(FORMATS) if fmt == "all" else [fmt]
    with contextlib.ExitStack() as stack:
        stdin = stack.enter_context(stdin_to_file()) if "-" in args.files else None
        inputs = collect_inputs(args.files, stdin)
        if args.output_dir is None and (fmt == "all" or (fmt in ("srt", "vtt", "tsv") and len(inputs) > 1)):
            raise AsrError(f"--format {fmt} with {len(inputs)} input(s) needs --output-dir")
        segments = SegmentOptions(max_seconds=args.max_segment, min_pause=args.min_pause)
        model = stack.enter_context(load(args.model, args.device, not args.untuned, segments, args.workers,
                                         args.batch_seconds, args.nbest,
                                         **{f.name: getattr(args, f.name) for f in fields(DecoderSettings)}))
        progress = stack.enter_context(_progress_bar(inputs, args.progress))
        failed = 0
        results = model.transcribe_many([i.path for i in inputs], args.same_speaker, progress)
        for item, t in zip(inputs, results):
            if t.error:
                failed += 1
                progress.write(f"asr: error: {t.error}")
                continue
            t = replace_path(t, item.label)
            if args.output_dir:
                for f in formats:
                    with atomic_write(Path(args.output_dir) / f"{item.name}.{f}") as out:
                        out.write_text(render(t, f), encoding="utf-8")
            elif fmt == "json":
                row = t.as_dict()
                if args.nbest > 1:
                    row["nbest"] = [{"text": h.text, "score": round(h.score, 3)} for h in t.nbest]
                progress.write(json.dumps(row, ensure_ascii=False), file=sys.stdout)
            elif fmt == "txt":
                progress.write(t.text if len(inputs) == 1 else f"{t.path}\t{t.text}", file=sys.stdout)
            else:
                progress.write(render(t, fmt), file=sys.stdout, end="")
    return 1 if failed else 0


def replace_path(transcript, label: str):
    from dataclasses import replace

    return replace(transcript, path=label)


class _NoBar:
    def __call__(self, seconds: float) -> None:
        pass

    def write(self, text: str, file=None, end: str = "\n") -> None:
        print(text, file=file or sys.stderr, end=end, flush=True)


@contextlib.contextmanager
def _progress_bar(inputs, wanted: bool | None):
    """A callable that advances a tqdm bar on stderr by seconds of audio (or does nothing),
    with a ``write`` that prints without breaking the bar."""
    import soundfile as sf

    def seconds(path):
        try:
            return sf.info(path).duration
        except Exception:  # reported when it is transcribed
            return 0.0

    maybe = wanted or (wanted is None and sys.stderr.isatty())
    total = sum(seconds(i.path) for i in inputs) if maybe else 0.0  # headers read only for a bar
    if not (wanted or (maybe and total > 60)):
        yield _NoBar()
        return
    from tqdm import tqdm

    with tqdm(total=round(total, 1), unit="s", unit_scale=True, desc="transcribing", file=sys.stderr,
              bar_format="{l_bar}{bar}| {n:.0f}/{total:.0f} s audio [{elapsed}<{remaining}, {rate_fmt}]") as bar:
        class Bar:
            def __call__(self, s: float) -> None:
                bar.update(s)

            def write(self, text: str, file=None, end: str = "\n") -> None:
                tqdm.write(text, file=file or sys.stderr, end=end)
        yield Bar()


def cmd_export(args) -> int:
    from asr.export import export_onnx

    for path in export_onnx(args.model, args.out):
        print(f"wrote {path}")
    return 0


def cmd_serve(args) -> int:
    from asr.serve import ServeLimits, serve

    limits = ServeLimits(max_upload_bytes=int(args.max_upload_mb * 1e6), max_audio_seconds=args.max_audio_seconds,
                         max_concurrent=args.max_concurrent, timeout=args.timeout)
    serve(args.model, args.host, args.port, limits, device=args.device, workers=args.workers,
          tuned=not args.untuned)
    return 0


def cmd_lm_build(args) -> int:
    import shutil
    import subprocess

    from asr.errors import AsrError
    from asr.lm import build_kneser_ney, read_sentences

    if args.binary and not shutil.which("build_binary"):
        raise AsrError("--binary needs KenLM's build_binary on PATH; the ARPA file works everywhere")
    lm = build_kneser_ney(read_sentences(args.text), order=args.order)
    lm.write_arpa(args.out)
    counts = ", ".join(f"{n}-grams {sum(1 for g in lm.log10_probs if len(g) == n)}"
                       for n in range(1, lm.order + 1))
    print(f"wrote {args.out}: order {lm.order}, {len(lm.words)} words, {counts}")
    if args.lexicon:
        words = sorted(w for w in lm.words if w not in ("<s>", "</s>", "<unk>"))
        Path(args.lexicon).write_text("".join(w + "\n" for w in words), encoding="utf-8")
        print(f"wrote {args.lexicon}: {len(words)} words")
    if args.binary:
        subprocess.run(["build_binary", args.out, args.binary], check=True, capture_output=True)
        print(f"wrote {args.binary}")
    return 0


def cmd_tune(args) -> int:
    from asr.checkpoint import load_checkpoint
    from asr.recognizer import pick_device
    from asr.decoder_settings import DecoderSettings, save_settings
    from asr.decoding import GreedyDecoder, decode_batch
    from asr.errors import AsrError
    from asr.evaluate import manifest_log_probs
    from asr.metrics import score
    from asr.tune import candidate_settings, tune

    def numbers(text: str, kind, flag: str) -> list:
        try:
            return [kind(x) for x in text.split(",") if x.strip()]
        except ValueError:
            raise AsrError(f"{flag}: expected comma-separated numbers, got {text!r}") from None

    base = DecoderSettings(decoder="beam", lm=args.lm, lexicon=args.lexicon, hotwords=args.hotwords,
                           hotword_weight=args.hotword_weight, vtln=args.vtln)
    grid = candidate_settings(base, numbers(args.lm_weights, float, "--lm-weights"),
                              numbers(args.word_scores, float, "--word-scores"),
                              numbers(args.beam_sizes, int, "--beam-sizes"), args.trials)
    recognizer = load_checkpoint(args.model, pick_device(args.device))
    utterances, outputs = manifest_log_probs(recognizer, args.manifest, vtln=args.vtln)
    references = [u.text for u in utterances]
    greedy = score(references, [h[0].text for h in decode_batch(GreedyDecoder(recognizer.vocab), outputs)])[0]
    print(f"{len(utterances)} utterances; greedy: WER {greedy.wer:.2f}% CER {greedy.cer:.2f}%")
    print(f"{'beam':>5} {'lm_weight':>9} {'word_score':>10} {'WER %':>7} {'CER %':>7}")

    def show(s, summary):
        print(f"{s.beam_size:5d} {s.lm_weight:9.2f} {s.word_score:10.2f} {summary.wer:7.2f} {summary.cer:7.2f}",
              flush=True)

    results = tune(outputs, references, recognizer.vocab, grid, args.workers, progress=show)
    best, summary = results[0]
    path = save_settings(args.model, best, dev_manifest=str(args.manifest), dev_wer=summary.wer,
                         dev_cer=summary.cer, greedy_dev_wer=greedy.wer)
    print(f"best: beam {best.beam_size}, lm_weight {best.lm_weight}, word_score {best.word_score}: "
          f"WER {summary.wer:.2f}% (greedy {greedy.wer:.2f}%)")
    print(f"wrote {path}")
    return 0


def _one_line(error: Exception) -> str:
    """A DataLoader worker re-raises our error wrapped in its traceback: keep the original message."""
    text = str(error).strip()
    if "Original Traceback" in text:
        last = text.splitlines()[-1]
        text = last.split(": ", 1)[1] if ": " in last else last
    return text.splitlines()[0] if text else type(error).__name__


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    # KEY=VALUE overrides may come before or after train's flags: argparse keeps only the
    # first run of positionals, so collect the rest here.
    args, extra = parser.parse_known_args(argv)
    if extra and args.command == "train" and all("=" in x and not x.startswith("-") for x in extra):
        args.overrides += extra
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    from asr.errors import AsrError, Interrupted

    try:
        return args.run(args)
    except Interrupted as e:  # training stopped by SIGINT/SIGTERM after saving its state
        print(f"asr: {e}", file=sys.stderr)
        return 128 + e.signum
    except AsrError as e:
        print(f"asr: error: {_one_line(e)}", file=sys.stderr)
        return 1
    except ModuleNotFoundError as e:  # a light install (no torch) asked for more than it has
        extra = "serve" if e.name in ("fastapi", "uvicorn", "multipart", "starlette") else "train"
        print(f"asr: error: asr {args.command} needs {e.name}, which this install lacks: "
              f"pip install \".[{extra}]\"", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("asr: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (`asr evaluate ... | head -1`): stop quietly, as cat does
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # nothing more to flush at exit
        return 141  # 128 + SIGPIPE
