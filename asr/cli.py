"""The ``asr`` command. It parses arguments, then calls the library; nothing else parses argv.

Library modules are imported inside each command, so ``asr --help`` does not
pay for importing torch.
"""

from __future__ import annotations

import argparse
import json
import sys

TRAIN_EXAMPLE = """example:
  asr train --config recipes/fsdd/conf.yaml exp_dir=exp/fsdd data.train_manifest=data/train.jsonl \\
      data.dev_manifest=data/dev.jsonl model.rnn_type=lstm epochs=10
Overrides are KEY=VALUE with dotted section names (see asr/config.py); unknown keys are errors."""

EVALUATE_EXAMPLE = """example:
  asr evaluate --model exp/fsdd/best.pt --manifest data/test.jsonl --report exp/fsdd/test-report.jsonl
Prints WER, CER and error counts; the report has one JSON line per utterance."""

TRANSCRIBE_EXAMPLE = """example:
  asr transcribe --model exp/fsdd/best.pt recording.wav other.flac
Reads any format libsndfile reads (wav, flac, ogg, mp3, ...) at any sample rate."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="asr", description="Train and use CTC speech recognizers.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    fmt = argparse.RawDescriptionHelpFormatter

    p = sub.add_parser("train", help="train a model from manifests", epilog=TRAIN_EXAMPLE, formatter_class=fmt)
    p.add_argument("--config", help="YAML or JSON config file")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="config overrides, e.g. optim.lr=1e-3")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (the log file is still written)")
    p.set_defaults(run=cmd_train)

    p = sub.add_parser("evaluate", help="WER/CER of a model on a manifest", epilog=EVALUATE_EXAMPLE,
                       formatter_class=fmt)
    p.add_argument("--model", required=True, help="checkpoint (.pt) written by asr train")
    p.add_argument("--manifest", required=True, help="JSON Lines manifest with reference transcripts")
    p.add_argument("--report", help="per-utterance report, JSON Lines (default: next to the checkpoint)")
    p.add_argument("--decoder", default="greedy", help="decoder name (default: greedy)")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:N")
    p.add_argument("--batch-seconds", type=float, default=200.0, help="audio per batch, seconds")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(run=cmd_evaluate)

    p = sub.add_parser("transcribe", help="transcribe audio files", epilog=TRANSCRIBE_EXAMPLE,
                       formatter_class=fmt)
    p.add_argument("--model", required=True, help="checkpoint (.pt) written by asr train")
    p.add_argument("files", nargs="+", metavar="FILE", help="audio files")
    p.add_argument("--decoder", default="greedy", help="decoder name (default: greedy)")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:N")
    p.add_argument("--json", action="store_true", help="one JSON object per file: path, text, duration")
    p.set_defaults(run=cmd_transcribe)
    return parser


def cmd_train(args) -> int:
    from asr.config import load_train_config
    from asr.train import train

    config = load_train_config(args.config, args.overrides)
    best = train(config, show_progress=not args.no_progress)
    print(f"best checkpoint: {best}")
    return 0


def cmd_evaluate(args) -> int:
    from pathlib import Path

    from asr.checkpoint import load_checkpoint, pick_device
    from asr.decoding import make_decoder
    from asr.evaluate import evaluate_manifest, write_report

    recognizer = load_checkpoint(args.model, pick_device(args.device))
    decoder = make_decoder(args.decoder, recognizer.vocab)
    summary, rows = evaluate_manifest(recognizer, args.manifest, decoder, args.batch_seconds)
    report = Path(args.report or Path(args.model).with_name(f"report-{Path(args.manifest).stem}.jsonl"))
    write_report(report, rows)
    if args.json:
        print(json.dumps({**summary.as_dict(), "manifest": args.manifest, "report": str(report)}))
    else:
        print(f"{args.manifest}: {summary}")
        print(f"per-utterance report: {report}")
    return 0


def cmd_transcribe(args) -> int:
    from asr.checkpoint import load_checkpoint, pick_device
    from asr.decoding import make_decoder
    from asr.transcribe import transcribe_files

    recognizer = load_checkpoint(args.model, pick_device(args.device))
    decoder = make_decoder(args.decoder, recognizer.vocab)
    failed = 0
    for t in transcribe_files(recognizer, args.files, decoder):
        if t.error:
            failed += 1
            print(f"asr: error: {t.error}", file=sys.stderr)
        elif args.json:
            print(json.dumps({"path": t.path, "text": t.text, "duration": round(t.duration, 3)}))
        elif len(args.files) == 1:
            print(t.text)
        else:
            print(f"{t.path}\t{t.text}")
    return 1 if failed else 0


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
    from asr.errors import AsrError

    try:
        return args.run(args)
    except AsrError as e:
        print(f"asr: error: {_one_line(e)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("asr: interrupted", file=sys.stderr)
        return 130
