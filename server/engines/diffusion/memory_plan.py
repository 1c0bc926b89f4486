"""The memory plan of a model on a card: the form each component is stored in and where it lives.

Pure: sizes in, plan out (no torch, no files), so that the plan for any card can be
checked on any machine; ``weight_sizes`` reads the sizes from the files' headers and
``memory.place`` carries a plan out.

The ladder, best quality first, for families with large transformers and text
encoders (Flux.1, Flux.2 Klein; ``Family.per_component_memory``) on a CUDA card:

1. Everything on the card in the run dtype, when the weights plus the activations of
   a step fit the usable memory.
2. The denoiser on the card, in the first form that leaves room for a step: the run
   dtype; fp8 storage (diffusers' layerwise casting: weights kept in float8_e4m3fn,
   each layer cast up to the run dtype as it computes; half the bytes, close to bf16
   in quality, no extra package); NF4 (bitsandbytes, a quarter of the bytes). A GGUF
   file is already quantised: its size is the file's and it takes no other form.
3. With the denoiser placed, each text encoder, smallest first: kept on the card when
   it fits beside it; else freed after encoding (on the card only while it reads a
   prompt, which the prompt cache then keeps, so a repeated prompt never needs it);
   else int8 (bitsandbytes) on the card; else streamed block by block from the CPU
   while it reads a prompt.
4. No form of the denoiser fits: it is streamed block by block (diffusers' group
   offloading), stored in fp8 where CUDA allows; the encoders are streamed too.
5. Else every layer is streamed (sequential offload); if even one step's activations
   do not fit, the plan does not fit and a job gets ``out_of_memory`` with a sentence.

Stable Diffusion keeps its simpler rule (``choose_offload``: everything, else one
component at a time, else layer by layer): its pipelines call parts of the text
encoder outside its forward pass (clip skip), which per-module offloading would break.

The CPU and Apple's GPU share the computer's memory: nothing is offloaded there, and
fp8 storage and bitsandbytes are not used (bitsandbytes needs CUDA in diffusers, and
on the CPU fp8 storage only adds a cast to every layer); the plan says so.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Mapping

GiB = 2**30

FP8, NF4, INT8, GGUF = "fp8", "nf4", "int8", "gguf"
RESIDENT, FREED, STREAMED = "resident", "freed", "streamed"
BITSANDBYTES = "bitsandbytes"

# Bytes a weight takes in each stored form. fp8 and LLM.int8: one byte (int8 adds a
# scale per row, negligible). NF4: half a byte plus bitsandbytes' block scales (an
# 8-bit absmax per 64 weights, double-quantised) and the layers it leaves alone
# (norms, embeddings): 0.6 bytes, which matches Flux.1-dev's 12B transformer at about 6.7 GB.
FORM_BYTES = {FP8: 1.0, INT8: 1.0, NF4: 0.6}
# Activations of a text encoder reading a 512-token prompt (T5-XXL: a few 512 x 10240
# tensors a layer, well under 1 GiB in 16 bits; Qwen3 alike).
ENCODE_MARGIN = 1 * GiB
# A module streamed block by block holds the block that computes and the next one,
# copied ahead on a CUDA stream.
STREAM_BLOCKS = 2
SETTINGS = ("auto", "none", "model", "sequential")  # DeviceConfig.offload

LABELS = {"transformer": "transformer", "unet": "UNet", "vae": "VAE"}
FORM_WORDS = {FP8: " in fp8", NF4: " in NF4", INT8: " in int8", GGUF: " from its GGUF file"}


@dataclass(frozen=True)
class Card:
    """What the plan needs to know of a device."""

    kind: str  # cuda, rocm, mps or cpu
    usable: int  # bytes Paintwire may use on it
    name: str = ""
    quantizers: frozenset[str] = frozenset()  # quantization libraries installed ("bitsandbytes")
    # Why there are none, when there are none (said in the plan's notes).
    without_quantizers: str = "bitsandbytes is not installed (pip install paintwire[quantization])"


@dataclass(frozen=True)
class Weights:
    """A model's components, as their files say, before anything is loaded."""

    sizes: Mapping[str, int]  # bytes of each component's weights in the run dtype (a fixed one's: its file's)
    element_size: int = 2  # bytes of one number in the run dtype
    blocks: Mapping[str, int] = field(default_factory=dict)  # bytes (run dtype) of each component's largest repeated block
    fixed: frozenset[str] = frozenset()  # components quantised in their file (GGUF): no other form
    labels: Mapping[str, str] = field(default_factory=dict)  # what people call a component ("T5 text encoder")


