"""LoRA and embeddings named in the prompt: ``<lora:name:weight>`` (the WebUI's habit)."""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterator

from paintwire.protocol import ErrorCode, ProtocolError
from paintwire.protocol.metadata import LORA_TAG, prompt_words

from .memory import adapters_in_compute_dtype
from .models import EMBEDDING, LORA, ModelEntry, ModelRegistry

if TYPE_CHECKING:
    from .families.base import Family


@dataclass(frozen=True)
class LoraUse:
    entry: ModelEntry
    weight: float


def parse_prompt(prompt: str, registry: ModelRegistry, field: str = "job.params.prompt") -> tuple[str, list[LoraUse]]:
    """The prompt without its LoRA tags, and the LoRAs it asks for.

    Raises ProtocolError(INVALID_PARAM) for a LoRA the registry does not have,
    naming the ones it has."""
    uses: dict[str, LoraUse] = {}
    for match in LORA_TAG.finditer(prompt):
        name, weight = match.group(1).strip(), float(match.group(2) or 1.0)
        entry = registry.get(name)
        if entry is None or entry.kind != LORA:
            known = ", ".join(e.name for e in registry.of_kind(LORA)) or "none"
            raise ProtocolError(ErrorCode.INVALID_PARAM, f"Unknown LoRA {name!r} in the prompt; the server has: {known}.", field)
        uses[name] = LoraUse(entry, weight)  # a repeated tag: the last weight wins
    return " ".join(LORA_TAG.sub(" ", prompt).split()), list(uses.values())


def embeddings_in(texts: list[str], registry: ModelRegistry) -> list[ModelEntry]:
    """Embeddings whose names appear as words in any of ``texts``."""
    words = prompt_words(*texts)
    return [e for e in registry.of_kind(EMBEDDING) if e.name in words]


def _adapter_name(entry: ModelEntry) -> str:
    return re.sub(r"\W", "_", entry.name)


@contextlib.contextmanager
def applied(pipe: Any, family: Family, loras: list[LoraUse], embeddings: list[ModelEntry]) -> Iterator[None]:
    """Load the LoRAs and embeddings into ``pipe`` for one job.

    LoRAs stay loaded after the job while the next job asks for the same ones
    with the same weights: live painting asks for them every frame, and loading
    them from disk each time would cost more than a few-step frame. A job that
    asks for others, or none, unloads them first; a job that fails or is
    cancelled leaves none loaded. Embeddings are taken out after every job."""
    wanted = tuple((use.entry, use.weight) for use in loras)
    try:
        if wanted != getattr(pipe, "_paintwire_loras", ()):
            _unload_loras(pipe)
            if loras:
                pipe._paintwire_loras = wanted  # before loading: a load that fails half-way is unloaded below
                for use in loras:
                    name = _adapter_name(use.entry)
                    pipe.load_lora_weights(family.lora_weights(use.entry.path), adapter_name=name, local_files_only=True)
                    if not any(name in names for names in pipe.get_list_adapters().values()):
                        raise ProtocolError(ErrorCode.INVALID_PARAM, f"The LoRA {use.entry.name!r} has nothing this {family.label} model can "
                                            "take: it was made for another model family. Choose a LoRA made for this model.",
                                            "job.params.prompt")
                adapters_in_compute_dtype(pipe)  # an fp8-stored transformer (memory plan): its LoRA computes in bf16
                pipe.set_adapters([_adapter_name(u.entry) for u in loras], adapter_weights=[u.weight for u in loras])
        for emb in embeddings:
            _load_embedding(pipe, emb)
        yield
    except BaseException:
        _unload_loras(pipe)  # half loaded, or a job that went wrong: the next job starts clean
        raise
    finally:
        if embeddings:
            pipe.unload_textual_inversion()


def _unload_loras(pipe: Any) -> None:
    if getattr(pipe, "_paintwire_loras", ()):
        pipe.unload_lora_weights()
    pipe._paintwire_loras = ()


def _load_embedding(pipe: Any, emb: ModelEntry) -> None:
    from safetensors.torch import load_file

    tensors = load_file(str(emb.path))
    if "clip_g" in tensors:  # an SDXL embedding: one vector set per text encoder
        pipe.load_textual_inversion(tensors["clip_l"], token=emb.name, text_encoder=pipe.text_encoder, tokenizer=pipe.tokenizer)
        pipe.load_textual_inversion(tensors["clip_g"], token=emb.name, text_encoder=pipe.text_encoder_2, tokenizer=pipe.tokenizer_2)
        return
    vectors = tensors.get("emb_params")
    if vectors is None:
        vectors = next(v for k, v in tensors.items() if k.startswith("string_to_param"))
    pipe.load_textual_inversion(vectors, token=emb.name)
