import math

import pytest

from asr.checkpoint import load_checkpoint
from asr.config import load_train_config
from asr.decoding import GreedyDecoder
from asr.errors import AsrError
from asr.evaluate import evaluate_manifest
from asr.provenance import code_version
from asr.train import train
from asr.train_step import lr_schedule
from conftest import OVERFIT_ITEMS, TINY_OVERRIDES, WORDS, write_fsdd_manifest


def test_lr_schedule_warms_up_then_decays():
    values = [lr_schedule(s, warmup=10, total=100, final_ratio=0.1) for s in range(100)]
    assert values[0] == pytest.approx(0.1) and values[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(values[10:], values[11:]))
    assert lr_schedule(100, 10, 100, 0.1) == pytest.approx(0.1)


@pytest.mark.slow
def test_tiny_model_learns_real_recordings_exactly(tiny_model):
    checkpoint, manifest = tiny_model
    recognizer = load_checkpoint(checkpoint)
    summary, rows = evaluate_manifest(recognizer, manifest, GreedyDecoder(recognizer.vocab), num_workers=0)
    assert [r["hypothesis"] for r in rows] == [WORDS[d] for d, _, _ in OVERFIT_ITEMS]
    assert summary.wer == 0.0 and summary.cer == 0.0
    assert recognizer.info["dev_wer"] == 0.0 and recognizer.info["code"] == code_version()
    assert (checkpoint.parent / "last.pt").is_file() and (checkpoint.parent / "train.log").is_file()
    log = (checkpoint.parent / "train.log").read_text()
    assert "dev WER" in log and f"code: {code_version()}" in log


def test_dev_transcripts_outside_the_vocabulary_are_an_error(tmp_path):
    train_manifest = write_fsdd_manifest(tmp_path / "train.jsonl", [(1, "jackson", 11), (2, "jackson", 11)])
    dev_manifest = write_fsdd_manifest(tmp_path / "dev.jsonl", [(1, "jackson", 12), (6, "jackson", 12)])
    config = load_train_config(None, TINY_OVERRIDES + [
        f"exp_dir={tmp_path / 'exp'}", f"data.train_manifest={train_manifest}",
        f"data.dev_manifest={dev_manifest}", "epochs=1"])
    with pytest.raises(AsrError, match=rf"{dev_manifest}:2: transcript 'six' .*'s', 'i', 'x'"):
        train(config, show_progress=False)


def test_missing_manifests_are_an_error(tmp_path):
    with pytest.raises(AsrError, match="must both be set"):
        train(load_train_config(None, [f"exp_dir={tmp_path}"]), show_progress=False)


def test_chunked_threads_give_the_gradients_of_one_pass():
    from concurrent.futures import ThreadPoolExecutor

    import torch

    from asr.config import ModelConfig
    from asr.model import CTCModel
    from asr.train_step import ctc_gradients

    torch.manual_seed(0)
    model = CTCModel(ModelConfig(hidden_size=16, num_layers=2, conv_channels=16, dropout=0.0), 8, 6)
    ctc = torch.nn.CTCLoss(zero_infinity=True)
    feats, frames = torch.randn(5, 40, 8), torch.tensor([40, 33, 30, 21, 12])
    targets, target_lengths = torch.randint(1, 6, (5, 4)), torch.tensor([4, 3, 3, 2, 1])
    loss_one = ctc_gradients(model, ctc, feats, frames, targets, target_lengths)
    grads_one = [p.grad.clone() for p in model.parameters()]
    model.zero_grad(set_to_none=True)
    with ThreadPoolExecutor(2) as pool:
        loss_chunked = ctc_gradients(model, ctc, feats, frames, targets, target_lengths, pool, chunks=2)
    assert loss_chunked == pytest.approx(loss_one, rel=1e-5)
    for a, b in zip(grads_one, (p.grad for p in model.parameters())):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