@dataclass(frozen=True)
class Placement:
    """Where each component of a model lives, and in which form."""

    offload: str  # none, model (one component at a time), group (the denoiser streamed by blocks), sequential
    forms: tuple[tuple[str, str], ...] = ()  # component -> fp8, nf4, int8 or gguf; absent: the run dtype
    encoders: tuple[tuple[str, str], ...] = ()  # text encoder -> resident, freed or streamed
    peak: int = 0  # estimated bytes on the device at the busiest moment
    usable: int = 0  # bytes of the device the plan was made for
    fits: bool = True
    notes: tuple[str, ...] = ()  # why a measure was or was not taken
    labels: tuple[tuple[str, str], ...] = ()  # what people call a component
    denoiser: str = ""  # the component that runs every step (transformer, UNet)
    shared: bool = False  # the device shares the computer's memory (the CPU, Apple's GPU)

    def form(self, component: str) -> str:
        return dict(self.forms).get(component, "")

    def encoder(self, component: str) -> str:
        return dict(self.encoders).get(component, RESIDENT)

    @property
    def quantizers(self) -> frozenset[str]:
        """Libraries the load must use (bitsandbytes for nf4 and int8)."""
        return frozenset(BITSANDBYTES for _, f in self.forms if f in (NF4, INT8))

    @property
    def measures_taken(self) -> bool:
        """Whether anything differs from every component whole on the device in the run dtype."""
        return self.offload != "none" or bool(self.forms) or any(m != RESIDENT for _, m in self.encoders)

    def describe(self) -> str:
        """One sentence for people: ``paintwire info`` and the start-up summary."""
        names = dict(self.labels)
        label = lambda c: names.get(c, LABELS.get(c, c))  # noqa: E731
        forms = dict(self.forms)
        if self.shared or not self.measures_taken:
            parts = ["all in the computer's memory" if self.shared else "all on the device"]
            parts += [f"{label(c)}{FORM_WORDS[f]}" for c, f in self.forms]
        else:
            parts = {"model": ["one component on the device at a time (model offload)"],
                     "sequential": ["every layer streamed from the CPU (sequential offload)"]}.get(self.offload, [])
            if self.offload in ("none", "group") and self.denoiser:
                where = " streamed block by block" if self.offload == "group" else ("" if self.denoiser in forms else " on the device")
                parts.append(f"{label(self.denoiser)}{FORM_WORDS.get(forms.get(self.denoiser, ''), '')}{where}")
            for component, mode in self.encoders:
                if mode == FREED:
                    parts.append(f"{label(component)} freed after encoding")
                elif mode == STREAMED:
                    parts.append(f"{label(component)} streamed while encoding")
                elif component in forms:
                    parts.append(f"{label(component)}{FORM_WORDS[forms[component]]}")
        text = "; ".join(parts)
        if self.peak:
            text += f" (peak about {self.peak / GiB:.1f} of {self.usable / GiB:.1f} GiB)" if self.usable else f" (about {self.peak / GiB:.1f} GiB)"
        return text


def denoiser_name(sizes: Mapping[str, int]) -> str:
    for name in ("transformer", "unet"):
        if name in sizes:
            return name
    return max(sizes, key=lambda n: sizes[n], default="")


def is_encoder(name: str) -> bool:
    return name.startswith("text_encoder")


