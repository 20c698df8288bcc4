"""Writes the hostile corpus, tests/hostile/spaces/*.yaml: space files built to hurt (code
execution, alias bombs, huge numbers, odd bytes). Run `python tests/hostile/generate.py` after
editing; the files are committed so each can be read on its own.

Each file's first line says what its one-line error must name:

    # expect: KEY | FRAGMENT

KEY is the dotted key the message names (`-` for the file as a whole), FRAGMENT a piece of the
message. Code-execution attempts try to create a file named PWNED in the current folder.
"""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).parent / "spaces"

TASK = "task: {kind: mqar, vocab_size: 32, seq_len: 32, num_kv_pairs: 4}"
BASE = f"""name: hostile
{TASK}
model:
  d_model: 16
  n_layers: 2
  token_mixers: {{attention: {{heads: 2}}}}
training: {{steps: 3, batch_size: 2, lr: 0.01}}
objectives: [{{name: loss}}, {{name: latency_ms, phase: prefill, batch: 1, seq_len: 32}}]
search: {{seed: 0}}
"""
SIDE_EFFECT = 'command: "touch PWNED", path: "PWNED", args: ["touch", "PWNED"]'


def space(**swaps: str) -> str:
    """BASE with each `old=new` swap made (the keys name parts of BASE below)."""
    text = BASE
    parts = {"task": TASK, "d_model": "d_model: 16", "n_layers": "n_layers: 2",
             "mixers": "token_mixers: {attention: {heads: 2}}",
             "training": "training: {steps: 3, batch_size: 2, lr: 0.01}",
             "objective": "{name: latency_ms, phase: prefill, batch: 1, seq_len: 32}",
             "search": "search: {seed: 0}", "name": "name: hostile"}
    for part, new in swaps.items():
        assert parts[part] in text, part
        text = text.replace(parts[part], new)
    return text


def bomb(levels: int, width: int, item: str = "lol") -> str:
    """Billion laughs: each anchor a list of `width` aliases of the previous one."""
    lines = [f"l0: &l0 [{', '.join([item] * width)}]"]
    for i in range(1, levels):
        lines.append(f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * width)}]")
    return "\n".join(lines)


CASES: dict[str, tuple[str, str, str]] = {}  # name: (key, fragment, text)


def case(name: str, key: str, fragment: str, text: str) -> None:
    assert name not in CASES, name
    CASES[name] = (key, fragment, text)


