"""How fast nas's built model learns MQAR next to a plain hand-written one (issue #17).

Two models of the same architecture (a list of token mixers, e.g. short_conv then attention)
train on identical MQAR batches (nas's own generator, one seed per run) and are scored on the
same held-out examples every `--eval-every` steps:

* the *reference*, `RefModel` below: token embedding + learned absolute positions, pre-LN
  blocks (causal depthwise conv mixer / causal softmax attention mixer, GELU MLP ×2), final
  LayerNorm, untied head, PyTorch's default initialisation, AdamW at a constant lr;
* *nas*, `nas.blocks.build_model(spec, ...)`, trained with nas's recipe (nas.evaluate.training:
  AdamW betas (0.9, 0.98), no weight decay, clip 1.0, warmup 10% then cosine to 10%).

Every difference between the two is a *factor* that can be switched on either side, so each
one's contribution can be measured alone (`--bisect` runs the whole table):

    init       torch (PyTorch defaults)          | gpt2 (N(0, 0.02), residual outs / sqrt(2L))
    head       untied                            | tied to the embedding
    positions  learned absolute                  | none (RoPE inside attention)
    schedule   constant lr                       | 10% warmup + cosine to 10%
               (also warmup_constant: 10% warmup, then constant; not a default of either side)
    optim      AdamW torch defaults, wd 0.01, no clip | betas (0.9, 0.98), wd 0, clip 1.0
               (also torch_clip and nas_999, see EXTRA_CHOICES; "nas" with --nas-defaults
               current means nas's recipe as it is now, whatever its settings)
    norm       layernorm                         | rmsnorm
    channel    mlp gelu ×2                       | swiglu ×4 (param-matched)

`--nas init=torch,head=untied` builds nas's model with those factors at the reference's choice;
`--ref positions=none` builds the reference with nas's. A factor left out takes the side's own
default (`--nas-defaults` names what "nas" means: `current` = nas's defaults as they are now in
nas/blocks and nas/evaluate, `issue` = the defaults at the time of issue #17).

Examples:
    python benchmarks/learning.py --width 32 --seeds 0 1 2                  # reference vs nas
    python benchmarks/learning.py --bisect --width 32 64 --seeds 0 1 2      # the whole table
    python benchmarks/learning.py --nas init=torch --ref head=tied --steps 400 --lr 2.2e-3

Single thread throughout (torch.set_num_threads(1)); each run prints its wall time.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import json
import math
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from hand_written import GatedShortConv  # noqa: E402  (benchmarks/hand_written.py)

from nas.blocks import build_model, get_block  # noqa: E402
from nas.blocks.attention import Rotary, apply_rotary  # noqa: E402
from nas.blocks.base import mark_residual_out  # noqa: E402
from nas.blocks.channel import swiglu_hidden  # noqa: E402
from nas.blocks.model import init_weights  # noqa: E402
from nas.evaluate.scoring import masked_loss  # noqa: E402
from nas.evaluate.training import EPS, evaluate, lr_factor, make_optimizer, train  # noqa: E402
from nas.spec import ArchSpec, LayerSpec, ModuleSpec  # noqa: E402
from nas.tasks import make_task  # noqa: E402
from nas.tasks.mqar import MQARTask  # noqa: E402

# Each factor: (the reference's choice, nas's choice at the time of the issue).
FACTORS = {
    "init": ("torch", "gpt2"),
    "head": ("untied", "tied"),
    "positions": ("learned", "none"),
    "schedule": ("constant", "cosine"),
    "optim": ("ref", "nas"),
    "norm": ("layernorm", "rmsnorm"),
    "channel": ("mlp2", "swiglu4"),
}
# Switchable, but neither side's default. optim=torch_clip: the reference's AdamW (betas
# (0.9, 0.999), wd 0.01 on every parameter) with nas's clip at 1.0; optim=nas_999: nas's
# optimizer (wd 0 on 1-D parameters, clip 1.0) with betas (0.9, 0.999).
# optim=nas_noclip: nas's current optimizer without the clip; optim=nas_matrices: nas's current
# optimizer with weight decay on matrices only (its default before issue #17's fourth session).
EXTRA_CHOICES = {"schedule": ("warmup_constant",),
                 "optim": ("torch_clip", "nas_999", "nas_noclip", "nas_matrices")}
REF = {name: ref for name, (ref, _) in FACTORS.items()}
NAS_AT_ISSUE = {name: nas for name, (_, nas) in FACTORS.items()}
MIXER_ALIASES = {"conv": "short_conv", "plain": "plain_conv", "attn": "attention",
                 "linear": "linear_attention", "mamba": "mamba2"}


# -- the reference model: plain PyTorch ---------------------------------------------------------
class RefAttention(nn.Module):
    """Causal multi-head softmax attention, optional RoPE. (B, T, D) -> (B, T, D)."""

    def __init__(self, d: int, heads: int = 4, rope: bool = False) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(d, 3 * d, bias=False)
        self.out = nn.Linear(d, d, bias=False)
        self.rotary = Rotary(d // heads, 10000.0) if rope else None

    def forward(self, x):
        B, T, D = x.shape
        q, k, v = self.qkv(x).view(B, T, 3, self.heads, D // self.heads).permute(2, 0, 3, 1, 4)
        if self.rotary is not None:  # q, k: (B, H, T, Dh)
            cos, sin = self.rotary(0, T, x.dtype)
            q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # (B, H, T, Dh)
        return self.out(y.transpose(1, 2).reshape(B, T, D))


class RefPlainConv(nn.Module):
    """Causal depthwise conv with a bias, nothing else (nn.Conv1d, left padding). (B, T, D)."""

    def __init__(self, d: int, k: int = 4) -> None:
        super().__init__()
        self.k = k
        self.conv = nn.Conv1d(d, d, k, groups=d, bias=True)

    def forward(self, x):
        return self.conv(F.pad(x.transpose(1, 2), (self.k - 1, 0))).transpose(1, 2)


class RefMLP(nn.Module):
    """mlp2: Linear(D, 2D), GELU, Linear(2D, D). swiglu4: nas's param-matched SwiGLU shape."""

    def __init__(self, d: int, kind: str) -> None:
        super().__init__()
        self.gated = kind == "swiglu4"
        hidden = swiglu_hidden(d, 4) if self.gated else 2 * d
        self.fc = nn.Linear(d, 2 * hidden if self.gated else hidden, bias=False)
        self.out = nn.Linear(hidden, d, bias=False)

    def forward(self, x):
        if self.gated:
            a, b = self.fc(x).chunk(2, dim=-1)
            return self.out(F.silu(a) * b)
        return self.out(F.gelu(self.fc(x)))


