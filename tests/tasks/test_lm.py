"""The byte-level lm task: the stdlib corpus, windows, splits, validation, and a tiny model
that learns something about Python source in 50 steps."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest
import torch
from torch import nn

from nas.errors import SpaceError
from nas.evaluate.training import evaluate, train
from nas.searchspace import loads
from nas.searchspace.schema import KNOWN_METRICS
from nas.spec import ArchSpec, LayerSpec, ModuleSpec
from nas.tasks import LMTask, make_task, task_options, task_vocab_size
from nas.tasks.corpus import SEPARATOR, load_corpus

SMALL = 400_000  # bytes of the stdlib most tests use: quick to sample, still many files


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_stdlib_corpus_loads_once_and_splits_at_a_file_boundary():
    task = make_task({"kind": "lm"})
    assert task == LMTask() and task.vocab_size == 256 and task.seq_len == 128
    corpus = task.corpus
    assert len(corpus) == 8_000_000 and corpus.files > 50
    assert b"def " in corpus.data[:100_000] and b"import " in corpus.data[corpus.split :]
    # validation starts with a whole file, right after a separator, about the last 5%
    assert corpus.data[corpus.split - 1 : corpus.split] == SEPARATOR
    assert abs((len(corpus) - corpus.split) / len(corpus) - 0.05) < 0.01
    # cached per process: another task with the same corpus settings reads nothing
    assert LMTask(seq_len=32).corpus is corpus
    assert load_corpus("stdlib", 8_000_000, 0.05) is corpus


def test_shapes_determinism_and_shifted_targets():
    task = LMTask(seq_len=64, max_bytes=SMALL)
    inputs, targets = task.sample(8, gen(3))
    assert inputs.shape == targets.shape == (8, 64)
    assert inputs.dtype == targets.dtype == torch.long
    assert 0 <= int(inputs.min()) and int(inputs.max()) < 256
    again, other = task.sample(8, gen(3)), task.sample(8, gen(4))
    assert torch.equal(again[0], inputs) and torch.equal(again[1], targets)
    assert not torch.equal(other[0], inputs)

    assert torch.equal(targets[:, :-1], inputs[:, 1:]), "targets are inputs shifted by one"
    data = task.corpus.tensor().long()
    for start, row_in, row_tg in zip(task.window_starts(8, gen(3)), inputs, targets, strict=True):
        window = data[int(start) : int(start) + 65]
        assert torch.equal(row_in, window[:-1]) and torch.equal(row_tg, window[1:])


def test_train_and_val_windows_come_from_disjoint_byte_ranges():
    task = LMTask(seq_len=128, max_bytes=SMALL, val_fraction=0.1)
    train_range, val_range = task.split_range("train"), task.split_range("val")
    assert train_range[0] == 0 and train_range[1] == val_range[0] and val_range[1] == SMALL
    width = task.seq_len + 1
    train_starts = task.window_starts(4096, gen(0), "train")
    val_starts = task.window_starts(4096, gen(0), "val")
    assert int(train_starts.min()) >= 0 and int(train_starts.max()) + width <= train_range[1]
    assert int(val_starts.min()) >= val_range[0] and int(val_starts.max()) + width <= SMALL
    assert int(val_starts.max()) + width > SMALL - 2_000, "val windows cover the split's end"
    # the held-out stream evaluate() draws is the val split; training's is the train split
    val_inputs, _ = task.sample_split(4, gen(1), split="val")
    assert torch.equal(val_inputs, task.sample(4, gen(1), split="val")[0])
    assert torch.equal(task.sample_split(4, gen(1))[0], task.sample(4, gen(1))[0])
    with pytest.raises(ValueError, match="unknown split 'test'"):
        task.sample(4, gen(1), split="test")


def test_text_and_bin_file_sources_split_at_the_exact_byte(tmp_path):
    text = tmp_path / "corpus.txt"
    text.write_bytes(bytes(range(256)) * 8)  # 2048 bytes
    task = LMTask(source=str(text), seq_len=16, val_fraction=0.25)
    assert task.split_range("train") == (0, 1536) and task.split_range("val") == (1536, 2048)
    inputs, targets = task.sample(4, gen(0), split="val")
    assert torch.equal(targets, (inputs + 1) % 256)  # bytes count up, so next = this + 1

    tokens = tmp_path / "tokens.bin"
    tokens.write_bytes(bytes([7, 9]) * 600)  # uint8 tokens
    capped = LMTask(source=str(tokens), seq_len=8, max_bytes=1000, val_fraction=0.5)
    assert len(capped.corpus) == 1000 and capped.split_range("val") == (500, 1000)
    assert set(capped.sample(2, gen(0))[0].unique().tolist()) == {7, 9}


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"vocab_size": 512}, r"vocab_size=512 is not supported.*fix: set vocab_size: 256"),
        ({"source": "no/such/file.txt"}, r"source='no/such/file.txt' does not exist.*fix:"),
        ({"source": "."}, r"source='\.' is not a file"),
        ({"seq_len": 0}, r"seq_len must be a positive integer"),
        ({"val_fraction": 1.0}, r"val_fraction must be a number strictly between 0 and 1"),
        ({"max_bytes": 1000, "seq_len": 128}, r"too small for seq_len=128.*fix:"),
        ({"seqlen": 64}, r"unknown config key\(s\) 'seqlen' \(did you mean 'seq_len'\?\); "
                         r"fix: use only the accepted keys: kind, source, seq_len"),
    ],
)
def test_bad_configs_name_the_key_and_the_fix(config, message):
    with pytest.raises(ValueError, match=message):
        make_task({"kind": "lm"} | config)


def test_registry_options_and_no_torch_at_validation():
    assert task_options("lm") == {
        "source": "stdlib", "seq_len": 128, "val_fraction": 0.05, "max_bytes": 8_000_000,
        "vocab_size": None, "tokenizer": "byte", "token_dtype": "uint8",
    }
    code = (
        "import sys; from nas.tasks import task_vocab_size, make_task; "
        "assert task_vocab_size({'kind': 'lm'}) == 256; "
        "make_task({'kind': 'lm', 'seq_len': 64}); "
        "assert 'torch' not in sys.modules, 'nas.tasks imported torch'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    assert task_vocab_size({"kind": "lm", "seq_len": 64}) == 256


def test_space_file_errors_are_one_line_and_metrics_are_known(tiny_space_text):
    lm_space = tiny_space_text.replace(
        "task: {kind: mqar, vocab_size: 16, seq_len: 24, num_kv_pairs: 3}",
        "task: {kind: lm, seq_len: 32, max_bytes: 100000}",
    ).replace("{name: accuracy, goal: maximize}", "{name: bits_per_byte}")
    space = loads(lm_space, "lm.yaml")
    assert space.vocab_size == 256
    assert KNOWN_METRICS["bits_per_byte"] == KNOWN_METRICS["perplexity"] == "minimize"
    with pytest.raises(SpaceError,
                       match=r"^lm\.yaml:2:31: task\.vocab_size: lm: vocab_size=300.*fix") as info:
        loads(lm_space.replace("max_bytes: 100000", "vocab_size: 300"), "lm.yaml")
    assert "\n" not in str(info.value)


class _AlwaysPredicts(nn.Module):
    """Logits that always favour one byte."""

    def __init__(self, byte: int) -> None:
        super().__init__()
        self.byte = byte
        self.scale = nn.Parameter(torch.ones(()))

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        logits = torch.zeros(*inputs.shape, 256)
        logits[..., self.byte] = 10.0
        return logits * self.scale


def test_evaluate_scores_the_val_split_and_reports_bits_and_perplexity(tmp_path):
    path = tmp_path / "ab.txt"
    path.write_bytes(b"a" * 3000 + b"b" * 1000)  # train: all 'a'; val: all 'b'
    task = LMTask(source=str(path), seq_len=16, val_fraction=0.25)
    scores = evaluate(_AlwaysPredicts(ord("b")), task, n_examples=64, batch_size=32)
    assert scores["accuracy"] == 1.0, "evaluation must draw from the val split"
    assert evaluate(_AlwaysPredicts(ord("a")), task, n_examples=64)["accuracy"] == 0.0
    assert scores["bits_per_byte"] == pytest.approx(scores["loss"] / math.log(2))
    assert scores["perplexity"] == pytest.approx(math.exp(scores["loss"]))


def test_a_tiny_model_learns_python_bytes_in_50_steps():
    from nas.blocks import build_model

    channel = ModuleSpec.make("swiglu", expansion=2)
    spec = ArchSpec(
        d_model=32,
        vocab_size=256,
        layers=(
            LayerSpec(ModuleSpec.make("short_conv", kernel_size=4), channel),
            LayerSpec(ModuleSpec.make("attention", heads=2), channel),
        ),
    )
    task = LMTask(seq_len=64, max_bytes=SMALL)
    model = build_model(spec, seed=0)
    before = evaluate(model, task, n_examples=64, seed=0)
    result = train(model, task, steps=50, batch_size=16, lr=1e-2, warmup_fraction=0.1, seed=0)
    after = evaluate(model, task, n_examples=64, seed=0)
    assert result.steps == 50 and math.isfinite(result.final_loss)
    # uniform over bytes is 8 bits; even byte frequencies alone give about 5 on Python source
    assert after["bits_per_byte"] < 6.5 < before["bits_per_byte"]
    assert after["accuracy"] > 0.15