def test_chunks_on_parallel_threads_draw_the_same_dropout_masks_every_run():
    """With dropout, each chunk's masks come from a generator of its own, seeded on the calling
    thread: the same global seed gives the same loss and gradients however the threads race
    (drawing from torch's shared generator, two runs of the recipe came out different)."""
    from concurrent.futures import ThreadPoolExecutor

    import torch

    from asr.config import ModelConfig
    from asr.model import CTCModel
    from asr.train_step import ctc_gradients

    torch.manual_seed(0)
    model = CTCModel(ModelConfig(hidden_size=16, num_layers=2, conv_channels=16, dropout=0.5), 8, 6).train()
    ctc = torch.nn.CTCLoss(zero_infinity=True)
    feats, frames = torch.randn(8, 40, 8), torch.tensor([40, 38, 33, 30, 25, 21, 16, 12])
    targets, target_lengths = torch.randint(1, 6, (8, 4)), torch.tensor([4, 4, 3, 3, 3, 2, 2, 1])
    runs = []
    with ThreadPoolExecutor(4) as pool:
        for _ in range(6):
            torch.manual_seed(1)
            model.zero_grad(set_to_none=True)
            loss = ctc_gradients(model, ctc, feats, frames, targets, target_lengths, pool, chunks=4)
            runs.append((loss, [p.grad.clone() for p in model.parameters()]))
    for loss, grads in runs[1:]:
        assert loss == runs[0][0]
        assert all(torch.equal(a, b) for a, b in zip(grads, runs[0][1]))
    torch.manual_seed(2)  # another seed, other masks
    model.zero_grad(set_to_none=True)
    with ThreadPoolExecutor(4) as pool:
        assert ctc_gradients(model, ctc, feats, frames, targets, target_lengths, pool, chunks=4) != runs[0][0]


@pytest.mark.parametrize("normalize", ["utterance", "speaker"])
def test_chunked_features_equal_one_pass(normalize):
    from concurrent.futures import ThreadPoolExecutor

    import torch

    from asr.config import FeatureConfig
    from asr.features import FeatureExtractor
    from asr.train_step import chunked_features

    torch.manual_seed(0)
    features = FeatureExtractor(FeatureConfig(sample_rate=8000, n_mels=32, normalize=normalize))
    lengths = torch.tensor([8000, 3000, 5000, 1200, 7999])
    waves = torch.randn(5, 8000) * (torch.arange(8000) < lengths[:, None])
    means = torch.randn(5, 32) if normalize == "speaker" else None  # each row's own speaker's
    one, frames = features(waves, lengths, means)
    with ThreadPoolExecutor(2) as pool:
        chunked, chunked_frames = chunked_features(features, waves, lengths, pool, chunks=2, means=means)
    assert torch.equal(frames, chunked_frames)
    assert chunked.shape == one.shape and torch.allclose(chunked, one, atol=1e-5)


@pytest.mark.slow
def test_compiled_step_trains_like_the_eager_one(tmp_path):
    import re

    manifest = write_fsdd_manifest(tmp_path / "six.jsonl", OVERFIT_ITEMS)
    losses = {}
    for compiled in (False, True):
        exp_dir = tmp_path / f"exp-{compiled}"
        config = load_train_config(None, TINY_OVERRIDES + [
            f"exp_dir={exp_dir}", f"data.train_manifest={manifest}", f"data.dev_manifest={manifest}",
            "epochs=4", "log_every=1", "step_threads=1", "data.batch_seconds=2", f"compile={compiled}"])
        train(config, show_progress=False)
        text = (exp_dir / "train.log").read_text()
        losses[compiled] = [float(x) for x in re.findall(r"step \d+ loss ([\d.]+)", text)]
        assert ("torch.compile" in text) == compiled
    assert len(losses[True]) == len(losses[False]) >= 8
    assert losses[True] == pytest.approx(losses[False], rel=2e-3)
    assert losses[True][-1] < losses[True][0]  # it learns


def test_training_with_every_augmentation_on(tmp_path):
    import re

    manifest = write_fsdd_manifest(tmp_path / "six.jsonl", OVERFIT_ITEMS)
    overrides = TINY_OVERRIDES + [
        f"exp_dir={tmp_path / 'exp'}", f"data.train_manifest={manifest}", f"data.dev_manifest={manifest}",
        "epochs=2", "log_every=1", "data.batch_seconds=2", "augment.enabled=true", "augment.speeds=[0.9,1.0,1.1]", "augment.gain_db=[-20,6]", "augment.telephone_prob=0.5",
        "augment.eq_db=8", "augment.noise_prob=0.5", "augment.reverb_prob=0.3", "augment.vtlp=0.1"]
    train(load_train_config(None, overrides), show_progress=False)
    losses = [float(x) for x in re.findall(r"step \d+ loss ([\d.]+)", (tmp_path / "exp" / "train.log").read_text())]
    assert len(losses) >= 4 and all(math.isfinite(x) for x in losses)
    assert (tmp_path / "exp" / "best.pt").is_file()
    with pytest.raises(AsrError, match="augment.vtlp warps log-mel features"):
        train(load_train_config(None, overrides + ["features.kind=mfcc", "features.n_mfcc=20"]), show_progress=False)