def plan(weights: Weights, card: Card, reserve: int, setting: str = "auto", per_component: bool = True) -> Placement:
    """The placement of a model of ``weights`` on ``card`` for steps whose activations take
    ``reserve`` bytes (``Family.activation_bytes`` at the size and batch of the job).
    ``setting`` is DeviceConfig.offload; ``per_component`` is the family's
    ``per_component_memory`` (else the one-rule ladder of Stable Diffusion)."""
    return replace(_plan(weights, card, reserve, setting, per_component), denoiser=denoiser_name(weights.sizes))


def _plan(weights: Weights, card: Card, reserve: int, setting: str, per_component: bool) -> Placement:
    sizes = dict(weights.sizes)
    total = sum(sizes.values())
    labels = tuple(weights.labels.items())
    if card.kind not in ("cuda", "rocm"):
        notes = ["offloading saves nothing where the device shares the computer's memory"]
        if per_component:
            notes.append("fp8 storage and bitsandbytes NF4/int8 are used on CUDA cards only")
        if total + reserve > card.usable:
            notes.append(f"it needs about {(total + reserve) / GiB:.1f} GiB and {card.usable / GiB:.1f} GiB are free: expect swapping")
        return Placement("none", peak=total + reserve, usable=card.usable, notes=tuple(notes), labels=labels,
                         encoders=tuple((c, RESIDENT) for c in sizes if is_encoder(c)),
                         forms=tuple((c, GGUF) for c in sorted(weights.fixed)), shared=True)
    if setting not in SETTINGS:
        raise ValueError(f"offload setting {setting!r}")
    if card.usable <= 0:  # the device's memory is not known: nothing to plan against
        return replace(_resident(weights, card, reserve, labels), notes=("the device's free memory is not known",))
    if setting == "auto" and total + reserve <= card.usable:
        return _resident(weights, card, reserve, labels)
    if not per_component or setting in ("none", "model", "sequential"):
        return _whole_components(weights, card, reserve, setting, labels)
    return _per_component(weights, card, reserve, labels)


def _resident(weights: Weights, card: Card, reserve: int, labels: tuple) -> Placement:
    sizes = weights.sizes
    return Placement("none", tuple((c, GGUF) for c in sorted(weights.fixed)), tuple((c, RESIDENT) for c in sizes if is_encoder(c)),
                     sum(sizes.values()) + reserve, card.usable, True, labels=labels)


def _whole_components(weights: Weights, card: Card, reserve: int, setting: str, labels: tuple) -> Placement:
    """Stable Diffusion's rule, and any explicit none / model / sequential setting."""
    sizes = weights.sizes
    fixed = tuple((c, GGUF) for c in sorted(weights.fixed))
    total, largest = sum(sizes.values()), max(sizes.values(), default=0)
    if setting == "auto":
        setting = "model" if largest + reserve <= card.usable else "sequential"
    peak = {"none": total + reserve, "model": largest + reserve, "sequential": _largest_block(weights) + reserve}[setting]
    return Placement(setting, fixed, peak=peak, usable=card.usable, fits=peak <= card.usable, labels=labels)


def _largest_block(weights: Weights) -> int:
    return max(weights.blocks.values(), default=0) or max(weights.sizes.values(), default=0) // 20


def stored_size(weights: Weights, component: str, form: str) -> int:
    """Bytes of ``component`` in ``form`` ("" : the run dtype; a fixed component: its file)."""
    size = weights.sizes[component]
    if not form or component in weights.fixed:
        return size
    return int(size / weights.element_size * FORM_BYTES[form])


def _denoiser_forms(weights: Weights, card: Card, denoiser: str) -> list[str]:
    if denoiser in weights.fixed:
        return [GGUF]
    forms = [""]
    if card.kind == "cuda" and weights.element_size > 1:
        forms.append(FP8)
    if card.kind == "cuda" and BITSANDBYTES in card.quantizers:
        forms.append(NF4)
    return forms