def ref_norm(kind: str, d: int) -> nn.Module:
    return nn.LayerNorm(d) if kind == "layernorm" else nn.RMSNorm(d, eps=1e-6)


class RefBlock(nn.Module):
    def __init__(self, d: int, mixer: nn.Module, f: dict) -> None:
        super().__init__()
        self.n1, self.mixer = ref_norm(f["norm"], d), mixer
        self.n2, self.mlp = ref_norm(f["norm"], d), RefMLP(d, f["channel"])

    def forward(self, x):
        x = x + self.mixer(self.n1(x))
        return x + self.mlp(self.n2(x))


class RefModel(nn.Module):
    """tokens (B, T) -> logits (B, T, V). `f` holds the factor choices (see FACTORS)."""

    def __init__(self, vocab: int, d: int, seq_len: int, mixers: list[str], f: dict) -> None:
        super().__init__()
        self.tok = nn.Embedding(vocab, d)
        self.pos = nn.Embedding(seq_len, d) if f["positions"] == "learned" else None
        rope = f["positions"] == "none"
        layers = []
        for i, kind in enumerate(mixers):
            if kind == "short_conv":
                mixer = GatedShortConv(d)
            elif kind == "plain_conv":
                mixer = RefPlainConv(d)
            elif kind == "attention":
                mixer = RefAttention(d, rope=rope)
            else:  # no hand-written version: borrow nas's block (PyTorch default init)
                mixer = get_block(kind, role="token_mixer").cls(d, i)
            layers.append(RefBlock(d, mixer, f))
        self.blocks = nn.ModuleList(layers)
        self.norm = ref_norm(f["norm"], d)
        self.head = nn.Linear(d, vocab, bias=False)
        if f["head"] == "tied":
            self.head.weight = self.tok.weight
        if f["init"] == "gpt2":  # nas's init, for the switched row
            for block in layers:
                for m in (block.mlp.out, getattr(block.mixer, "out", None)):
                    if isinstance(m, nn.Linear):
                        mark_residual_out(m)
            init_weights(self, len(layers))

    def forward(self, tokens):
        x = self.tok(tokens)  # (B, T, D)
        if self.pos is not None:
            x = x + self.pos.weight[: tokens.shape[1]]
        for block in self.blocks:
            x = block(x)
        return self.head(self.norm(x))  # (B, T, V)