@pytest.mark.slow
def test_bpe_units_learn_real_recordings_word_by_word(tmp_path):
    from asr.data import read_manifest

    manifest = write_fsdd_manifest(tmp_path / "six.jsonl", OVERFIT_ITEMS)
    config = load_train_config(None, TINY_OVERRIDES + [
        f"exp_dir={tmp_path / 'exp'}", f"data.train_manifest={manifest}", f"data.dev_manifest={manifest}",
        "units.kind=bpe", "units.size=40"])
    recognizer = load_checkpoint(train(config, show_progress=False))
    vocab = recognizer.vocab
    assert all(len(vocab.encode(u.text)) == 1 for u in read_manifest(manifest))  # one unit per word
    summary, rows = evaluate_manifest(recognizer, manifest, GreedyDecoder(vocab), num_workers=0)
    assert [r["hypothesis"] for r in rows] == [WORDS[d] for d, _, _ in OVERFIT_ITEMS]


@pytest.mark.slow
def test_speaker_normalized_features_learn_two_speakers(tiny_model, tmp_path):
    import json

    import torch

    from conftest import fsdd_file

    items = [(0, "jackson"), (1, "theo"), (2, "jackson"), (3, "theo"), (6, "jackson"), (8, "theo")]
    manifest = tmp_path / "two.jsonl"
    manifest.write_text("".join(json.dumps({"audio_filepath": str(fsdd_file(d, who, 10)), "text": WORDS[d],
                                            "speaker": who}) + "\n" for d, who in items))
    overrides = TINY_OVERRIDES + [f"data.train_manifest={manifest}", f"data.dev_manifest={manifest}",
                                  "features.normalize=speaker"]
    recognizer = load_checkpoint(train(load_train_config(None, overrides + [f"exp_dir={tmp_path / 'exp'}"]),
                                       show_progress=False))
    assert recognizer.features.config.normalize == "speaker"
    summary, rows = evaluate_manifest(recognizer, manifest, GreedyDecoder(recognizer.vocab), num_workers=0)
    assert [r["hypothesis"] for r in rows] == [WORDS[d] for d, _ in items]
    log = (tmp_path / "exp" / "train.log").read_text()
    assert "features normalized per speaker: 2 speakers in training, 2 in dev" in log

    # a model trained on training-set statistics is fine-tuned per speaker, keeping its spread;
    # other switches of the normalization are refused
    base = train(load_train_config(None, TINY_OVERRIDES + [
        f"exp_dir={tmp_path / 'base'}", f"data.train_manifest={manifest}", f"data.dev_manifest={manifest}",
        "features.normalize=global", "epochs=1"]), show_progress=False)
    tuned = load_checkpoint(train(load_train_config(None, overrides + [
        f"exp_dir={tmp_path / 'tuned'}", f"init_from={base}", "epochs=1", "optim.lr=1e-6",
        "average_last=0"]), show_progress=False))
    assert tuned.features.config.normalize == "speaker"
    assert torch.equal(tuned.features.std, load_checkpoint(base).features.std)
    checkpoint, _ = tiny_model  # level-normalized: its features are not those a speaker mean is taken of
    with pytest.raises(AsrError, match=r"features.normalize level \(config: speaker\)"):
        train(load_train_config(None, overrides + [f"exp_dir={tmp_path / 'x'}", f"init_from={checkpoint}"]),
              show_progress=False)


@pytest.mark.slow
def test_init_from_a_character_model_gives_it_bpe_units(tiny_model, tmp_path):
    import torch

    checkpoint, manifest = tiny_model
    tuned = load_checkpoint(train(load_train_config(None, TINY_OVERRIDES + [
        f"exp_dir={tmp_path / 'exp'}", f"data.train_manifest={manifest}", f"data.dev_manifest={manifest}",
        f"init_from={checkpoint}", "units.kind=bpe", "units.size=40", "epochs=1", "optim.lr=1e-6",
        "average_last=0"]), show_progress=False))
    original = load_checkpoint(checkpoint)
    assert tuned.vocab.has_pieces and not original.vocab.has_pieces
    theirs, ours = original.model.state_dict(), tuned.model.state_dict()
    assert ours["output.weight"].shape == (len(tuned.vocab), theirs["output.weight"].shape[1])
    assert all(torch.allclose(ours[k], v, atol=1e-4) for k, v in theirs.items() if not k.startswith("output."))
    assert "under an output layer that starts afresh" in (tmp_path / "exp" / "train.log").read_text()


