"""The lm task's tokens beyond bytes: a BPE trained on the train split (vocabulary, windows,
train-only training, determinism, bytes per token, bits per byte end to end) and nanoGPT-style
uint16 .bin files."""

from __future__ import annotations

import array
import hashlib
import math
import os
import random
import subprocess
import sys

import pytest
import torch

from nas.errors import SpaceError
from nas.evaluate.scoring import loss_metrics
from nas.evaluate.training import evaluate, train
from nas.searchspace import load, loads
from nas.spec import ArchSpec, LayerSpec, ModuleSpec
from nas.tasks import LMTask, MQARTask, make_task, task_vocab_size
from nas.tasks import tokens as tokens_module
from nas.tasks.corpus import clear_cache, load_corpus
from nas.tasks.tokens import TokenCorpus, train_bpe

SMALL = 200_000  # bytes of the stdlib: a BPE trains and encodes it in well under a second
BPE = {"kind": "lm", "tokenizer": "bpe", "vocab_size": 512, "seq_len": 32, "max_bytes": SMALL}


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def tokenizer_hash(tokenizer) -> str:
    return hashlib.sha256(tokenizer.to_str().encode()).hexdigest()


def test_bpe_vocabulary_windows_and_splits():
    task = make_task(BPE)
    assert task.vocab_size == 512 and task_vocab_size(BPE | {"vocab_size": None}) == 1024
    tokens = task.tokens
    assert isinstance(tokens, TokenCorpus) and tokens.ids.dtype == torch.int32
    assert 0 <= int(tokens.ids.min()) and tokens.max_id == int(tokens.ids.max()) < 512
    assert tokens.tokenizer.get_vocab_size() == 512

    # each split is its own text, encoded on its own (in pieces, exactly as if whole)
    corpus = task.corpus
    train_text = corpus.data[: corpus.split].decode()
    val_text = corpus.data[corpus.split :].decode()
    assert tokens.ids[: tokens.split].tolist() == tokens.tokenizer.encode(train_text).ids
    assert tokens.ids[tokens.split :].tolist() == tokens.tokenizer.encode(val_text).ids
    assert tokens.tokenizer.decode(tokens.ids[tokens.split :].tolist()) == val_text

    inputs, targets = task.sample(8, gen(3))
    assert inputs.shape == targets.shape == (8, 32) and inputs.dtype == torch.long
    assert torch.equal(targets[:, :-1], inputs[:, 1:])
    ids = tokens.ids.long()
    for start, row in zip(task.window_starts(8, gen(3)), inputs, strict=True):
        assert torch.equal(row, ids[int(start) : int(start) + 32])

    width = task.seq_len + 1
    train_starts = task.window_starts(4096, gen(0), "train")
    val_starts = task.window_starts(4096, gen(0), "val")
    assert task.split_range("train") == (0, tokens.split)
    assert task.split_range("val") == (tokens.split, len(tokens))
    assert int(train_starts.min()) >= 0 and int(train_starts.max()) + width <= tokens.split
    assert int(val_starts.min()) >= tokens.split and int(val_starts.max()) + width <= len(tokens)


def test_the_space_loads_with_the_bpe_vocabulary_and_names_a_bad_tokenizer(tiny_space_text):
    mqar = "task: {kind: mqar, vocab_size: 16, seq_len: 24, num_kv_pairs: 3}"
    bpe = "task: {kind: lm, tokenizer: bpe, vocab_size: 512, seq_len: 32, max_bytes: 200000}"
    text = tiny_space_text.replace(mqar, bpe)
    assert loads(text, "lm.yaml").vocab_size == 512  # what every model's embedding gets
    with pytest.raises(SpaceError, match=r"task\.tokenizer: lm: tokenizer='bep' is not one of "
                                         r"byte, bpe.*fix: set tokenizer: byte"):
        loads(text.replace("tokenizer: bpe", "tokenizer: bep"), "lm.yaml")