# -- nas's model ---------------------------------------------------------------------------------
def nas_model(vocab: int, d: int, seq_len: int, mixers: list[str], f: dict, seed: int):
    """nas.blocks.build_model for the same architecture with the factor choices `f`."""
    channel = (ModuleSpec.make("mlp", expansion=2, activation="gelu") if f["channel"] == "mlp2"
               else ModuleSpec.make("swiglu", expansion=4))
    layers = tuple(LayerSpec(ModuleSpec.make(kind), channel) for kind in mixers)
    learned = f["positions"] == "learned"
    spec = ArchSpec(d_model=d, vocab_size=vocab, layers=layers, norm=f["norm"], init=f["init"],
                    tie_head=f["head"] == "tied", positions=f["positions"],
                    max_positions=seq_len if learned else None)
    return build_model(spec, seed=seed)


def ref_model(vocab: int, width: int, args, f: dict, seed: int) -> RefModel:
    """The reference model, initialised from `seed` in a forked RNG."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return RefModel(vocab, width, args.seq_len, args.mixers, f)


def copy_weights(source: nn.Module, target: nn.Module) -> None:
    """`--paired-init`: give `target` the very weights `source` (the other side's model of the
    same architecture and seed) drew, parameter by parameter in registration order. The two
    build the same modules in the same order but draw them from the RNG in a different order,
    so unpaired seeds compare two samples of one init distribution; paired seeds compare the
    code and the recipe alone (`ref`: both start from the reference's draw; `nas`: from nas's)."""
    pairs = list(zip(source.parameters(), target.parameters(), strict=True))
    for p, q in pairs:
        if p.shape != q.shape:
            raise SystemExit(f"--paired-init needs one architecture on both sides; a reference "
                             f"parameter {tuple(p.shape)} meets nas's {tuple(q.shape)}")
    with torch.no_grad():
        for p, q in pairs:
            q.copy_(p)


# -- one run -------------------------------------------------------------------------------------
def run(side: str, f: dict, args, width: int, seed: int) -> dict:
    """Train one model from `seed` on MQAR; held-out accuracy every eval_every steps."""
    if args.task == "lm":  # the standard library's source, bytes; scored in bits per byte
        task = make_task({"kind": "lm", "source": "stdlib", "seq_len": args.seq_len})
    else:
        task = MQARTask(vocab_size=args.vocab, seq_len=args.seq_len, num_kv_pairs=args.kv_pairs)
    vocab = task.vocab_size
    if side == "ref":
        model = ref_model(vocab, width, args, f, seed)
        if args.paired_init == "nas":
            copy_weights(nas_model(vocab, width, args.seq_len, args.mixers, f, seed), model)
    else:
        model = nas_model(vocab, width, args.seq_len, args.mixers, f, seed)
        if args.paired_init == "ref":
            copy_weights(ref_model(vocab, width, args, f, seed), model)
    if f["optim"] in ("nas", "nas_noclip", "nas_matrices") and args.nas_defaults == "current":
        recipe = inspect.signature(train).parameters  # nas's recipe as it is now
        decay_on = "matrices" if f["optim"] == "nas_matrices" else \
            recipe["weight_decay_on"].default
        opt = make_optimizer(model, args.lr, recipe["weight_decay"].default,
                             recipe["beta2"].default, decay_on)
        clip = None if f["optim"] == "nas_noclip" else recipe["grad_clip"].default
    elif f["optim"] in ("nas", "nas_999"):  # nas's optimizer at the issue, beta2 0.98
        opt, clip = make_optimizer(model, args.lr, 0.0, 0.999 if f["optim"] == "nas_999"
                                   else 0.98), 1.0
        assert opt.defaults["eps"] == EPS
    else:
        opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
        clip = 1.0 if f["optim"] == "torch_clip" else None
    # nas's own schedule (nas.evaluate.training.lr_factor): 10% warmup, then cosine to 10% or
    # constant; "constant" alone has no warmup
    warmup = 0 if f["schedule"] == "constant" else round(0.1 * args.steps)
    decay = "cosine" if f["schedule"] == "cosine" else "constant"
    gen = torch.Generator().manual_seed(seed)
    curve, reached = {}, None
    start = time.perf_counter()
    for step in range(args.steps):
        factor = lr_factor(step, args.steps, warmup, decay)
        for group in opt.param_groups:
            group["lr"] = args.lr * factor
        inputs, targets = task.sample(args.batch, gen)  # (B, T) each
        loss = masked_loss(model(inputs), targets)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if clip:
            nn.utils.clip_grad_norm_(model.parameters(), clip)
        opt.step()
        done = step + 1
        if done % args.eval_every == 0 or done == args.steps:
            scores = evaluate(model, task, n_examples=args.eval_examples, seed=seed)
            acc = scores["bits_per_byte" if args.task == "lm" else "accuracy"]
            curve[done] = acc
            if reached is None and args.task != "lm" and acc >= args.target:
                reached = done
                if args.stop_at_target:
                    break
    return {"curve": curve, "reached": reached, "seconds": time.perf_counter() - start,
            "final_loss": loss.item()}


def parse_factors(text: str | None) -> dict:
    out = {}
    for item in filter(None, (text or "").split(",")):
        name, _, value = item.partition("=")
        choices = {k: v + EXTRA_CHOICES.get(k, ()) for k, v in FACTORS.items()}
        if name not in choices or value not in choices[name]:
            raise SystemExit(f"bad factor {item!r}; factors: "
                             + "; ".join(f"{k}={'|'.join(v)}" for k, v in choices.items()))
        out[name] = value
    return out


def variants(args) -> list[tuple[str, str, dict]]:
    """(label, side, factor choices) rows to run. With --bisect, `--ref` / `--nas` move the two
    baselines, and each single-factor row switches one factor of one baseline to the other's."""
    nas_base = dict(NAS_AT_ISSUE if args.nas_defaults == "issue" else current_nas_defaults())
    nas_base |= parse_factors(args.nas)
    ref_base = REF | parse_factors(args.ref)
    if not args.bisect:
        return [("reference", "ref", ref_base), ("nas", "nas", nas_base)]
    ref_label = "reference" + "".join(f", {k}={v}" for k, v in parse_factors(args.ref).items())
    nas_label = "nas defaults" + "".join(f", {k}={v}" for k, v in parse_factors(args.nas).items())
    rows = [(ref_label, "ref", ref_base), (nas_label, "nas", nas_base)]
    for name in FACTORS:
        if nas_base[name] != ref_base[name]:
            rows.append((f"nas, {name}={ref_base[name]}", "nas", nas_base | {name: ref_base[name]}))
    for name in FACTORS:
        if nas_base[name] != ref_base[name]:
            rows.append((f"reference, {name}={nas_base[name]}", "ref",
                         ref_base | {name: nas_base[name]}))
    if args.extra:
        rows.append(("nas, every factor as the reference", "nas", dict(ref_base)))
    return rows


