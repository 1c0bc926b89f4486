"""GGUF model files (quantised transformers, as the community publishes Flux): what they
hold, read from their tensor table alone, and whether this server can load them.

diffusers loads a GGUF transformer through ``GGUFQuantizationConfig``, which
dequantises a fixed set of quantisation types on the fly; any other type fails
deep inside the load with "has a quantization type: 34 which is unsupported".
The types are read here first so that such a file is listed with a sentence
instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .entries import Shapes

SUFFIX = ".gguf"

# What diffusers 0.42's GGUF loader reads (diffusers.quantizers.gguf.utils.SUPPORTED_GGUF_QUANT_TYPES
# plus the unquantised types it keeps as they are).
LOADABLE = ("F32", "F16", "BF16", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K", "IQ4_NL", "IQ4_XS")


@dataclass(frozen=True)
class GGUFContents:
    shapes: Shapes  # tensor names and shapes, in torch's order (GGUF stores them reversed)
    types: frozenset[str]  # the quantisation types of its tensors ("Q8_0", "F32", ...)

    @property
    def unloadable(self) -> tuple[str, ...]:
        return tuple(sorted(self.types - set(LOADABLE)))


def read_gguf(path: Path) -> GGUFContents:
    """The tensor table of a GGUF file; ValueError when it is not a readable GGUF file."""
    import gguf

    try:
        reader = gguf.GGUFReader(str(path))
    except (OSError, ValueError, KeyError, IndexError) as exc:  # a short or foreign file fails while mapping its table
        raise ValueError(f"it is cut short or damaged: {exc}") from None
    shapes = {t.name: tuple(int(n) for n in reversed(list(t.shape))) for t in reader.tensors}
    return GGUFContents(shapes, frozenset(t.tensor_type.name for t in reader.tensors))


def unloadable_reason(name: str, contents: GGUFContents) -> str:
    """The sentence for a GGUF file with quantisation types the loader cannot read ("" when none)."""
    bad = contents.unloadable
    if not bad:
        return ""
    return (f"{name} holds tensors quantised as {', '.join(bad)}, which this server cannot load "
            f"(it loads {', '.join(LOADABLE)}): use a file of one of those types.")
