"""asr: CTC speech recognition you train on your own data.

The package is split one concept per module:

    audio.py      read any libsndfile format, mix to mono, resample
    features.py   log-mel / MFCC features + normalization, batched on the device
    text.py       transcript normalization and the character vocabulary
    data.py       JSON Lines manifests, datasets, length-bucketed batches
    model.py      conv front end + bidirectional GRU/LSTM + CTC projection
    decoding.py   CTC decoders behind one interface: greedy, prefix beam search
                  (LM, lexicon, hotwords), flashlight for lexicons; batches over cores
    lm.py         word n-gram LMs: Kneser-Ney builder, ARPA files, KenLM binaries
    align.py      word timestamps from the CTC alignment of a transcript
    decoder_settings.py  decoder flags, the tuned settings file, building a decoder
    tune.py       LM weight / word score / beam search on a dev set
    metrics.py    WER / CER with jiwer
    checkpoint.py self-describing checkpoints;  provenance.py: the code a run was made with
    train.py      the training loop
    train_state.py  resumable training states (atomic, newest loadable one wins)
    distributed.py  this process's place in a torchrun job (DDP, reductions)
    monitor.py    TensorBoard events and the PNG plot of the training curves
    segment.py    cutting a stream of audio at pauses into pieces the model reads
    transcribe.py recordings of any length -> segments and timed words, batched
    outputs.py    transcripts as txt, json, srt, vtt, tsv;  inputs.py: files, folders, stdin
    api.py        asr.load(checkpoint).transcribe(path): the Python API
    evaluate.py   scoring a manifest (through transcribe.py)
    cli.py        the `asr` command (the only place that parses argv)

Heavy modules (torch, torchaudio) are imported by the modules that need them,
never here, so `asr --help` stays fast.
"""

__version__ = "0.1.0"


def load(checkpoint, **options):
    """``asr.load("exp/fsdd/best.pt").transcribe("call.wav")``: see ``asr.api.load``."""
    from asr.api import load as load_model

    return load_model(checkpoint, **options)
