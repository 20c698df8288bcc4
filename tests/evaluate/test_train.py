"""train / evaluate on real models: learning, schedule, logging, divergence, determinism."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from nas.blocks import build_model
from nas.evaluate import EVAL_SEED_OFFSET, TrialDiverged, evaluate, lr_factor, train
from nas.evaluate.training import FINAL_LR_FRACTION, warmup_steps_for


def test_tiny_model_learns_mqar(make_spec, tiny_task):
    """The test that proves training is real: near chance before, near perfect after."""
    spec = make_spec()
    before = evaluate(build_model(spec, seed=0), tiny_task, n_examples=512)
    model = build_model(spec, seed=0)
    result = train(
        model, tiny_task, steps=400, batch_size=32, lr=1e-2, warmup_fraction=0.3, log_every=50
    )
    after = evaluate(model, tiny_task, n_examples=512)
    chance = 1 / 8  # 8 possible values
    assert before["accuracy"] < 2 * chance
    assert after["accuracy"] > 0.9, after
    assert after["loss"] < 0.5 * before["loss"]
    losses = [value for _, _, value in result.curve]
    assert losses[-1] < 0.25 * losses[0], losses
    assert result.steps == 400 and result.train_seconds > 0


def test_lr_schedule_warms_up_then_decays_to_a_tenth():
    steps, warmup = 100, warmup_steps_for(100, 0.1)
    factors = [lr_factor(s, steps, warmup) for s in range(steps)]
    assert warmup == 10
    assert factors[0] == pytest.approx(0.1) and factors[9] == pytest.approx(1.0)
    assert all(a < b for a, b in zip(factors[:10], factors[1:10], strict=False))
    assert all(a >= b for a, b in zip(factors[10:], factors[11:], strict=False))
    assert factors[-1] == pytest.approx(FINAL_LR_FRACTION)
    assert lr_factor(0, 5, 0) < 1.0 and lr_factor(4, 5, 0) == pytest.approx(FINAL_LR_FRACTION)


def test_constant_schedule_warms_up_then_holds_the_peak():
    factors = [lr_factor(s, 100, 10, "constant") for s in range(100)]
    assert factors[0] == pytest.approx(0.1) and set(factors[9:]) == {1.0}
    assert [lr_factor(s, 5, 0, "constant") for s in range(5)] == [1.0] * 5


def test_training_options_read_the_schedule_and_default_old_specs_to_cosine():
    from nas.evaluate.trial import training_options

    base = {"steps": 10, "batch_size": 2, "lr": 1e-3}
    assert training_options(base)["schedule"] == "cosine"  # written before the option
    assert training_options({**base, "schedule": "constant"})["schedule"] == "constant"


def test_weight_decay_reaches_every_parameter_or_matrices_only(make_spec, tiny_task):
    """weight_decay_on: all (the default) decays norm gains too, as torch's AdamW over
    model.parameters() does; matrices spares them; a recipe without the key trained with
    matrices."""
    from nas.evaluate.trial import training_options

    base = {"steps": 10, "batch_size": 2, "lr": 1e-3}
    assert training_options(base)["weight_decay_on"] == "matrices"  # written before the option
    assert training_options({**base, "weight_decay_on": "all"})["weight_decay_on"] == "all"

    from nas.evaluate.training import make_optimizer

    model = build_model(make_spec())

    def decay_of(optimizer) -> dict[int, float]:  # parameter id -> its weight decay
        return {id(p): g["weight_decay"] for g in optimizer.param_groups for p in g["params"]}

    everything = decay_of(make_optimizer(model, 1e-3, 0.5, decay_on="all"))
    matrices = decay_of(make_optimizer(model, 1e-3, 0.5, decay_on="matrices"))
    gains = [id(p) for p in model.parameters() if p.ndim < 2]
    assert gains and set(everything.values()) == {0.5}
    assert all(matrices[g] == 0.0 for g in gains)
    assert all(v == 0.5 for k, v in matrices.items() if k not in gains)
    with pytest.raises(ValueError, match="weight_decay_on"):
        train(build_model(make_spec()), tiny_task, steps=2, batch_size=2, lr=1e-3,
              weight_decay_on="norms")


def test_train_refuses_an_unknown_schedule(make_spec, tiny_task):
    from nas.blocks import build_model

    with pytest.raises(ValueError, match="schedule"):
        train(build_model(make_spec()), tiny_task, steps=2, batch_size=2, lr=1e-3,
              schedule="linear")


def test_logging_every_n_steps_and_at_the_end(make_spec, tiny_task):
    seen = []
    result = train(
        build_model(make_spec(), seed=0), tiny_task, steps=10, batch_size=4, lr=1e-3,
        log_every=4, on_log=lambda *point: seen.append(point),
    )
    assert [step for step, _, _ in result.curve] == [4, 8, 10]
    assert {name for _, name, _ in result.curve} == {"train_loss"}
    assert seen == result.curve
    assert result.final_loss == result.curve[-1][2]


def test_same_seed_same_run_different_seed_different_run(make_spec, tiny_task):
    def run(seed: int) -> list:
        model = build_model(make_spec(), seed=0)
        return train(model, tiny_task, steps=12, batch_size=8, lr=3e-3, seed=seed).curve

    first = run(seed=1)
    assert run(seed=1) == first
    assert run(seed=2) != first


class NaNAfter(nn.Module):
    """Wraps a model; its logits turn NaN from the `bad_call`-th forward on."""

    def __init__(self, model: nn.Module, bad_call: int) -> None:
        super().__init__()
        self.model, self.bad_call, self.calls = model, bad_call, 0

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        logits = self.model(tokens)
        return logits * math.nan if self.calls >= self.bad_call else logits


def test_non_finite_loss_raises_trial_diverged(make_spec, tiny_task):
    model = NaNAfter(build_model(make_spec(), seed=0), bad_call=13)
    with pytest.raises(TrialDiverged) as info:
        train(model, tiny_task, steps=50, batch_size=4, lr=1e-3, log_every=10)
    assert info.value.step == 20  # noticed at the end of the window holding step 13
    assert model.calls == 20
    assert "lower the learning rate" in str(info.value)


def test_huge_learning_rate_diverges(make_spec, tiny_task):
    model = build_model(make_spec(), seed=0)
    with pytest.raises(TrialDiverged):
        train(model, tiny_task, steps=40, batch_size=8, lr=1e6, grad_clip=0.0)  # 0: no clipping


@pytest.mark.parametrize(
    "bad",
    [{"steps": 0}, {"lr": 0.0}, {"warmup_fraction": 1.5}, {"grad_clip": -1.0}, {"log_every": 0}],
)
def test_invalid_arguments(make_spec, tiny_task, bad):
    args = {"steps": 2, "batch_size": 2, "lr": 1e-3} | bad
    with pytest.raises(ValueError, match=next(iter(bad))):
        train(build_model(make_spec(), seed=0), tiny_task, **args)


def test_evaluate_is_held_out_deterministic_and_restores_mode(make_spec, tiny_task):
    model = build_model(make_spec(), seed=0)
    model.train()
    first = evaluate(model, tiny_task, n_examples=100, batch_size=32, seed=3)
    assert model.training
    assert evaluate(model, tiny_task, n_examples=100, batch_size=32, seed=3) == first
    assert set(first) == {"accuracy", "loss", "bits_per_byte", "perplexity"}
    assert 0.0 <= first["accuracy"] <= 1.0
    train_batch = tiny_task.sample(8, torch.Generator().manual_seed(3))[0]
    eval_batch = tiny_task.sample(8, torch.Generator().manual_seed(3 + EVAL_SEED_OFFSET))[0]
    assert not torch.equal(train_batch, eval_batch)


def test_training_continues_after_evaluate(make_spec, tiny_task):
    """Intermediate evaluations (e.g. for pruning) must leave the model trainable: nothing a
    forward under inference_mode caches may reach autograd later."""
    model = build_model(make_spec(), seed=0)
    evaluate(model, tiny_task, n_examples=8)
    train(model, tiny_task, steps=2, batch_size=4, lr=1e-3)


def test_training_in_segments_equals_one_run(make_spec, tiny_task):
    """Stopping at a rung and resuming (as multi-fidelity does) takes the same steps, batches
    and learning rates as an uninterrupted run: the weights agree bit for bit."""
    spec = make_spec()
    options = {"steps": 30, "batch_size": 8, "lr": 3e-3, "seed": 5, "log_every": 4}
    whole = build_model(spec, seed=0)
    train(whole, tiny_task, **options)
    cut = build_model(spec, seed=0)
    first = train(cut, tiny_task, **options, stop_step=7)
    assert first.steps == 7 and first.resume.step == 7 and first.curve[-1][0] == 7
    second = train(cut, tiny_task, **options, resume=first.resume, stop_step=19)
    third = train(cut, tiny_task, **options, resume=second.resume)
    assert third.resume is None and third.steps == 30
    for (name, a), b in zip(whole.state_dict().items(), cut.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    with pytest.raises(ValueError, match="cannot train steps 19..12"):
        train(cut, tiny_task, **options, resume=second.resume, stop_step=12)
