"""The block registry: every token mixer and channel mixer a search can choose.

Blocks register with a decorator that declares their knobs (name, type, default, allowed values),
so the search-space compiler can check a user's YAML against them without building anything.
An unknown name raises with the list of known names. Tests parametrize over this registry, so a
new block gets the contract tests (shape, causality, step = parallel, costs) by registering.

A user's own block needs no decorator: a name with a dot is an import path,
`package.module.ClassName`, imported and registered under that name the first time it is asked
for (in the driver, and again in each worker process, which finds it on the same sys.path). The
class must subclass the role's base class (nas.blocks.base.TokenMixer or ChannelMixer). Its
knobs are its class attribute `knobs` (a sequence of Knob) when it has one, else the keyword
parameters of its `__init__` after (d_model, layer_idx), each of which needs a default.

A *preset* is a literature name for a block with some knobs set (`gla` is linear_attention with
decay gla, an identity feature map, per-head RMSNorm and an output gate). It is no block of its
own: a space may declare it as a token mixer, and what a model records is the block and every
knob, so a preset and the block with the same knobs are one architecture. `register_preset`
adds one (nas/blocks/presets.py holds nas's); `get_preset` and `list_presets` read them.
"""

from __future__ import annotations

import fnmatch
import importlib
import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any, Literal

from nas.spec import MIXER_LETTERS, Scalar

Role = Literal["token_mixer", "channel_mixer"]
MAX_INT_KNOB = 1 << 20  # no integer knob (heads, kernel size, experts, ...) is built beyond this


@dataclass(frozen=True)
class Knob:
    """One hyperparameter of a block. `choices` restricts the values where given; `minimum`
    bounds numbers from below."""

    name: str
    type: type
    default: Scalar
    choices: tuple[Scalar, ...] | None = None
    minimum: float | None = None
    doc: str = ""

    def check(self, value: Any) -> str | None:
        """None if `value` is acceptable, else a short reason. None is acceptable exactly when
        the default is None (an optional knob, e.g. attention's kv_heads)."""
        if value is None and self.default is None:
            return None
        if self.type is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if (self.type is int and isinstance(value, bool)) or not isinstance(value, self.type):
            return f"must be {self.type.__name__}, got {value!r}"
        if self.choices is not None and value not in self.choices:
            return f"must be one of {list(self.choices)}, got {value!r}"
        if self.minimum is not None and value < self.minimum:
            return f"must be >= {self.minimum}, got {value!r}"
        if self.type is int and value > MAX_INT_KNOB:
            return f"must be <= {MAX_INT_KNOB} (larger cannot be built), got {value!r}"
        return None


@dataclass(frozen=True)
class BlockInfo:
    name: str
    role: Role
    cls: type
    knobs: tuple[Knob, ...]
    doc: str

    def knob(self, name: str) -> Knob | None:
        return next((k for k in self.knobs if k.name == name), None)

    @property
    def defaults(self) -> dict[str, Scalar]:
        return {k.name: k.default for k in self.knobs}


_REGISTRY: dict[str, BlockInfo] = {}


