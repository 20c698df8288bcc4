"""Write `model.py`: one file that rebuilds an exported model with nothing but PyTorch.

It is nas/export/_standalone.py (a reader for safetensors, `build_model`, `load_model`) followed
by the ArchSpec and the source of every nas module the model needs, found by following the
imports of the spec's blocks. Those modules are embedded under a private package name
(`_nas_bundle_<hash>`): `from nas.blocks.base import X` becomes `from _nas_bundle_<hash>.blocks.base
import X`, so the file runs where nas is not installed and never mixes with an installed nas.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import re
from pathlib import Path

from nas.errors import NasError, brief
from nas.spec import ArchSpec

MARKER = "# -- generated below"
ENTRY_MODULES = ("nas.spec", "nas.blocks.model", "nas.blocks.norm")
EMPTY_PACKAGES = ("nas", "nas.blocks")  # their real __init__ imports far more than a model needs
_MAIN = '''
if __name__ == "__main__":
    net, arch = load_model(), spec()
    tokens = torch.randint(0, arch.vocab_size, (1, 16))
    print(f"{arch.short_form()}: logits {tuple(net(tokens).shape)} for tokens (1, 16); "
          f"{sum(p.numel() for p in net.parameters()):,} parameters")
'''
_IMPORT = re.compile(r"\b(from|import)(\s+)nas\b")


def model_source(spec: ArchSpec) -> str:
    """The text of model.py for `spec`."""
    sources = bundle_sources(spec)
    digest = hashlib.sha256(repr(sorted(sources.items())).encode()).hexdigest()[:12]
    package = f"_nas_bundle_{digest}"
    embedded = {name[len("nas."):] if name != "nas" else "": (is_package, _rename(code, package))
                for name, (is_package, code) in sorted(sources.items())}
    template = (Path(__file__).parent / "_standalone.py").read_text(encoding="utf-8")
    head = template[:template.index(MARKER)]
    lines = [head.rstrip() + "\n\n", f"{MARKER}: the package name, the ArchSpec and the bundled "
             "sources " + "-" * 8 + "\n", f"_PACKAGE = {package!r}\n",
             f"ARCH_JSON = {spec.to_json()!r}\n",
             f"_BLOCK_MODULES = {tuple(m[len('nas.'):] for m in sorted(block_modules(spec)))!r}\n",
             "_SOURCES: dict[str, tuple[bool, str]] = {\n"]
    for name, (is_package, code) in embedded.items():
        lines.append(f"    {name!r}: ({is_package}, {code!r}),\n")
    lines += ["}\n", "_install()\n", _MAIN]
    return "".join(lines)


def block_modules(spec: ArchSpec) -> set[str]:
    """The modules defining the blocks `spec` uses; NasError for a block outside nas. A block
    named by import path outside nas (a user mixer) is refused without importing its module:
    a stored spec may come from someone else, and importing it would run their code."""
    from nas.blocks import get_block
    from nas.usercode import spec_blocks

    user = spec_blocks(spec)
    if user:
        raise NasError(f"block {brief(user[0])} is defined in {brief(user[0].rpartition('.')[0])}"
                       ", outside nas; model.py can bundle only nas's own blocks (arch.json and "
                       "the weights still describe the model)")
    modules = set()
    for layer in spec.layers:
        for module, role in ((layer.mixer, "token_mixer"), (layer.channel_mixer, "channel_mixer")):
            name = get_block(module.kind, role=role).cls.__module__
            if name != "nas" and not name.startswith("nas."):
                raise NasError(f"block {module.kind!r} is defined in {name}, outside nas; "
                               "model.py can bundle only nas's own blocks (arch.json and the "
                               "weights still describe the model)")
            modules.add(name)
    return modules


def bundle_sources(spec: ArchSpec) -> dict[str, tuple[bool, str]]:
    """Module name -> (is a package, source) for every nas module the model imports."""
    todo = [*ENTRY_MODULES, *sorted(block_modules(spec))]
    found: dict[str, tuple[bool, str]] = {}
    while todo:
        name = todo.pop()
        if name in found:
            continue
        parts = name.split(".")
        todo += [".".join(parts[:i]) for i in range(1, len(parts))]  # parent packages
        module_spec = importlib.util.find_spec(name)
        if module_spec is None or module_spec.origin is None:
            raise NasError(f"cannot find the source of {name} to bundle")
        is_package = module_spec.submodule_search_locations is not None
        if name in EMPTY_PACKAGES:
            found[name] = (True, "")
            continue
        code = Path(module_spec.origin).read_text(encoding="utf-8")
        found[name] = (is_package, code)
        todo += _nas_imports(name, code, is_package)
    return found


def _nas_imports(name: str, code: str, is_package: bool) -> list[str]:
    """The nas modules `code` imports (anywhere, lazily too); submodules named in a
    `from package import name` included."""
    package = name if is_package else name.rpartition(".")[0]
    wanted = []
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == "nas" or alias.name.startswith("nas."):
                    if alias.asname is None:
                        raise NasError(f"{name}: `import {alias.name}` cannot be bundled; "
                                       "write `from ... import ...`")
                    wanted.append(alias.name)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{parent}.{base}" if base else parent
            if base != "nas" and not base.startswith("nas."):
                continue
            wanted.append(base)
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                if importlib.util.find_spec(base) is not None and _is_module(candidate):
                    wanted.append(candidate)
    return wanted


def _is_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def _rename(code: str, package: str) -> str:
    """`code` with every absolute import of nas pointing at `package` instead."""
    return _IMPORT.sub(lambda m: f"{m.group(1)}{m.group(2)}{package}", code)
