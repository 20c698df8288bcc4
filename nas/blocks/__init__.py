"""Building blocks of the searchable models: token mixers, channel mixers, norms, the model.

Importing this package registers every built-in block (attention, linear_attention, short_conv,
mlp, swiglu, ...) and the presets that give them the literature's names (gla, retnet, swa, gqa,
...: nas/blocks/presets.py); `build_model` turns an ArchSpec into a LanguageModel.
"""

from nas.blocks import (  # noqa: F401 (register)
    attention,
    channel,
    controls,
    conv,
    delta_rule,
    linear_attention,
    long_conv,
    mamba2,
    moe,
    presets,
)
from nas.blocks.base import ChannelMixer, TokenMixer
from nas.blocks.model import Block, LanguageModel, build_model
from nas.blocks.norm import make_norm
from nas.blocks.registry import (
    BlockInfo,
    Knob,
    Preset,
    get_block,
    get_preset,
    list_blocks,
    list_presets,
    register_block,
    register_preset,
)

__all__ = [
    "build_model",
    "LanguageModel",
    "Block",
    "TokenMixer",
    "ChannelMixer",
    "register_block",
    "get_block",
    "list_blocks",
    "Knob",
    "BlockInfo",
    "register_preset",
    "get_preset",
    "list_presets",
    "Preset",
    "make_norm",
]
