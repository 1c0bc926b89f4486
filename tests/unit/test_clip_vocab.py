"""The shipped CLIP vocabulary gives the published token ids, offline."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("transformers")

from paintwire.server.engines.diffusion.clip_vocab import (  # noqa: E402
    BPE_FILE, CLIP_VOCAB_SIZE, PAD_CLIP_L, PAD_OPEN_CLIP, clip_vocab, make_tokenizer, write_tokenizer,
)

# Ids as published for openai/clip-vit-large-patch14 (the CLIPModel documentation's
# example batch, and the tokenizer's own test strings).
PUBLISHED = [
    ("a photo of a cat", [49406, 320, 1125, 539, 320, 2368, 49407]),
    ("a photo of a dog", [49406, 320, 1125, 539, 320, 1929, 49407]),
    ("a painting of a dog", [49406, 320, 3086, 539, 320, 1929, 49407]),
    ("Hello World", [49406, 3306, 1002, 49407]),  # CLIP lower-cases
    ("sunset over the beach", [49406, 3424, 962, 518, 2117, 49407]),
    ("a cat & a dog", [49406, 320, 2368, 261, 320, 1929, 49407]),
    ("!", [49406, 256, 49407]),
    ("", [49406, 49407]),
]


@pytest.fixture(scope="module")
def tokenizer():
    return make_tokenizer(CLIP_VOCAB_SIZE)


@pytest.mark.parametrize("text,ids", PUBLISHED)
def test_token_ids_equal_the_published_clip_ids(tokenizer, text, ids):
    assert tokenizer(text).input_ids == ids


def test_the_vocabulary_has_the_size_of_every_sd_text_encoder():
    vocab, merges = clip_vocab()
    assert len(vocab) == CLIP_VOCAB_SIZE == max(vocab.values()) + 1
    assert len(merges) == 48894 and vocab["<|startoftext|>"] == 49406 and vocab["<|endoftext|>"] == 49407
    assert BPE_FILE.is_file() and (BPE_FILE.parent / "LICENSE").is_file()


def test_clip_l_pads_with_the_end_token_and_open_clip_with_the_exclamation_mark():
    clip_l, open_clip = make_tokenizer(CLIP_VOCAB_SIZE, PAD_CLIP_L), make_tokenizer(CLIP_VOCAB_SIZE, PAD_OPEN_CLIP)
    assert clip_l("a cat", padding="max_length").input_ids[4:] == [49407] * 73
    assert open_clip("a cat", padding="max_length").input_ids[:5] == [49406, 320, 2368, 49407, 0]
    assert open_clip("a cat", padding="max_length").input_ids[5:] == [0] * 72


def test_saved_tokenizer_loads_back_with_its_pad_token(tmp_path):
    from transformers import CLIPTokenizer

    assert write_tokenizer(tmp_path / "tok", CLIP_VOCAB_SIZE, PAD_OPEN_CLIP)
    loaded = CLIPTokenizer.from_pretrained(tmp_path / "tok", local_files_only=True)
    assert loaded.pad_token == "!" and loaded.model_max_length == 77 and len(loaded) == CLIP_VOCAB_SIZE
    assert loaded("a photo of a cat").input_ids == PUBLISHED[0][1]
    assert json.loads((tmp_path / "tok" / "tokenizer_config.json").read_text())["pad_token"] == "!"


def test_an_unknown_vocabulary_size_has_no_shipped_tokenizer(tmp_path):
    assert make_tokenizer(32000) is None and not write_tokenizer(tmp_path / "x", 32000)