@pytest.mark.slow
def test_init_from_fine_tunes_the_checkpoint(tiny_model, tmp_path):
    import torch

    checkpoint, manifest = tiny_model
    overrides = TINY_OVERRIDES + [f"data.train_manifest={manifest}", f"data.dev_manifest={manifest}", "epochs=1",
                                  "optim.lr=1e-6", "average_last=0"]
    scratch = load_checkpoint(train(load_train_config(None, overrides + [f"exp_dir={tmp_path / 'scratch'}"]),
                                    show_progress=False))
    tuned = load_checkpoint(train(load_train_config(None, overrides + [
        f"exp_dir={tmp_path / 'tuned'}", f"init_from={checkpoint}", "model.dropout=0.2"]), show_progress=False))
    original = load_checkpoint(checkpoint)
    assert scratch.info["dev_wer"] > 50 and tuned.info["dev_wer"] == 0.0  # one epoch alone learns nothing
    assert tuned.vocab == original.vocab
    assert torch.equal(tuned.features.mean, original.features.mean)  # the statistics the weights expect
    assert "(fine-tuning)" in (tmp_path / "tuned" / "train.log").read_text()


@pytest.mark.slow
def test_init_from_refuses_another_architecture_or_new_characters(tiny_model, tmp_path):
    checkpoint, manifest = tiny_model
    overrides = TINY_OVERRIDES + [f"exp_dir={tmp_path / 'exp'}", f"data.dev_manifest={manifest}", "epochs=1",
                                  f"init_from={checkpoint}"]
    with pytest.raises(AsrError, match=r"init_from needs the checkpoint's features and model, but it has "
                                       r"features.n_mels 32 \(config: 40\); model.hidden_size 64 \(config: 80\)"):
        train(load_train_config(None, overrides + [f"data.train_manifest={manifest}", "features.n_mels=40",
                                                   "model.hidden_size=80"]), show_progress=False)
    five = write_fsdd_manifest(tmp_path / "five.jsonl", [(5, "jackson", 11)])
    with pytest.raises(AsrError, match=rf"{five}:1: transcript 'five'"):
        train(load_train_config(None, overrides + [f"data.train_manifest={five}"]), show_progress=False)
    with pytest.raises(AsrError, match="checkpoint not found"):
        train(load_train_config(None, overrides + [f"data.train_manifest={manifest}",
                                                   f"init_from={tmp_path / 'none.pt'}"]), show_progress=False)


def test_train_step_is_what_training_and_the_benchmark_share(tmp_path):
    """The builders and the step of asr.train_step, assembled as scripts/bench_train.py does:
    the same seed gives the same augmented inputs and losses, and repeated steps on one batch
    (augmentation on) bring its loss down."""
    from concurrent.futures import ThreadPoolExecutor

    import torch

    from asr.config import load_train_config
    from asr.data import SpeechDataset, read_manifest
    from asr.text import Vocabulary
    from asr.train_step import TrainStep, build_modules, build_optimizer, build_train_loader, step_threads_for
    from test_resume import tiny_config

    config = load_train_config(None, tiny_config(tmp_path, tmp_path / "exp", 1, "augment.enabled=true",
                                                 "augment.noise_prob=1", "optim.warmup_steps=1"))
    device = torch.device("cpu")
    utterances = read_manifest(config.data.train_manifest)
    vocab = Vocabulary.from_texts(u.text for u in utterances)

    def losses(steps: int) -> tuple[list[float], torch.Tensor]:
        torch.manual_seed(0)
        features, model = build_modules(config, vocab, device)
        dataset = SpeechDataset(utterances, config.features.sample_rate, vocab, features.min_samples)
        batch = next(iter(build_train_loader(config, dataset, device)))
        optimizer, scheduler = build_optimizer(config, model, steps_per_epoch=steps)
        threads = step_threads_for(config, device)
        with ThreadPoolExecutor(threads) as pool:
            step = TrainStep(config, features, model, optimizer, scheduler, device, pool, threads,
                             torch.Generator().manual_seed(config.seed))
            first_inputs = step.inputs(batch)[0]
            found = []
            for _ in range(steps):
                loss, grad_norm = step(batch)
                assert grad_norm > 0
                step.apply()
                found.append(loss)
        return found, first_inputs

    one, inputs_one = losses(25)
    two, inputs_two = losses(25)
    assert one == two and torch.equal(inputs_one, inputs_two)
    assert sum(one[-5:]) / 5 < 0.7 * sum(one[:5]) / 5
