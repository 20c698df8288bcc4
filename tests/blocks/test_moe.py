"""The `moe` channel mixer: routing, the load-balancing loss, costs and training with it.

The registry contract tests (shape, gradients, num_params, FLOPs against FlopCounterMode) run
through test_blocks.py's KNOB_CASES; these check MoE's own semantics against plain references.
"""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from nas.blocks import build_model, get_block
from nas.blocks.channel import swiglu_hidden
from nas.evaluate import train
from nas.evaluate.training import aux_loss_fn
from nas.spec import ArchSpec, LayerSpec, ModuleSpec
from nas.tasks import MQARTask

D = 16



def make_moe(d_model: int = D, seed: int = 0, **knobs):
    torch.manual_seed(seed)
    return get_block("moe").cls(d_model, 0, **knobs)


def swiglu_ref(expert, h: torch.Tensor) -> torch.Tensor:
    """One SwiGLU expert on one token (D,), written out from its weights."""
    w_gate, w_up = expert.fc.weight.chunk(2, dim=0)
    return expert.proj.weight @ (F.silu(w_gate @ h) * (w_up @ h))


def reference(moe, x: torch.Tensor) -> torch.Tensor:
    """Token by token, expert by expert: softmax router, top-k, renormalised gates (the raw
    probability for top_k = 1), the weighted sum of the chosen experts, plus the shared one."""
    flat = x.reshape(-1, x.shape[-1])
    outputs = []
    for h in flat:
        probs = torch.softmax(moe.router.weight @ h, dim=0)
        chosen = [int(e) for e in torch.argsort(probs, descending=True)[: moe.top_k]]
        total = sum(probs[e] for e in chosen) if moe.top_k > 1 else 1.0
        y = sum(probs[e] / total * swiglu_ref(moe.experts[e], h) for e in chosen)
        if moe.shared is not None:
            y = y + swiglu_ref(moe.shared, h)
        outputs.append(y)
    return torch.stack(outputs).reshape(x.shape)


@pytest.mark.parametrize(
    "experts,top_k,shared", [(4, 2, False), (4, 1, False), (3, 3, True), (5, 2, True)]
)
def test_output_equals_token_by_token_reference(experts, top_k, shared):
    moe = make_moe(experts=experts, top_k=top_k, shared_expert=shared).double()
    with torch.no_grad():  # spread the router so that every expert is picked by some tokens
        moe.router.weight.normal_(0.0, 1.0)
    x = torch.randn(2, 7, D, dtype=torch.float64)
    with torch.no_grad():
        expected = reference(moe, x)
        torch.testing.assert_close(moe(x), expected, atol=1e-12, rtol=0)
        torch.testing.assert_close(moe(x[:, 3]), expected[:, 3], atol=1e-12, rtol=0)  # (B, D)


def test_top_k_all_with_equal_router_weights_averages_the_experts():
    moe = make_moe(experts=3, top_k=3).double()
    with torch.no_grad():
        moe.router.weight.copy_(torch.randn(1, D).expand(3, D))  # equal rows: equal logits
    x = torch.randn(2, 5, D, dtype=torch.float64)
    with torch.no_grad():
        mean = sum(expert(x) for expert in moe.experts) / 3
        torch.testing.assert_close(moe(x), mean, atol=1e-12, rtol=0)


def test_aux_loss_matches_the_switch_formula_by_hand():
    moe = make_moe(d_model=2, experts=2, top_k=1, aux_loss_weight=0.5).double()
    probs = torch.tensor([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.6, 0.4]], dtype=torch.float64)
    with torch.no_grad():
        moe.router.weight.copy_(torch.eye(2))
    moe(probs.log().reshape(2, 2, 2))  # logits = log p, so the router gives back exactly p
    # top-1: experts 0, 0, 1, 0 -> f = (3/4, 1/4); P = (0.65, 0.35)
    # aux = 0.5 * 2 * (0.75 * 0.65 + 0.25 * 0.35) = 0.575
    assert moe.aux_loss.item() == pytest.approx(0.575, abs=1e-12)
    moe.top_k = 2  # both experts for every token: f = (1/2, 1/2) -> 0.5 * 2 * 0.5 = 0.5
    moe(probs.log())
    assert moe.aux_loss.item() == pytest.approx(0.5, abs=1e-12)


