"""Prompts to conditioning the way the WebUI computes it: weighted, chunked, any length.

Per text encoder (SD1/SD2 have one, SDXL two):

1. The prompt is parsed into weighted fragments (prompt_syntax.py) and each is
   tokenised on its own (textual-inversion names expanded to their vectors).
2. Tokens fill chunks of 75. A chunk that fills up within 20 tokens after a
   comma is cut after that comma, so a phrase is not split; ``BREAK`` starts a
   new chunk at once. Each chunk is framed by start and end tokens and padded
   to 77 with the tokenizer's pad token.
3. Each chunk is encoded on its own (clip skip as the pipelines do it), every
   token's vector is multiplied by its weight, and the chunk is rescaled so its
   mean stays what it was unweighted (the WebUI's normalisation).
4. The chunks' vectors are concatenated. Positive and negative are given the
   same number of chunks by appending empty chunks to the shorter one.

SDXL joins both encoders' vectors per token and takes the pooled vector from
the second encoder's first chunk. An empty negative prompt on a model whose
pipeline zeroes it (``force_zeros_for_empty_prompt``) gives zeros, as diffusers
does.

The result goes to the pipeline as ``prompt_embeds`` and friends, so the
pipelines' own 77-token truncation never applies.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from .prompt_syntax import Fragment, parse

CHUNK_TOKENS = 75  # 77 minus the start and end tokens
COMMA_BACKTRACK = 20  # the WebUI's default: how far back a chunk may be cut at a comma


@dataclass
class Chunk:
    ids: list[int]
    weights: list[float]


def chunk_tokens(pieces: list[tuple[list[int], float] | None], comma: int | None) -> list[Chunk]:
    """Split weighted token runs (None = BREAK) into chunks of at most 75 tokens."""
    chunks: list[Chunk] = []
    current = Chunk([], [])
    last_comma = -1

    def close(carry: Chunk | None = None) -> None:
        nonlocal current, last_comma
        chunks.append(current)
        current, last_comma = carry or Chunk([], []), -1

    for piece in pieces:
        if piece is None:
            close()
            continue
        tokens, weight = piece
        for token in tokens:
            if token == comma:
                last_comma = len(current.ids)
            elif len(current.ids) == CHUNK_TOKENS and last_comma != -1 and CHUNK_TOKENS - last_comma <= COMMA_BACKTRACK:
                cut = last_comma + 1
                carry = Chunk(current.ids[cut:], current.weights[cut:])
                current.ids, current.weights = current.ids[:cut], current.weights[:cut]
                close(carry)
            if len(current.ids) == CHUNK_TOKENS:
                close()
            current.ids.append(token)
            current.weights.append(weight)
    if current.ids or not chunks:
        close()
    return chunks


@dataclass
class _Encoder:
    """One tokenizer and its text encoder, and how the pipeline reads its output."""

    pipe: Any
    tokenizer: Any
    model: Any
    sdxl: bool

    def pieces(self, fragments: list[Fragment]) -> list[tuple[list[int], float] | None]:
        out: list[tuple[list[int], float] | None] = []
        for fragment in fragments:
            if fragment.is_break:
                out.append(None)
                continue
            text = fragment.text
            if hasattr(self.pipe, "maybe_convert_prompt"):  # a multi-vector embedding's name -> its tokens
                text = self.pipe.maybe_convert_prompt(text, self.tokenizer)
            ids = self.tokenizer(text, add_special_tokens=False, truncation=False, verbose=False).input_ids
            out.append((ids, fragment.weight))
        return out

    def comma(self) -> int | None:
        return self.tokenizer.get_vocab().get(",</w>")

    def framed(self, chunk: Chunk) -> tuple[torch.Tensor, torch.Tensor]:
        tok = self.tokenizer
        pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        n = CHUNK_TOKENS - len(chunk.ids)
        # The end token right after the text, then padding: as the tokenizer (and
        # OpenCLIP's own) frames a prompt, so the pooled vector is read at the text's end.
        ids = [tok.bos_token_id] + chunk.ids + [tok.eos_token_id] + [pad] * n
        weights = [1.0] + chunk.weights + [1.0] * (n + 1)
        return torch.tensor([ids], device=self.model.device), torch.tensor(weights, dtype=torch.float32)

    def encode(self, chunk: Chunk, clip_skip: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(1, 77, width) hidden states for one chunk, weighted and mean-restored; and
        the pooled projection where the encoder has one."""
        ids, weights = self.framed(chunk)
        out = self.model(ids, output_hidden_states=True)
        if self.sdxl:  # SDXL reads the penultimate layer (clip skip counts on from there), no final norm
            hidden = out.hidden_states[-(clip_skip + 1)]
        elif clip_skip > 1:  # the WebUI counts the last layer as 1
            hidden = _final_norm(self.model)(out.hidden_states[-clip_skip])
        else:
            hidden = out[0]
        pooled = out.text_embeds if hasattr(out, "text_embeds") else None
        if not torch.all(weights == 1):
            mean = hidden.mean()
            hidden = hidden * weights.to(hidden.device, hidden.dtype)[None, :, None]
            new_mean = hidden.mean()
            if new_mean != 0:
                hidden = hidden * (mean / new_mean)
        return hidden, pooled