def build() -> None:
    # -- code execution through a python task's entrypoint ------------------------------------
    stdlib = ["os:system", "os:popen", "os:execv", "os:abort", "os:remove", "os:_exit",
              "posix:system", "subprocess:run", "subprocess:Popen", "subprocess:check_output",
              "builtins:eval", "builtins:exec", "builtins:__import__", "builtins:open",
              "sys:exit", "shutil:rmtree", "importlib:import_module", "pickle:loads",
              "marshal:loads", "ctypes:CDLL", "pty:spawn", "runpy:run_path", "code:interact",
              "webbrowser:open", "socket:create_connection", "urllib.request:urlopen",
              "multiprocessing:Process", "tempfile:mkdtemp", "os.path:join", "io:open"]
    for entry in stdlib:
        name = "code_task_" + entry.replace(":", "_").replace(".", "_")
        case(name, "task.entrypoint", "standard library",
             space(task=f'task: {{kind: python, entrypoint: "{entry}", {SIDE_EFFECT}}}'))
    for entry in ["nas.cli:app", "nas.orchestrator.search:run_search", "nas.store.store:Store",
                  "nas.tasks:make_task", "nas.__main__:main", "nas:load"]:
        name = "code_task_nas_" + entry.split(":")[1].strip("_")
        case(name, "task.entrypoint", "part of nas itself",
             space(task=f'task: {{kind: python, entrypoint: "{entry}", {SIDE_EFFECT}}}'))
    for name, entry, fragment in [
        ("code_task_expression", "__import__('os').system('touch PWNED'):x", "not an import path"),
        ("code_task_semicolon", "os;touch PWNED:x", "not an import path"),
        ("code_task_relative_path", "../../etc/passwd:x", "not an import path"),
        ("code_task_absolute_path", "/bin/sh:x", "not an import path"),
        ("code_task_no_colon", "os.system", "must look like"),
        ("code_task_cyrillic_o", "оs:system", "cannot find module"),
        ("code_task_spaces", "os :system", "standard library"),
        ("code_task_dunder_attr", "os:__class__", "standard library"),
    ]:
        case(name, "task.entrypoint", fragment,
             space(task=f'task: {{kind: python, entrypoint: "{entry}", {SIDE_EFFECT}}}'))
    # third-party functions that run what their input says (installed packages are not the
    # user's code, even with --allow-code)
    for entry in ["yaml:unsafe_load", "yaml:load", "yaml:full_load", "torch:load", "numpy:load",
                  "numpy.lib.npyio:load", "torch.serialization:load"]:
        name = "code_task_installed_" + entry.replace(":", "_").replace(".", "_")
        case(name, "task.entrypoint", "installed package",
             space(task=f'task: {{kind: python, entrypoint: "{entry}", {SIDE_EFFECT}}}'))
    case("code_task_installed_yaml_stream", "task.entrypoint", "installed package",
         space(task="task: {kind: python, entrypoint: 'yaml:unsafe_load', stream: "
               "'!!python/object/apply:os.system [\"touch PWNED\"]'}"))
    case("code_task_entrypoint_list", "task.entrypoint", "must look like",
         space(task='task: {kind: python, entrypoint: ["os", "system"]}'))
    case("code_task_path_root", "task.entrypoint", "standard library",
         space(task='task: {kind: python, entrypoint: "os:system", path: "/", '
               'command: "touch PWNED"}'))
    case("code_task_path_etc", "task.entrypoint", "cannot find module",
         space(task='task: {kind: python, entrypoint: "passwd:x", path: "/etc"}'))
    case("code_task_long_entrypoint", "task.entrypoint", "not an import path",
         space(task='task: {kind: python, entrypoint: "' + "a" * 20000 + ':f"}'))
    case("code_proxy_os_system", "proxies.0.task.entrypoint", "standard library",
         BASE + 'proxies: [{name: p, task: {kind: python, entrypoint: "os:system", '
         + SIDE_EFFECT + "}}]\n")
    # -- code execution through a mixer named by import path ------------------------------------
    for path, fragment in [("os.system", "standard library"),
                           ("subprocess.Popen", "standard library"),
                           ("builtins.eval", "standard library"),
                           ("shutil.rmtree", "standard library"),
                           ("importlib.import_module", "standard library"),
                           ("ctypes.CDLL", "standard library"),
                           ("os.path.join", "standard library"),
                           ("nas.cli.app", "part of nas itself"),
                           ("nas.blocks.controls.MeanPool", "write `mean_pool`"),
                           ("nowhere_pkg_xyz.Evil", "cannot find module")]:
        name = "code_mixer_" + path.replace(".", "_")
        case(name, f"model.token_mixers.{path}", fragment,
             space(mixers=f"token_mixers: {{attention: {{heads: 2}}, {path}: {{}}}}",
                   n_layers="n_layers: 2\n  layout: {free: [attention, " + path + "]}"))
    # -- YAML tags ------------------------------------------------------------------------------
    for name, tag in [("tag_python_apply", '!!python/object/apply:os.system ["touch PWNED"]'),
                      ("tag_python_name", "!!python/name:os.system"),
                      ("tag_python_new", "!!python/object/new:subprocess.Popen [[touch, PWNED]]"),
                      ("tag_python_module", "!!python/module:os"),
                      ("tag_custom", "!evil {cmd: touch PWNED}")]:
        case(name, "-", "tag", space(d_model=f"d_model: {tag}"))
    # -- alias bombs and self-reference ----------------------------------------------------------
    case("bomb_billion_laughs", "l8", "more than 100,000 values", bomb(9, 10) + "\n" + BASE)
    case("bomb_after_space", "l5", "more than 100,000 values", BASE + bomb(6, 10))
    case("bomb_wide_shallow", "l2", "more than 100,000 values", bomb(3, 100))
    case("bomb_in_task_option", "task.extra", "more than 100,000 values",
         bomb(5, 10) + "\n" + space(task="task: {kind: python, entrypoint: \"m:f\", extra: "
                                    "[*l4, *l4, *l4, *l4, *l4, *l4, *l4, *l4, *l4, *l4]}"))
    case("bomb_in_constraints", "constraints", "more than 100,000 values",
         bomb(5, 10) + "\n" + BASE + "constraints: [*l4, *l4, *l4, *l4, *l4, *l4, *l4, *l4, "
         "*l4, *l4, *l4]\n")
    case("bomb_in_choice", "model.d_model.choice", "more than 100,000 values",
         bomb(5, 10, "16") + "\n" + space(d_model="d_model: {choice: [*l4, *l4, *l4, *l4, *l4, "
                                          "*l4, *l4, *l4, *l4, *l4, *l4]}"))
    maps = ["m0: &m0 {a: 1, b: 2, c: 3, d: 4, e: 5, f: 6, g: 7, h: 8, i: 9, j: 10}"]
    for i in range(1, 8):
        maps.append(f"m{i}: &m{i} {{" + ", ".join(f"k{j}: *m{i - 1}" for j in range(10)) + "}")
    case("bomb_mappings", "m7", "more than 100,000 values", "\n".join(maps) + "\n" + BASE)
    merges = ["x0: &x0 {a: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]}"]
    for i in range(1, 8):
        merges.append(f"x{i}: &x{i} {{<<: *x{i - 1}, " + ", ".join(
            f"k{j}: *x{i - 1}" for j in range(10)) + "}")
    case("bomb_merge_keys", "x7", "more than 100,000 values", "\n".join(merges) + "\n" + BASE)
    case("bomb_strings", "l5", "more than 100,000 values",
         bomb(6, 10, '"' + "x" * 100 + '"') + "\n" + BASE)
    case("alias_self_list", "a", "refers to itself", "a: &a [1, *a]\n" + BASE)
    case("alias_self_mapping", "model.d_model", "refers to itself",
         space(d_model="d_model: &m {choice: *m}"))
    case("alias_unknown", "-", "alias", space(d_model="d_model: *nowhere"))
    # -- nesting ------------------------------------------------------------------------------
    case("deep_lists_100", "description", "nested more than 64",
         BASE + "description: " + "[" * 100 + "]" * 100 + "\n")
    case("deep_lists_5000", "-", "nested too deeply",
         BASE + "description: " + "[" * 5000 + "]" * 5000 + "\n")
    case("deep_mappings_200", "description", "nested more than 64",
         BASE + "description: " + "{a: " * 200 + "1" + "}" * 200 + "\n")
    # -- huge or odd numbers, in every numeric key -------------------------------------------------
    big = "1" + "0" * 30
    for name, key, fragment, swaps in [
        ("num_d_model_1e100", "model.d_model", "integer", {"d_model": "d_model: 1e100"}),
        ("num_d_model_big_int", "model.d_model", "larger than nas builds",
         {"d_model": f"d_model: {big}"}),
        ("num_d_model_4400_digits", "model.d_model", "4,400 digits",
         {"d_model": "d_model: " + "9" * 4400}),
        ("num_d_model_int_range", "model.d_model", "values", {"d_model":
                                                              "d_model: {int: [1, " + big + "]}"}),
        ("num_d_model_choice_huge", "model.d_model", "larger than nas builds",
         {"d_model": f"d_model: {{choice: [16, {big}]}}"}),
        ("num_n_layers_million", "model.n_layers", "layers", {"n_layers": "n_layers: 1000000"}),
        ("num_n_layers_5000", "model.n_layers", "at most 1024", {"n_layers": "n_layers: 5000"}),
        ("num_pattern_100k", "model.layout.pattern", "characters",
         {"n_layers": "layout: {pattern: " + "A" * 100000 + "}"}),
        ("num_pattern_repeat", "model.layout.repeat", "larger than nas builds",
         {"n_layers": "layout: {pattern: AAAA, repeat: 1000000}"}),
        ("num_pattern_repeat_2000", "model.layout.repeat", "at most 1024",
         {"n_layers": "layout: {pattern: A, repeat: 2000}"}),
        ("num_steps_1e12", "training.steps", "10,000,000",
         {"training": "training: {steps: 1000000000000, batch_size: 2, lr: 0.01}"}),
        ("num_steps_float", "training.steps", "integer",
         {"training": "training: {steps: 1e12, batch_size: 2, lr: 0.01}"}),
        ("num_batch_size_1e9", "training.batch_size", "65,536",
         {"training": "training: {steps: 3, batch_size: 1000000000, lr: 0.01}"}),
        ("num_lr_inf", "training.lr", "inf", {"training": "training: {steps: 3, batch_size: 2, "
                                                           "lr: .inf}"}),
        ("num_lr_nan", "training.lr", "nan", {"training": "training: {steps: 3, batch_size: 2, "
                                                           "lr: .nan}"}),
        ("num_warmup_huge", "training.warmup_fraction", "must be",
         {"training": "training: {steps: 3, batch_size: 2, lr: 0.01, warmup_fraction: 1e300}"}),
        ("num_seed_2_70", "search.seed", "4294967295", {"search": f"search: {{seed: {2**70}}}"}),
        ("num_seed_negative", "search.seed", ">= 0", {"search": "search: {seed: -7}"}),
        ("num_seed_float", "search.seed", "whole number", {"search": "search: {seed: 1e30}"}),
        ("num_population", "search.population_size", "<=",
         {"search": "search: {population_size: 1000000000}"}),
        ("num_retries", "search.retries", "<=", {"search": "search: {retries: 1000000000}"}),
        ("num_remeasure", "search.remeasure", "<= 1000",
         {"search": "search: {remeasure: 1000000000}"}),
        ("num_measure_threads", "search.measure.threads", "<=",
         {"search": "search: {measure: {threads: 1000000000}}"}),
        ("num_fidelity_min_steps", "search.fidelity.min_steps", "<=",
         {"search": "search: {fidelity: {min_steps: 1000000000000}}"}),
        ("num_fidelity_reduction", "search.fidelity.reduction", "<=",
         {"search": "search: {fidelity: {min_steps: 1, reduction: 1000000000}}"}),
        ("num_cpus_per_trial", "search.num_cpus_per_trial", "<=",
         {"search": "search: {num_cpus_per_trial: 1e300}"}),
        ("num_objective_batch", "objectives.1.batch", "65536",
         {"objective": "{name: latency_ms, phase: prefill, batch: 100000000, seq_len: 32}"}),
        ("num_objective_seq_len", "objectives.1.seq_len", "1048576",
         {"objective": "{name: latency_ms, phase: prefill, batch: 1, seq_len: 1000000000}"}),
        ("num_task_vocab", "task.vocab_size", "at most",
         {"task": "task: {kind: mqar, vocab_size: 1000000000000, seq_len: 32, num_kv_pairs: 4}"}),
        ("num_task_seq_len", "task.seq_len", "at most",
         {"task": "task: {kind: mqar, vocab_size: 32, seq_len: 1000000000, num_kv_pairs: 4}"}),
        ("num_task_kv_pairs", "task.num_kv_pairs", "num_kv_pairs",
         {"task": "task: {kind: mqar, vocab_size: 32, seq_len: 32, num_kv_pairs: "
                  "1000000000000}"}),
        ("num_task_sweep_level", "task.levels.0.seq_len", "at most",
         {"task": "task: {kind: mqar_sweep, vocab_size: 32, levels: [{num_kv_pairs: 4, "
                  "seq_len: 99999999}]}"}),
        ("num_knob_heads", "model.token_mixers.attention.heads", "",
         {"mixers": "token_mixers: {attention: {heads: 1000000000000}}"}),
        ("num_knob_window", "model.token_mixers.attention.window", "",
         {"mixers": "token_mixers: {attention: {heads: 2, window: 1000000000000}}"}),
    ]:
        case(name, key, fragment, space(**swaps))
    case("num_proxy_steps", "proxies.0.steps", "<=", BASE + "proxies: [{name: p, steps: "
         "1000000000000, task: {kind: mqar, vocab_size: 32, seq_len: 32, num_kv_pairs: 4}}]\n")
    # -- constraints that overflow or divide by zero ------------------------------------------
    nines = "*".join(["9" * 200] * 4)
    for name, text, fragment in [("overflow_float", "1e308*10 > 1", "overflows"),
                                 ("overflow_nan", "(1e308*10 - 1e308*10) < 1", "overflows"),
                                 ("overflow_literal", "params < 1e999", "infinity"),
                                 ("overflow_power", "2**99999 > 1", "'**' is not allowed"),
                                 ("overflow_tower", "10**10**10 > 1", "'**' is not allowed"),
                                 ("overflow_int_product", f"{nines} > 1", "overflows"),
                                 ("overflow_divide_zero", "1/0 < 1", "division by zero"),
                                 ("overflow_always_false", "1 > 2", "always false"),
                                 ("overflow_dunder", "params.__class__ > 1", "not allowed")]:
        case(f"constraint_{name}", "constraints.0", fragment,
             BASE + f'constraints: ["{text}"]\n')
    # -- names -----------------------------------------------------------------------------------
    for name, value in [("dotdot", "'..'"), ("dash_rf", "'-rf'"), ("slash", "'../../etc'"),
                        ("rtl", "'abc\u202etxt.exe'"), ("zero_width", "'a\u200bb'"),
                        ("long", "a" * 10000), ("newline", '"a\\nb"'), ("empty", "''")]:
        case(f"name_{name}", "name", "", space(name=f"name: {value}"))
    case("name_objective_trailing_space", "objectives.1.name", "no spaces",
         space(objective='{name: "latency_ms ", phase: prefill, seq_len: 32}'))
    case("name_objective_zero_width", "objectives.1.name", "invisible",
         space(objective='{name: "latency_ms\u200b", phase: prefill, seq_len: 32}'))
    case("name_objective_duplicate", "objectives.1.name", "listed twice",
         space(objective="{name: loss}"))
    case("name_long_key", "-", "not valid YAML", BASE + "k" * 5000 + ": 1\n")
    case("name_combining_key", "trai\u0301ning", "unknown key",
         BASE.replace("training:", "trai\u0301ning:"))
    # -- unicode digits ----------------------------------------------------------------------------
    case("digits_superscript", "model.d_model", "", space(d_model="d_model: ²"))
    case("digits_arabic_indic", "model.n_layers", "", space(n_layers="n_layers: ١٢"))
    case("digits_fullwidth", "training.steps", "",
         space(training="training: {steps: ３, batch_size: 2, lr: 0.01}"))
    # -- bytes -------------------------------------------------------------------------------------
    case("bytes_nul", "-", "NUL byte", BASE.replace("d_model: 16", "d_model: 1\0" + "6"))
    case("bytes_bom_bomb", "l8", "more than 100,000 values", "\ufeff" + bomb(9, 10) + "\n"
         + BASE)
    case("bytes_crlf_code", "task.entrypoint", "standard library",
         space(task='task: {kind: python, entrypoint: "os:system", ' + SIDE_EFFECT + "}")
         .replace("\n", "\r\n"))
    case("bytes_tab_indent", "-", "tab", BASE.replace("  d_model", "\td_model"))
    case("top_list_bomb", "l5", "more than 100,000 values", bomb(6, 10))


def write() -> None:
    build()
    HERE.mkdir(exist_ok=True)
    for old in HERE.glob("*.yaml"):
        old.unlink()
    for name, (key, fragment, text) in CASES.items():
        data = f"# expect: {key} | {fragment}\n{text}".encode()
        if name == "bytes_bom_bomb":  # the BOM leads the file
            data = "\ufeff".encode() + data.replace("\ufeff".encode(), b"")
        (HERE / f"{name}.yaml").write_bytes(data)
    print(f"{len(CASES)} files in {HERE}")


if __name__ == "__main__":
    write()
