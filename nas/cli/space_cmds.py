"""Commands that read a space or the block registry and run nothing: `nas validate`,
`nas space show|sample` and `nas blocks list`.

A space's user code (a python task, a mixer by import path) is read, never imported, here;
`space sample` asks Optuna's RandomSampler, imported when it runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.markup import escape

from nas.cli.common import FormatOpt, check_format, console, user_errors
from nas.errors import NasError


@user_errors
def validate(space: Path = typer.Argument(..., help="The search-space YAML file.")) -> None:
    """Check SPACE and summarize its decisions, without running anything: user code it names
    (a python task, a mixer by import path) is read, never imported."""
    from nas.cli.render import print_notes
    from nas.searchspace import load

    compiled = load(space)
    console.print(f"[green]ok[/]: {space} — space [bold]{compiled.name}[/], task "
                  f"{compiled.task['kind']}, strategy {compiled.strategy}")
    print_notes(compiled, console)
    if compiled.code_refusal is not None:  # read, not run: say what a search will need
        refusal = compiled.code_refusal
        console.print(f"[yellow]note:[/] {escape(refusal.key)}: not run by validate; "
                      f"{escape(refusal.fix)} to search", highlight=False, soft_wrap=True)
    for name in compiled.order:
        domain = compiled.domain(name)
        conditions = compiled.describe_when(name)
        when = f"  [dim](when {conditions})[/]" if conditions else ""
        console.print(f"  {name}: {_domain_text(domain)}{when}", highlight=False)
    objectives = ", ".join(f"{o.name} ({o.direction})" for o in compiled.objectives)
    console.print(f"  objectives: {objectives}")
    for constraint in compiled.config.constraints:
        console.print(f"  constraint: {constraint}", highlight=False)


def _domain_text(domain: Any) -> str:
    from nas.searchspace.domains import Choice, Fixed, IntRange

    if hasattr(domain, "describe"):
        return domain.describe()
    if isinstance(domain, Fixed):
        return repr(domain.value)
    if isinstance(domain, Choice):
        return "choice " + repr(list(domain.options))
    if isinstance(domain, IntRange):
        return f"int {domain.low}..{domain.high}" + (f" step {domain.step}" if domain.step > 1
                                                     else "")
    return f"{'log' if domain.log else ''}uniform [{domain.low:g}, {domain.high:g}]"


blocks_app = typer.Typer(name="blocks", help="The registered token and channel mixers.",
                         no_args_is_help=True)
BLOCK_ROLES = ("token_mixer", "channel_mixer")


@blocks_app.command("list")
@user_errors
def blocks_list(
    pattern: str = typer.Argument("*", help="A glob over block names (e.g. 'att*'), or a word "
                                  "found anywhere in one."),
    role: str = typer.Option(None, "--role", help="Only token_mixer or channel_mixer blocks."),
) -> None:
    """List the registered blocks matching PATTERN, with their knobs, then the presets (the
    literature's names for blocks with knobs set, e.g. gla, swa, gqa) matching it by their
    name or their block's."""
    from rich.table import Table

    from nas.blocks import get_block, get_preset, list_blocks, list_presets

    if role is not None and role not in BLOCK_ROLES:
        raise NasError(f"unknown --role {role!r}; use one of {', '.join(BLOCK_ROLES)}")
    if not any(ch in pattern for ch in "*?["):
        pattern = f"*{pattern}*"  # a plain word matches anywhere in the name
    names = list_blocks(pattern, role=role)  # type: ignore[arg-type]
    presets = sorted(set(list_presets(pattern, role=role)) | {  # type: ignore[arg-type]
        p for p in list_presets(role=role)  # type: ignore[arg-type]
        if get_preset(p).block in names})
    if not names and not presets:
        known = ", ".join(list_blocks(role=role) + list_presets(role=role))  # type: ignore
        raise NasError(f"no {role or 'block'} matches {pattern!r}; known: {known}")
    if names:
        table = Table(title=f"blocks matching {pattern!r}", title_justify="left",
                      header_style="bold", show_lines=True)
        for column in ("name", "role", "knobs (type = default, allowed)", "what it is"):
            table.add_column(column)
        for name in names:
            info = get_block(name)
            knobs = []
            for knob in info.knobs:
                text = f"{knob.name}: {knob.type.__name__} = {knob.default!r}"
                if knob.choices is not None:
                    text += " {" + ", ".join(map(str, knob.choices)) + "}"
                if knob.minimum is not None:
                    text += f" (>= {knob.minimum:g})"
                knobs.append(text)
            table.add_row(name, info.role, "\n".join(knobs) or "(none)", info.doc)
        console.print(table)
    if presets:
        table = Table(title=f"presets matching {pattern!r} (declare them like blocks: "
                      "`gla: {heads: 4}`; a model records the block)", title_justify="left",
                      header_style="bold", show_lines=True)
        for column in ("name", "role", "letter", "is the block", "what it is (follows)"):
            table.add_column(column)
        for name in presets:
            preset = get_preset(name)
            searchable = [k.name for k in get_block(preset.block).knobs
                          if k.name not in preset.fixed]
            resolves = f"{preset.block}\n{preset.settings()}"
            if searchable:
                resolves += "\nyours to set: " + ", ".join(searchable)
            table.add_row(name, preset.role, preset.letter, resolves,
                          f"{preset.doc} ({preset.paper})")
        console.print(table)


space_app = typer.Typer(name="space", help="Inspect a search space: its decisions, its size, "
                        "samples from it.", no_args_is_help=True)


@space_app.command("show")
@user_errors
def space_show(
    space: Path = typer.Argument(..., help="The search-space YAML file."),
    limit: int = typer.Option(200_000, "--limit", min=0, help="Enumerate at most this many "
                              "assignments to count the distinct architectures."),
) -> None:
    """The decision DAG of SPACE as a tree, and how many distinct architectures it holds."""
    from nas.searchspace import count_architectures, load

    compiled = load(space)
    console.print(_decision_tree(compiled, space))
    console.print(_count_lines(count_architectures(compiled, limit=limit)), highlight=False)


def _decision_tree(compiled: Any, path: Path) -> Any:
    """Each decision with its domain, nested under the decision whose value activates it."""
    from rich.text import Text
    from rich.tree import Tree

    graph = compiled.graph
    position = {name: i for i, name in enumerate(compiled.order)}
    root = Tree(Text.assemble(("space ", ""), (compiled.name, "bold"),
                              f" ({path}): {len(compiled.order)} decisions"))
    branches: dict[str, Any] = {}
    for name in compiled.order:
        parents = sorted(graph.predecessors(name), key=position.__getitem__)
        label = Text.assemble((name, "bold"), ": ", _domain_text(compiled.domain(name)))
        conditions = compiled.describe_when(name)
        if conditions:
            label.append(f"  when {conditions}", style="dim")
        branches[name] = (branches[parents[-1]] if parents else root).add(label)
    return root


def _count_lines(result: Any) -> str:
    if result.exact:
        line = (f"distinct architectures: {result.distinct:,} (exact; "
                f"{result.assignments:,} assignments of the architecture decisions)")
    elif result.continuous:
        line = (f"distinct architectures: not enumerated — continuous decision(s): "
                f"{', '.join(result.continuous)}")
    else:
        line = (f"distinct architectures: more than {result.limit:,} assignments "
                f"({result.assignments:,}) — not enumerated")
    if result.training is not None:
        training = f"training configurations: {result.training:,}"
    else:
        training = ("training configurations: infinite (continuous: "
                    f"{', '.join(result.training_continuous)})")
    return f"{line}\n{training}"


@space_app.command("sample")
@user_errors
def space_sample(
    space: Path = typer.Argument(..., help="The search-space YAML file."),
    n: int = typer.Option(5, "-n", "--num", min=1, help="How many architectures to sample."),
    seed: int = typer.Option(None, "--seed", help="Seed of Optuna's RandomSampler (default: "
                             "fresh randomness)."),
    fmt: str = FormatOpt,
) -> None:
    """Sample architectures from SPACE at random, as a search would ask for them."""
    import optuna
    from rich.table import Table

    from nas.cli.render import print_json
    from nas.searchspace import load

    check_format(fmt)
    compiled = load(space)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    specs = [compiled.sample(study.ask()) for _ in range(n)]
    if fmt == "json":
        print_json(console, [{**spec.to_dict(), "arch_hash": spec.arch_hash} for spec in specs])
        return
    table = Table(title=f"{n} architectures sampled from {compiled.name}"
                  + (f" (seed {seed})" if seed is not None else ""),
                  title_justify="left", header_style="bold")
    for column in ("trial", "mixers", "d_model", "layers", "arch_hash"):
        table.add_column(column, justify="right" if column in ("trial", "d_model", "layers")
                         else "left")
    for i, spec in enumerate(specs):
        table.add_row(str(i), spec.short_form(), str(spec.d_model), str(spec.n_layers),
                      spec.arch_hash)
    console.print(table)