def current_nas_defaults() -> dict:
    """nas's defaults as the code has them now (ArchSpec's defaults, train's signature)."""
    trn = inspect.signature(train).parameters
    spec = {f.name: f.default for f in dataclasses.fields(ArchSpec)}
    warm, schedule = trn["warmup_fraction"].default, trn["schedule"].default
    return {"init": spec["init"],
            "head": "tied" if spec["tie_head"] else "untied",
            "positions": spec["positions"],
            "schedule": schedule if schedule == "cosine" or not warm else "warmup_constant",
            "optim": "nas", "norm": "rmsnorm", "channel": "swiglu4"}


def acc_at(r: dict, step: int) -> str:
    """Held-out accuracy at `step`; a run stopped at the target shows its last one as ≥."""
    if step in r["curve"]:
        return fmt(r["curve"][step])
    last = max(r["curve"])
    return f"≥{fmt(r['curve'][last])}" if last < step and r["reached"] else "—"


def fmt(x):
    return "—" if x is None else (f"{x:.2f}" if isinstance(x, float) else str(x))


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--width", type=int, nargs="+", default=[32])
    p.add_argument("--mixers", default="conv,attention",
                   help="token mixer per layer, comma-separated (conv = short_conv, plain = "
                        "plain_conv, attention, linear_attention, mamba2, any registered kind)")
    p.add_argument("--steps", type=int, default=400)
    p.add_argument("--lr", type=float, default=2.2e-3)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--task", choices=("mqar", "lm"), default="mqar",
                   help="lm: stdlib source as bytes (--vocab, --kv-pairs unused); the table "
                        "then shows held-out bits per byte, lower is better")
    p.add_argument("--vocab", type=int, default=64)
    p.add_argument("--seq-len", type=int, default=64)
    p.add_argument("--kv-pairs", type=int, default=8)
    p.add_argument("--eval-every", type=int, default=25)
    p.add_argument("--eval-examples", type=int, default=512)
    p.add_argument("--target", type=float, default=0.99)
    p.add_argument("--report-at", type=int, nargs="+", default=[100, 200, 400])
    p.add_argument("--ref", help="factors of the reference set to nas's, e.g. init=gpt2")
    p.add_argument("--nas", help="factors of nas set to the reference's, e.g. head=untied")
    p.add_argument("--nas-defaults", choices=("current", "issue"), default="current")
    p.add_argument("--bisect", action="store_true", help="every single-factor switch")
    p.add_argument("--extra", action="store_true", help="with --bisect: nas with all factors "
                   "at the reference's choice")
    p.add_argument("--only", help="with --bisect: run only rows whose label contains this")
    p.add_argument("--stop-at-target", action="store_true", help="end a run once it reaches "
                   "the target (later accuracies show the last one measured, marked ≥)")
    p.add_argument("--json", help="append one JSON line per run to this file")
    p.add_argument("--paired-init", choices=("ref", "nas"), help="both models of a seed start "
                   "from one side's draw of the weights (same architecture needed), so seeds "
                   "pair and only the code and the recipe differ")
    args = p.parse_args(argv)
    args.mixers = [MIXER_ALIASES.get(m, m) for m in args.mixers.split(",")]
    torch.set_num_threads(1)

    rows = variants(args)
    if args.only:
        rows = [r for r in rows if args.only in r[0]]
    table = []
    for width in args.width:
        for label, side, f in rows:
            results = []
            for seed in args.seeds:
                r = run(side, f, args, width, seed)
                results.append(r)
                print(f"# width {width} {label} seed {seed}: acc {acc_at(r, args.steps)}"
                      f" reached {fmt(r['reached'])} in {r['seconds']:.1f}s", file=sys.stderr,
                      flush=True)
                if args.json:
                    with open(args.json, "a") as fh:
                        fh.write(json.dumps({"width": width, "label": label, "side": side,
                                             "paired_init": args.paired_init,
                                             "factors": f, "seed": seed, "steps": args.steps,
                                             "lr": args.lr, "mixers": args.mixers, **r}) + "\n")
            table.append((width, label, results))

    at = [s for s in args.report_at if s <= args.steps]
    setting = (f"stdlib LM (bytes), T={args.seq_len}" if args.task == "lm" else
               f"MQAR V={args.vocab} T={args.seq_len} N={args.kv_pairs}")
    print(f"\n{setting}, batch {args.batch}, "
          f"mixers {'→'.join(args.mixers)}, lr {args.lr:g}, {args.steps} steps, seeds "
          f"{' '.join(map(str, args.seeds))}; held-out "
          f"{'bits per byte' if args.task == 'lm' else 'accuracy'} per seed\n")
    metric = "bpb" if args.task == "lm" else "acc"
    head = ["width", "variant", *[f"{metric}@{s}" for s in at], f"steps to {args.target}",
            "median", "s/run"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for width, label, results in table:
        accs = ["/".join(acc_at(r, s) for r in results) for s in at]
        reached = [r["reached"] for r in results]
        never = args.steps + args.eval_every  # "not within the run" sorts last
        med = statistics.median(x if x is not None else never for x in reached)
        secs = statistics.mean(r["seconds"] for r in results)
        cells = [str(width), label, *accs, "/".join(fmt(x) for x in reached),
                 fmt(med) if med <= args.steps else f">{args.steps}", f"{secs:.1f}"]
        print("| " + " | ".join(cells) + " |")


def summarize(paths: list[str], at: list[int], target: float, within: int) -> None:
    """One table from the JSON lines of several runs (`--json`), grouped by mixers, width and
    variant: accuracy per seed at the steps `at`, steps to `target` per seed, their median
    (runs that never reached it count as past their last step), and how many seeds reached it
    within `within` steps. Lets a comparison be assembled from runs made at different times."""
    groups: dict[tuple, dict[int, dict]] = {}
    for path in paths:
        for line in Path(path).read_text().splitlines():
            r = json.loads(line)
            arch = f"{r['factors']['norm']}, {r['factors']['channel']}"  # the stack's own
            label = r["label"]
            if r.get("paired_init"):  # `--paired-init`: both sides start from one draw
                label += f", {'reference' if r['paired_init'] == 'ref' else 'nas'}'s init draw"
            key = ("→".join(r["mixers"]), r["width"], arch, r["side"], label)
            r["curve"] = {int(k): v for k, v in r["curve"].items()}
            groups.setdefault(key, {})[r["seed"]] = r  # a later run of a seed replaces it
    head = ["mixers", "width", "norm, channel", "variant", *[f"acc@{s}" for s in at],
            f"steps to {target}",
            "median", f"≤ {within} steps"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for (mixers, width, arch, _, label), by_seed in sorted(groups.items()):
        results = [by_seed[s] for s in sorted(by_seed)]
        accs = ["/".join(acc_at(r, s) for r in results) for s in at]
        reached = [r["reached"] for r in results]
        never = max(r["steps"] for r in results) + 1
        med = statistics.median_low(x if x is not None else never for x in reached)
        solved = sum(x is not None and x <= within for x in reached)
        cells = [mixers, str(width), arch,
                 f"{label} (seeds {','.join(map(str, sorted(by_seed)))})",
                 *accs, "/".join(fmt(x) for x in reached),
                 fmt(med) if med < never else f">{never - 1}", f"{solved}/{len(results)}"]
        print("| " + " | ".join(cells) + " |")


def paired(paths: list[str], target: float) -> None:
    """Seed by seed, nas against the reference where both started from one draw of the weights
    (`--paired-init`): steps to `target` each (a run that never reached it counts as past its
    last step), how often nas was faster, level or slower, and the two-sided sign test's p over
    the seeds that differ. One row per stack, width, draw and nas variant."""
    runs: dict[tuple, dict[int, dict]] = {}
    for path in paths:
        for line in Path(path).read_text().splitlines():
            r = json.loads(line)
            if not r.get("paired_init"):
                continue
            defaults = current_nas_defaults()  # a nas row is named by what it changes
            variant = "" if r["side"] == "ref" else ", ".join(
                [f"{k}={v}" for k, v in r["factors"].items() if defaults.get(k) != v]
                or ["defaults"])
            key = ("→".join(r["mixers"]), r["width"], r["paired_init"], r["side"], variant)
            runs.setdefault(key, {})[r["seed"]] = r
    print("| mixers | width | init draw | nas variant | seeds | nas steps | reference steps "
          "| nas faster / level / slower | sign test p | median nas vs ref |")
    print("|" + "---|" * 10)
    for (mixers, width, draw, side, variant), by_seed in sorted(runs.items()):
        ref = runs.get((mixers, width, draw, "ref", ""))
        if side != "nas" or ref is None:
            continue
        seeds = sorted(set(by_seed) & set(ref))
        never = max(r["steps"] for r in by_seed.values()) + 1
        a = [by_seed[s]["reached"] or never for s in seeds]
        b = [ref[s]["reached"] or never for s in seeds]
        faster = sum(x < y for x, y in zip(a, b, strict=True))
        slower = sum(x > y for x, y in zip(a, b, strict=True))
        n = faster + slower
        p = min(1.0, 2 * sum(math.comb(n, k) for k in range(min(faster, slower) + 1)) / 2**n)
        print(f"| {mixers} | {width} | {'reference' if draw == 'ref' else 'nas'}'s | {variant} | "
              f"{len(seeds)} | {show_steps(a, never)} | {show_steps(b, never)} | "
              f"{faster} / {len(seeds) - n} / {slower} | {p:.2f} | "
              f"{show_steps([statistics.median_low(a)], never)} vs "
              f"{show_steps([statistics.median_low(b)], never)} |")


def show_steps(steps: list[int], never: int) -> str:
    """Steps per seed, '—' (a list) or '>N' (one median) where the target was never reached."""
    if len(steps) == 1:
        return f">{never - 1}" if steps[0] == never else str(steps[0])
    return "/".join("—" if x == never else str(x) for x in steps)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "paired":
        q = argparse.ArgumentParser(prog="learning.py paired",
                                    description="seed-paired nas vs reference from --json files")
        q.add_argument("files", nargs="+")
        q.add_argument("--target", type=float, default=0.99)
        a = q.parse_args(sys.argv[2:])
        paired(a.files, a.target)
        sys.exit()
    if len(sys.argv) > 1 and sys.argv[1] == "summarize":
        q = argparse.ArgumentParser(prog="learning.py summarize",
                                    description="one table from --json files of earlier runs")
        q.add_argument("files", nargs="+")
        q.add_argument("--report-at", type=int, nargs="+", default=[100, 200, 400, 800])
        q.add_argument("--target", type=float, default=0.99)
        q.add_argument("--within", type=int, default=400)
        a = q.parse_args(sys.argv[2:])
        summarize(a.files, a.report_at, a.target, a.within)
    else:
        main()