def test_the_bpe_never_sees_the_validation_text(tmp_path):
    rng = random.Random(0)
    words = ["".join(rng.choice("abcdefgh") for _ in range(rng.randint(2, 7))) for _ in range(300)]
    train_text = " ".join(rng.choice(words) for _ in range(6000)) + "\n"
    val_text = "xyzzyquux " * 400  # letters the train split never has, one word repeated
    path = tmp_path / "corpus.txt"
    path.write_text(train_text + val_text)
    fraction = len(val_text) / (len(train_text) + len(val_text))
    task = LMTask(source=str(path), tokenizer="bpe", vocab_size=400, seq_len=8,
                  val_fraction=fraction)
    tokens = task.tokens
    assert task.corpus.data[task.corpus.split :] == val_text.encode()
    # trained on train only: no merge touches x, y, z, q or u, so the word stays 9 tokens
    assert len(tokens.tokenizer.encode("xyzzyquux").ids) == 9
    assert len(tokens) - tokens.split == 10 * 400  # each " xyzzyquux" is space + 9 letters
    # (the check can fail: a BPE that saw the val text makes the word one token)
    assert len(train_bpe(train_text + val_text, 400).encode("xyzzyquux").ids) == 1


def test_bpe_training_is_deterministic_across_trainings_and_processes(monkeypatch):
    monkeypatch.setenv("NAS_CACHE_DIR", "")  # train both times, no disk cache
    clear_cache()
    first = make_task(BPE).tokens
    clear_cache()
    second = make_task(BPE).tokens
    assert second is not first and second.tokenizer is not first.tokenizer
    assert torch.equal(first.ids, second.ids) and first.split == second.split
    assert tokenizer_hash(first.tokenizer) == tokenizer_hash(second.tokenizer)

    # a fresh process with one Rayon thread trains the same tokenizer, without torch
    code = (
        "import hashlib, sys; from nas.tasks.corpus import load_corpus; "
        "from nas.tasks.tokens import train_bpe; "
        f"c = load_corpus('stdlib', {SMALL}, 0.05); "
        "t = train_bpe(c.data[:c.split].decode(), 512); "
        "assert 'torch' not in sys.modules; "
        "print(hashlib.sha256(t.to_str().encode()).hexdigest())"
    )
    env = os.environ | {"RAYON_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                         text=True, env=env).stdout.strip()
    assert out == tokenizer_hash(first.tokenizer)


def test_a_trained_bpe_is_kept_on_disk_and_reloaded(monkeypatch, tmp_path):
    monkeypatch.setenv("NAS_CACHE_DIR", str(tmp_path))
    clear_cache()
    trained = make_task(BPE).tokens
    folders = list((tmp_path / "bpe").iterdir())
    assert [f.name for f in folders] and not any(f.name.endswith(".tmp") for f in folders)

    def no_training(*args, **kwargs):
        raise AssertionError("the tokenizer was trained again")

    monkeypatch.setattr(tokens_module, "train_bpe", no_training)
    clear_cache()  # a new process, as far as the in-memory cache knows
    loaded = make_task(BPE).tokens
    assert torch.equal(loaded.ids, trained.ids) and loaded.split == trained.split
    assert tokenizer_hash(loaded.tokenizer) == tokenizer_hash(trained.tokenizer)
    assert loaded.bytes_per_token == trained.bytes_per_token

    # a damaged cache is not trusted: the tokenizer is trained again, to the same result
    (folders[0] / "ids.bin").write_bytes(b"\x00" * 12)
    monkeypatch.setattr(tokens_module, "train_bpe", train_bpe)
    clear_cache()
    assert torch.equal(make_task(BPE).tokens.ids, trained.ids)
    assert (folders[0] / "ids.bin").stat().st_size == 4 * len(trained.ids)  # and repaired


def test_an_empty_cache_dir_setting_keeps_nothing_on_disk(monkeypatch, tmp_path):
    monkeypatch.setenv("NAS_CACHE_DIR", "")
    monkeypatch.setattr("pathlib.Path.home", lambda: tmp_path)
    clear_cache()
    assert len(make_task(BPE).tokens) > 0
    assert not any(tmp_path.iterdir())


def test_bytes_per_token():
    task = make_task(BPE)
    corpus, tokens = task.corpus, task.tokens
    expected = (len(corpus) - corpus.split) / (len(tokens) - tokens.split)
    assert task.bytes_per_token == pytest.approx(expected) and expected > 1.5
    assert LMTask(max_bytes=SMALL).bytes_per_token == 1.0
    assert MQARTask().bytes_per_token is None  # the Task default: tokens are the unit


def test_loss_metrics_divide_bits_by_bytes_per_token():
    plain, halved = loss_metrics(1.5), loss_metrics(1.5, bytes_per_token=2.0)
    assert plain["bits_per_byte"] == pytest.approx(1.5 / math.log(2))
    assert halved["bits_per_byte"] == pytest.approx(plain["bits_per_byte"] / 2)
    assert halved["perplexity"] == plain["perplexity"] == pytest.approx(math.exp(1.5))
    assert loss_metrics(1.5, None) == plain


def test_evaluate_on_bpe_reports_bits_per_byte_of_text():
    from nas.blocks import build_model

    task = make_task(BPE)
    channel = ModuleSpec.make("swiglu", expansion=2)
    spec = ArchSpec(d_model=16, vocab_size=task.vocab_size, layers=(
        LayerSpec(ModuleSpec.make("short_conv", kernel_size=4), channel),))
    model = build_model(spec, seed=0)
    result = train(model, task, steps=5, batch_size=4, lr=1e-2, seed=0)
    scores = evaluate(model, task, n_examples=16, batch_size=16, seed=0)
    assert result.steps == 5 and math.isfinite(scores["loss"])
    bits = scores["loss"] / math.log(2) / task.bytes_per_token
    assert scores["bits_per_byte"] == pytest.approx(bits)
    assert scores["perplexity"] == pytest.approx(math.exp(scores["loss"]))  # per token


def write_uint16(path, values: list[int]) -> None:
    ids = array.array("H", values)
    if sys.byteorder == "big":
        ids.byteswap()  # the file is little-endian, as numpy writes it on x86 and ARM
    path.write_bytes(ids.tobytes())


def test_uint16_bin_files_are_read_as_tokens(tmp_path):
    values = [(i * 7919) % 40_000 for i in range(3000)]
    path = tmp_path / "train.bin"
    write_uint16(path, values)
    task = make_task({"kind": "lm", "source": str(path), "token_dtype": "uint16",
                      "vocab_size": 40_000, "seq_len": 16, "val_fraction": 0.25})
    tokens = task.tokens
    assert tokens.ids.tolist() == values and tokens.max_id == max(values)
    assert task.split_range("train") == (0, 2250) and task.split_range("val") == (2250, 3000)
    assert task.bytes_per_token is None  # bits_per_byte is then bits per token
    for split in ("train", "val"):
        inputs, targets = task.sample(8, gen(1), split)
        for start, row_in, row_tg in zip(task.window_starts(8, gen(1), split), inputs, targets,
                                         strict=True):
            window = values[int(start) : int(start) + 17]
            assert row_in.tolist() == window[:-1] and row_tg.tolist() == window[1:]

    capped = LMTask(source=str(path), token_dtype="uint16", vocab_size=40_000, seq_len=16,
                    max_bytes=1001, val_fraction=0.5)  # 1001 bytes: 500 tokens
    assert capped.tokens.ids.tolist() == values[:500] and capped.split_range("val") == (250, 500)

    too_small = rf"vocab_size=1000 is too small for .*train\.bin: its largest token id is " \
                rf"{max(values)}; fix: set vocab_size to at least {max(values) + 1}"
    with pytest.raises(ValueError, match=too_small):  # checked when the task is made
        LMTask(source=str(path), token_dtype="uint16", vocab_size=1000, seq_len=16)
    # only the ids within max_bytes count: the first 100 tokens are all below 40000
    head = LMTask(source=str(path), token_dtype="uint16", vocab_size=max(values[:100]) + 1,
                  seq_len=16, max_bytes=200, val_fraction=0.5)
    assert head.tokens.max_id == max(values[:100])


def test_a_uint16_bin_with_ids_above_vocab_size_fails_when_the_space_loads(tmp_path,
                                                                          tiny_space_text):
    """The tester's file: ids 0..499, vocab_size 300. An error at task.vocab_size, exit 2, not a
    failure in every trial."""
    path = tmp_path / "tokens.bin"
    write_uint16(path, [i % 500 for i in range(20_000)])
    task = (f"task: {{kind: lm, source: {path}, token_dtype: uint16, vocab_size: 300, "
            "seq_len: 32}")
    space = tmp_path / "space.yaml"
    space.write_text(tiny_space_text.replace(
        "task: {kind: mqar, vocab_size: 16, seq_len: 24, num_kv_pairs: 3}", task))
    column = task.index("vocab_size: 300") + 1
    with pytest.raises(SpaceError, match=rf"space\.yaml:2:{column}: task\.vocab_size: lm: "
                                         r"vocab_size=300 is too small for .*tokens\.bin: its "
                                         r"largest token id is 499 — fix: set vocab_size to at "
                                         r"least 500$"):
        load(space)
    result = subprocess.run([sys.executable, "-m", "nas", "validate", str(space)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert "task.vocab_size" in result.stderr and "Traceback" not in result.stderr
    space.write_text(space.read_text().replace("vocab_size: 300", "vocab_size: 500"))
    assert load(space).vocab_size == 500


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"tokenizer": "bep"}, r"tokenizer='bep' is not one of byte, bpe; fix:"),
        ({"token_dtype": "int32"}, r"token_dtype='int32' is not one of uint8, uint16; fix:"),
        ({"token_dtype": "uint16"}, r"token_dtype='uint16' only applies to a \.bin file.*fix:"),
        ({"tokenizer": "bpe", "vocab_size": 256}, r"vocab_size=256 is out of range.*257 and"),
        ({"tokenizer": "bpe", "vocab_size": 70_000}, r"vocab_size=70000 is out of range"),
        ({"vocab_size": 1024}, r"vocab_size=1024 is not supported.*or set tokenizer: bpe"),
    ],
)
def test_bad_token_settings_name_the_key_and_the_fix(config, message):
    with pytest.raises(ValueError, match=rf"^lm: {message}"):
        make_task({"kind": "lm", "max_bytes": SMALL} | config)


def test_bad_bin_settings_name_the_key_and_the_fix(tmp_path):
    path = tmp_path / "tokens.bin"
    write_uint16(path, list(range(1000)))
    with pytest.raises(ValueError, match=r"^lm: tokenizer='bpe' does not apply to .*\.bin.*fix:"):
        LMTask(source=str(path), tokenizer="bpe")
    with pytest.raises(ValueError, match=r"^lm: vocab_size=None: a uint16 \.bin file needs "
                                         r"vocab_size.*fix: set vocab_size"):
        LMTask(source=str(path), token_dtype="uint16")
    with pytest.raises(ValueError, match=r"\(1000 uint16 tokens, 950 for training, 50 for "
                                         r"validation\) is too small"):
        LMTask(source=str(path), token_dtype="uint16", vocab_size=1000, seq_len=600)


def test_importing_and_validating_stays_torch_and_tokenizers_free():
    code = (
        "import sys; from nas.tasks import make_task; "
        "t = make_task({'kind': 'lm', 'tokenizer': 'bpe'}); assert t.vocab_size == 1024; "
        "assert 'torch' not in sys.modules and 'tokenizers' not in sys.modules, sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    assert load_corpus("stdlib", SMALL, 0.05) is make_task(BPE).corpus  # text cached once