def _final_norm(model: Any) -> Any:
    norm = getattr(model, "final_layer_norm", None)  # transformers 5 flattened CLIPTextModel
    return norm if norm is not None else model.text_model.final_layer_norm


def _encoders(pipe: Any) -> list[_Encoder]:
    sdxl = getattr(pipe, "text_encoder_2", None) is not None
    pairs = [(pipe.tokenizer, pipe.text_encoder)]
    if sdxl:
        pairs.append((pipe.tokenizer_2, pipe.text_encoder_2))
    return [_Encoder(pipe, tok, model, sdxl) for tok, model in pairs if tok is not None and model is not None]


def _encode_text(encoders: list[_Encoder], prompt: str, clip_skip: int, chunks_min: int = 0) -> tuple[list[torch.Tensor], torch.Tensor | None]:
    """Per-chunk hidden states (encoders joined on the last axis) and the pooled vector."""
    fragments = parse(prompt)
    per_encoder = []
    for enc in encoders:
        chunks = chunk_tokens(enc.pieces(fragments), enc.comma())
        chunks += [Chunk([], []) for _ in range(chunks_min - len(chunks))]
        per_encoder.append(chunks)
    # Both SDXL encoders share a vocabulary, so they chunk alike; pad to the longer to be safe.
    count = max(len(c) for c in per_encoder)
    hidden: list[torch.Tensor] = []
    pooled = None
    for i in range(count):
        parts = []
        for enc, chunks in zip(encoders, per_encoder):
            h, p = enc.encode(chunks[i] if i < len(chunks) else Chunk([], []), clip_skip)
            parts.append(h)
            if i == 0 and p is not None:
                pooled = p  # the WebUI's pooled output comes from the first chunk only
        hidden.append(torch.cat(parts, dim=-1))
    return hidden, pooled


def encode_prompts(pipe: Any, prompt: str, negative_prompt: str, clip_skip: int = 1) -> dict[str, torch.Tensor]:
    """Keyword arguments for a Stable Diffusion (XL) pipeline call: ``prompt_embeds``,
    ``negative_prompt_embeds`` and, for SDXL, the pooled pair."""
    encoders = _encoders(pipe)
    sdxl = encoders[0].sdxl
    with torch.inference_mode():
        pos, pooled = _encode_text(encoders, prompt, clip_skip)
        zero_negative = sdxl and not negative_prompt and getattr(pipe.config, "force_zeros_for_empty_prompt", False)
        if zero_negative:
            neg, neg_pooled = [torch.zeros_like(h) for h in pos], (torch.zeros_like(pooled) if pooled is not None else None)
        else:
            neg, neg_pooled = _encode_text(encoders, negative_prompt, clip_skip, chunks_min=len(pos))
            if len(neg) > len(pos):  # a longer negative: the positive gets empty chunks
                pos, pooled = _encode_text(encoders, prompt, clip_skip, chunks_min=len(neg))
    kwargs = {"prompt_embeds": torch.cat(pos, dim=1), "negative_prompt_embeds": torch.cat(neg, dim=1)}
    if sdxl:
        kwargs.update(pooled_prompt_embeds=pooled, negative_pooled_prompt_embeds=neg_pooled)
    return kwargs