def register_block(name: str, role: Role, knobs: Sequence[Knob] = ()) -> Callable[[type], type]:
    """Class decorator: register `cls` under `name` with its declared knobs."""

    def decorate(cls: type) -> type:
        if name in _REGISTRY or name in _PRESETS:
            raise ValueError(f"block {name!r} is already registered (as a block or a preset)")
        doc = (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""
        _REGISTRY[name] = BlockInfo(name, role, cls, tuple(knobs), doc)
        cls.block_name = name
        return cls

    return decorate


class BlockImportError(ValueError):
    """A dotted block path that cannot be imported or is not a block; the message says why."""


def is_import_path(name: str) -> bool:
    """True for a user block named by its import path (`package.module.ClassName`)."""
    return "." in name


def _within_this_package(module_name: str) -> str:
    """`module_name`, or for a module of nas the same module of the package this registry was
    loaded from: inside an exported model.py nas's modules are bundled under another name, and
    a block named by its nas import path must subclass the bundle's base classes, not an
    installed nas's."""
    package = __name__.split(".")[0]
    if package != "nas" and (module_name == "nas" or module_name.startswith("nas.")):
        return package + module_name[len("nas"):]
    return module_name


def import_block(path: str, role: Role = "token_mixer") -> BlockInfo:
    """Import `package.module.ClassName`, check it is a `role` block, register it under `path`.

    Raises BlockImportError naming what is wrong: the module, the attribute, the base class, or
    an `__init__` parameter without a default."""
    if path in _REGISTRY:
        return _REGISTRY[path]
    module_name, _, attr = path.rpartition(".")
    if not module_name or not attr:
        raise BlockImportError(f"{path!r} is not an import path like package.module.ClassName")
    from nas.usercode import import_refusal

    refused = import_refusal(module_name, nas_allowed=True)
    if refused is not None:
        raise BlockImportError(f"{refused}; a mixer by import path must be a class of your own "
                               "(a module beside the space)")
    try:
        module = importlib.import_module(_within_this_package(module_name))
    except ImportError as exc:
        raise BlockImportError(f"cannot import module {module_name!r} ({exc})") from None
    cls = getattr(module, attr, None)
    if cls is None:
        raise BlockImportError(f"module {module_name!r} has no attribute {attr!r}")
    from nas.blocks.base import ChannelMixer, TokenMixer  # base imports this module

    base = TokenMixer if role == "token_mixer" else ChannelMixer
    if not (isinstance(cls, type) and issubclass(cls, base)):
        raise BlockImportError(f"{path} is not a subclass of nas.blocks.{base.__name__}")
    register_block(path, role, _declared_knobs(cls, path))(cls)
    return _REGISTRY[path]


def _declared_knobs(cls: type, path: str) -> tuple[Knob, ...]:
    """`cls.knobs` if declared, else one Knob per keyword parameter of `__init__`."""
    declared = getattr(cls, "knobs", None)
    if declared is not None:
        if not all(isinstance(k, Knob) for k in declared):
            raise BlockImportError(f"{path}.knobs must be a sequence of nas.blocks.Knob")
        return tuple(declared)
    knobs = []
    parameters = list(inspect.signature(cls.__init__).parameters.values())[3:]  # self, d, idx
    for p in parameters:
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        if p.default is p.empty:
            raise BlockImportError(f"{path}.__init__ parameter {p.name!r} needs a default (or "
                                   "declare the class attribute `knobs`)")
        kind = object if p.default is None else type(p.default)
        knobs.append(Knob(p.name, kind, p.default))
    return tuple(knobs)


def get_block(name: str, role: Role | None = None) -> BlockInfo:
    """The registered block `name`; raises KeyError naming the known ones. An import path is
    imported and registered on first use (BlockImportError if that fails)."""
    if name not in _REGISTRY and is_import_path(name):
        import_block(name, role or "token_mixer")
    info = _REGISTRY.get(name)
    if info is None or (role is not None and info.role != role):
        known = ", ".join(list_blocks(role=role))
        preset = _PRESETS.get(name)
        also = (f" ({name} is a preset of {preset.block}, which is what a model records)"
                if preset is not None else "")
        raise KeyError(f"unknown {role or 'block'} {name!r}{also}; known: {known}")
    return info


def list_blocks(pattern: str = "*", role: Role | None = None) -> list[str]:
    """Registered names matching a glob, optionally of one role, sorted."""
    return sorted(
        n for n, info in _REGISTRY.items()
        if fnmatch.fnmatch(n, pattern) and (role is None or info.role == role)
    )


@dataclass(frozen=True)
class Preset:
    """A literature name for block `block` with knobs set: `fixed` ones the name means (a space
    may not change them under this name), `defaults` it may change, `required` ones it must
    give (the name has no default that suits every task; the value is an example for
    messages). `letter` stands for it in a layout pattern; `paper` is the work it follows,
    `doc` what it is and how it differs from it."""

    name: str
    block: str
    doc: str
    paper: str
    letter: str
    fixed: dict[str, Scalar] = field(default_factory=dict)
    defaults: dict[str, Scalar] = field(default_factory=dict)
    required: dict[str, Scalar] = field(default_factory=dict)

    @property
    def role(self) -> Role:
        return get_block(self.block).role

    @cached_property
    def info(self) -> BlockInfo:
        """The block as this preset declares it: its knobs' defaults are the preset's values
        (fixed or default); `name` is the block's, which is what a model records."""
        base = get_block(self.block)
        values = {**self.defaults, **self.fixed}
        knobs = tuple(replace(k, default=values[k.name]) if k.name in values else k
                      for k in base.knobs)
        return BlockInfo(base.name, base.role, base.cls, knobs, self.doc)

    def settings(self) -> str:
        """The preset in one line of YAML-like text: `decay: gla, ... (fixed); kv_heads: 2
        (default); window (required)`."""
        parts = []
        for values, label in ((self.fixed, "fixed"), (self.defaults, "default")):
            if values:
                parts.append(", ".join(f"{k}: {_yaml_scalar(v)}" for k, v in values.items())
                             + f" ({label})")
        if self.required:
            parts.append(", ".join(self.required) + " (required)")
        return "; ".join(parts)


_PRESETS: dict[str, Preset] = {}


def _yaml_scalar(value: Scalar) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def register_preset(name: str, block: str, *, doc: str, paper: str, letter: str,
                    fixed: dict[str, Scalar] | None = None,
                    defaults: dict[str, Scalar] | None = None,
                    required: dict[str, Scalar] | None = None) -> Preset:
    """Register the preset `name` of the registered block `block`; every knob it names must be
    one of the block's and take the value given (ValueError otherwise), and its name and
    letter must be free (no block, no other preset has them)."""
    info = get_block(block)
    taken = {p.letter: p.name for p in _PRESETS.values()} | {
        letter: kind for kind, letter in MIXER_LETTERS.items()}
    if name in _REGISTRY or name in _PRESETS or is_import_path(name):
        raise ValueError(f"preset name {name!r} is taken (or is an import path)")
    if len(letter) != 1 or letter in taken:
        raise ValueError(f"preset {name!r}: letter {letter!r} is not one free character"
                         + (f" (it is {taken[letter]}'s)" if letter in taken else ""))
    fixed, defaults, required = dict(fixed or {}), dict(defaults or {}), dict(required or {})
    named = [*fixed, *defaults, *required]
    if len(named) != len(set(named)):
        raise ValueError(f"preset {name!r} names a knob twice")
    for knob_name in named:
        knob = info.knob(knob_name)
        if knob is None:
            raise ValueError(f"preset {name!r}: {block} has no knob {knob_name!r}")
        value = {**fixed, **defaults, **required}[knob_name]
        if value is None or knob.check(value) is not None:
            raise ValueError(f"preset {name!r}: {knob_name}={value!r} is not a value of "
                             f"{block}.{knob_name}")
    preset = Preset(name, block, doc, paper, letter, fixed, defaults, required)
    _PRESETS[name] = preset
    return preset


def get_preset(name: str) -> Preset | None:
    """The preset `name`, or None when there is none by that name."""
    return _PRESETS.get(name)


def list_presets(pattern: str = "*", role: Role | None = None) -> list[str]:
    """Registered preset names matching a glob, optionally of one role, sorted."""
    return sorted(n for n, p in _PRESETS.items()
                  if fnmatch.fnmatch(n, pattern) and (role is None or p.role == role))


def preset_letters() -> dict[str, str]:
    """Letter -> preset name, for layout patterns."""
    return {p.letter: p.name for p in _PRESETS.values()}