def test_aux_loss_is_one_for_a_uniform_router_and_only_set_in_training():
    moe = make_moe(experts=4, top_k=2, aux_loss_weight=1.0)
    x = torch.randn(3, 11, D)
    with torch.no_grad():
        moe.router.weight.zero_()
    moe(x)
    assert moe.aux_loss.item() == pytest.approx(1.0, abs=1e-6)
    with torch.no_grad():
        moe.router.weight.normal_(0.0, 1e-3)
    moe(x)
    assert moe.aux_loss.item() == pytest.approx(1.0, abs=1e-2)
    moe.eval()
    moe(x)
    assert moe.aux_loss is None  # eval mode: nothing to add
    silent = make_moe(aux_loss_weight=0.0)
    silent(x)
    assert silent.aux_loss is None


def test_gradients_reach_router_and_each_expert_that_got_tokens():
    moe = make_moe(experts=4, top_k=2)
    with torch.no_grad():
        moe.router.weight[3] = -10.0  # positive inputs never pick expert 3
    x = torch.randn(2, 9, D).abs()
    (moe(x) * torch.randn(2, 9, D)).sum().backward()
    assert moe.router.weight.grad.abs().sum() > 0
    for e in range(3):
        for p in moe.experts[e].parameters():
            assert p.grad is not None and p.grad.abs().sum() > 0, e
    assert all(p.grad is None for p in moe.experts[3].parameters())
    # top-1 gates are the raw router probabilities, so the task loss still trains the router
    top1 = make_moe(experts=4, top_k=1, aux_loss_weight=0.0)
    (top1(x) * torch.randn(2, 9, D)).sum().backward()
    assert top1.router.weight.grad.abs().sum() > 0
    # the aux loss alone reaches the router
    alone = make_moe(experts=4, top_k=2)
    alone(torch.randn(2, 9, D))
    alone.aux_loss.backward()
    assert alone.router.weight.grad.abs().sum() > 0


@pytest.mark.parametrize(
    "knobs", [{}, {"experts": 8, "top_k": 1}, {"experts": 3, "top_k": 3, "shared_expert": True}]
)
def test_costs_are_exact(knobs):
    moe = make_moe(**knobs)
    experts, top_k = knobs.get("experts", 4), knobs.get("top_k", 2)
    shared = knobs.get("shared_expert", False)
    hidden = swiglu_hidden(D, 2)
    assert moe.num_params() == sum(p.numel() for p in moe.parameters())
    assert moe.num_params() == D * experts + (experts + shared) * 3 * D * hidden
    expected = 2 * D * experts + (top_k + shared) * 2 * 3 * D * hidden
    assert moe.flops_per_token(64) == expected
    x = torch.randn(2, 13, D)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        moe(x)
    assert counter.get_total_flops() == expected * 2 * 13  # only routed tokens are computed


def test_validate_rejects_top_k_above_experts():
    cls = get_block("moe").cls
    assert cls.validate(D, experts=4, top_k=5) == ["moe: top_k=5 exceeds experts=4"]
    assert cls.validate(D, experts=4, top_k=4) == []
    assert any(">= 2" in p for p in cls.validate(D, experts=1, top_k=1))
    assert any(">= 1" in p for p in cls.validate(D, top_k=0))
    assert any(">= 0" in p for p in cls.validate(D, aux_loss_weight=-0.1))
    assert any("must be bool" in p for p in cls.validate(D, shared_expert=1))
    with pytest.raises(ValueError, match="top_k=3 exceeds experts=2"):
        cls(D, 0, experts=2, top_k=3)


