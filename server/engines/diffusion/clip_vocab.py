"""CLIP tokenizers for single-file checkpoints, made offline from shipped data.

A single ``.safetensors`` checkpoint carries no tokenizer. Every SD1.x, SD2.x
and SDXL text encoder uses OpenAI CLIP's byte-pair vocabulary of 49408 tokens;
its merges ship beside this module (``clip_bpe/``, MIT, see its LICENSE) and
the vocabulary is rebuilt from them the way CLIP builds it: the 256 byte
characters, the same with ``</w>``, the first 48894 merges joined, then the
start and end tokens. Tests' tiny models use a byte-level vocabulary (514
tokens: no merges), made here too.

CLIP-L (SD1.x, SDXL's first encoder) pads with ``<|endoftext|>``; the OpenCLIP
encoders (SD2.x, SDXL's second) pad with ``!`` (id 0), as their published
tokenizer configs say.
"""

from __future__ import annotations

import functools
import gzip
from pathlib import Path

BPE_FILE = Path(__file__).with_name("clip_bpe") / "bpe_simple_vocab_16e6.txt.gz"
CLIP_VOCAB_SIZE = 49408
BYTE_VOCAB_SIZE = 514  # 2 x 256 byte characters + start and end tokens
START, END = "<|startoftext|>", "<|endoftext|>"
PAD_CLIP_L, PAD_OPEN_CLIP = END, "!"
MAX_LENGTH = 77  # without it transformers cannot pad to max_length


def bytes_to_unicode() -> list[str]:
    """The 256 printable stand-ins for bytes that CLIP (like GPT-2) tokenises,
    in CLIP's vocabulary order: printable bytes first, then the rest mapped above 255."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return [chr(c) for c in cs]


def byte_vocab() -> dict[str, int]:
    """A byte-level vocabulary (no merges): any text tokenises with it."""
    chars = bytes_to_unicode()
    return {t: i for i, t in enumerate(chars + [c + "</w>" for c in chars] + [START, END])}


@functools.lru_cache(maxsize=1)
def clip_vocab() -> tuple[dict[str, int], tuple[tuple[str, str], ...]]:
    """CLIP's 49408-token vocabulary and its merges (pairs), from the shipped BPE file."""
    with gzip.open(BPE_FILE, "rt", encoding="utf-8") as f:
        lines = f.read().split("\n")
    # Line 0 is a version header; the vocabulary has room for 48894 merges.
    merges = tuple(tuple(line.split()) for line in lines[1:CLIP_VOCAB_SIZE - 256 * 2 - 2 + 1])
    chars = bytes_to_unicode()
    tokens = chars + [c + "</w>" for c in chars] + ["".join(m) for m in merges] + [START, END]
    return {t: i for i, t in enumerate(tokens)}, merges


def make_tokenizer(vocab_size: int, pad: str = PAD_CLIP_L):
    """A CLIPTokenizer for a text encoder with ``vocab_size`` tokens, or None when
    no shipped vocabulary has that size."""
    from transformers import CLIPTokenizer

    if vocab_size == CLIP_VOCAB_SIZE:
        vocab, merges = clip_vocab()
    elif vocab_size == BYTE_VOCAB_SIZE:
        vocab, merges, pad = byte_vocab(), (), END  # "!" is a byte token here, but tests pad with the end token
    else:
        return None
    return CLIPTokenizer(vocab=dict(vocab), merges=list(merges), pad_token=pad, model_max_length=MAX_LENGTH)


def write_tokenizer(dest: Path, vocab_size: int, pad: str = PAD_CLIP_L) -> bool:
    """Save the tokenizer for ``vocab_size`` into ``dest``; False when there is none."""
    tokenizer = make_tokenizer(vocab_size, pad)
    if tokenizer is None:
        return False
    dest.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(dest)
    return True