def _per_component(weights: Weights, card: Card, reserve: int, labels: tuple) -> Placement:
    sizes = weights.sizes
    denoiser = denoiser_name(sizes)
    encoders = sorted((c for c in sizes if is_encoder(c)), key=lambda c: sizes[c])
    rest = sum(s for c, s in sizes.items() if c != denoiser and not is_encoder(c))
    int8 = card.kind == "cuda" and BITSANDBYTES in card.quantizers
    notes = [] if int8 or card.kind != "cuda" else [f"{card.without_quantizers}: no NF4 or int8"]
    if card.kind == "rocm":
        notes.append("fp8 storage and bitsandbytes are used on NVIDIA cards only")
    forms = _denoiser_forms(weights, card, denoiser)
    for form in forms:
        placed = _encoders(weights, card, encoders, stored_size(weights, denoiser, form) + rest, reserve, int8)
        if placed is not None:
            modes, enc_forms, peak = placed
            chosen = ((denoiser, form),) if form else ()
            return Placement("none", chosen + enc_forms, modes, peak, card.usable, peak <= card.usable, tuple(notes), labels)
    # Streamed block by block, in the smallest form that needs no package at load time.
    form = GGUF if denoiser in weights.fixed else (FP8 if FP8 in forms else "")
    chosen = ((denoiser, form),) if form else ()
    on_card = _block_size(weights, denoiser, form) * STREAM_BLOCKS + rest
    placed = _encoders(weights, card, encoders, on_card, reserve, int8)
    if placed is not None:
        modes, enc_forms, peak = placed
        return Placement("group", chosen + enc_forms, modes, peak, card.usable, peak <= card.usable, tuple(notes), labels)
    streamed = tuple((c, STREAMED) for c in encoders)
    # Layer by layer: a step's activations (or a prompt's) and about one block in flight.
    peak = max(reserve, ENCODE_MARGIN) + _block_size(weights, denoiser, "")
    return Placement("sequential", (), streamed, peak, card.usable, peak <= card.usable, tuple(notes), labels)


def _block_size(weights: Weights, component: str, form: str) -> int:
    """Bytes of ``component``'s largest repeated block in ``form`` (a fixed component's
    blocks are measured in its file); a twentieth of it when its blocks are not known."""
    block = weights.blocks.get(component) or weights.sizes[component] // 20
    if form and form != GGUF and component not in weights.fixed:
        block = int(block / weights.element_size * FORM_BYTES[form])
    return block


def _encoders(weights: Weights, card: Card, encoders: list[str], on_card: int, reserve: int,
              int8: bool) -> tuple[tuple[tuple[str, str], ...], tuple[tuple[str, str], ...], int] | None:
    """Each text encoder's place beside a denoiser that takes ``on_card`` bytes, smallest
    first; None when even streaming them does not fit."""
    if on_card + reserve > card.usable:
        return None
    sizes = weights.sizes
    kept = 0  # bytes of encoders that stay on the card
    modes: list[tuple[str, str]] = []
    forms: list[tuple[str, str]] = []
    encode_peak = 0  # the most the card holds while an encoder reads a prompt
    for c in encoders:
        size = sizes[c]
        if on_card + kept + size + reserve <= card.usable:
            kept += size
            modes.append((c, RESIDENT))
        elif on_card + kept + size + ENCODE_MARGIN <= card.usable:
            modes.append((c, FREED))
            encode_peak = max(encode_peak, size + ENCODE_MARGIN)
        elif int8 and c not in weights.fixed and on_card + kept + (q := stored_size(weights, c, INT8)) + reserve <= card.usable:
            kept += q
            modes.append((c, RESIDENT))
            forms.append((c, INT8))
        else:
            block = _block_size(weights, c, "") * STREAM_BLOCKS
            if on_card + kept + block + ENCODE_MARGIN > card.usable:
                return None
            modes.append((c, STREAMED))
            encode_peak = max(encode_peak, block + ENCODE_MARGIN)
    peak = on_card + kept + max(reserve, encode_peak)
    return tuple(modes), tuple(forms), peak