def test_deepcopy_after_a_training_forward():
    """The stored aux loss is a graph tensor, which deepcopy refuses; the copy drops it."""
    moe = make_moe()
    moe(torch.randn(2, 5, D))
    assert moe.aux_loss is not None
    clone = copy.deepcopy(moe)
    assert clone.aux_loss is None
    torch.testing.assert_close(clone.router.weight, moe.router.weight)


# -- in a model, through training --------------------------------------------------------------
def moe_spec(aux_loss_weight: float = 0.01) -> ArchSpec:
    moe = ModuleSpec.make("moe", experts=4, top_k=2, aux_loss_weight=aux_loss_weight)
    return ArchSpec(
        d_model=D,
        vocab_size=16,
        layers=(
            LayerSpec(ModuleSpec.make("short_conv", kernel_size=3), moe),
            LayerSpec(ModuleSpec.make("attention", heads=2), ModuleSpec.make("swiglu")),
            LayerSpec(ModuleSpec.make("attention", heads=2), moe),
        ),
    )


TASK = MQARTask(vocab_size=16, seq_len=24, num_kv_pairs=3)


def test_model_collects_aux_losses():
    model = build_model(moe_spec(aux_loss_weight=0.5), seed=0)
    moes = [model.blocks[0].channel, model.blocks[2].channel]
    assert model.aux_loss_modules() == tuple(moes)
    tokens = torch.randint(0, 16, (2, 24))
    model.train()(tokens)
    total = moes[0].aux_loss + moes[1].aux_loss
    torch.testing.assert_close(model.aux_loss(), total)
    assert 0.5 <= moes[0].aux_loss.item() <= 0.5 * 4  # the balance term lies in [1, experts]
    with torch.no_grad():
        model.eval()(tokens)
    assert model.aux_loss().item() == 0.0
    copy.deepcopy(model.train())  # latency timing copies models


def test_models_without_moe_skip_the_aux_loss():
    spec = ArchSpec(
        d_model=D,
        vocab_size=16,
        layers=(LayerSpec(ModuleSpec.make("attention", heads=2), ModuleSpec.make("swiglu")),),
    )
    model = build_model(spec, seed=0)
    assert model.aux_loss_modules() == ()
    assert aux_loss_fn(model) is None  # train() takes the plain path
    assert model.aux_loss().item() == 0.0
    assert aux_loss_fn(build_model(moe_spec(), seed=0)) is not None


def router_grads_of_first_step(aux_loss_weight: float) -> tuple[torch.Tensor, float]:
    model = build_model(moe_spec(aux_loss_weight), seed=0)
    router = model.blocks[0].channel.router.weight
    grads = []
    router.register_hook(lambda g: grads.append(g.clone()))
    result = train(model, TASK, steps=1, batch_size=8, lr=1e-3, grad_clip=0.0, log_every=1)
    return grads[0], result.curve[0][2]


def test_moe_model_trains_and_its_aux_loss_reaches_the_backward():
    model = build_model(moe_spec(), seed=0)
    result = train(model, TASK, steps=4, batch_size=8, lr=3e-3, log_every=2)
    assert [step for step, _, _ in result.curve] == [2, 4]
    assert all(math.isfinite(value) for _, _, value in result.curve)

    weight = 100.0  # large: the balance term dominates the router's gradient
    plain_grad, plain_loss = router_grads_of_first_step(0.0)
    aux_grad, aux_loss = router_grads_of_first_step(weight)
    assert aux_loss == plain_loss  # the logged train_loss is the task loss alone

    # the difference is exactly the gradient of the aux loss on that first batch
    model = build_model(moe_spec(weight), seed=0).train()
    inputs, _ = TASK.sample(8, torch.Generator().manual_seed(0))  # train()'s first batch
    model(inputs)
    router = model.blocks[0].channel.router.weight
    (expected,) = torch.autograd.grad(model.aux_loss(), router)
    assert expected.abs().sum() > 0
    torch.testing.assert_close(aux_grad - plain_grad, expected, atol=1e-6, rtol=1e-4)
