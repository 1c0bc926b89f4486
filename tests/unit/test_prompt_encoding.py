"""Prompt conditioning as the WebUI computes it, on tiny pipelines with the real
CLIP vocabulary: each rule changes the conditioning the way docs/models.md says."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fixtures import tiny_models  # noqa: E402
from paintwire.server.engines.diffusion.prompt_encoding import Chunk, chunk_tokens, encode_prompts  # noqa: E402

CAT = "a photo of a cat"  # ids 320 1125 539 320 2368: "cat" is the fifth token, position 5 after the start token


@pytest.fixture(scope="module")
def sd():
    return tiny_models.build_tiny_sd15_four_level(vocab_size=49408)


@pytest.fixture(scope="module")
def sdxl(tmp_path_factory):
    from diffusers import StableDiffusionXLPipeline

    folder = tiny_models.build_tiny_sdxl(tmp_path_factory.mktemp("xl") / "xl", vocab_size=49408)
    return StableDiffusionXLPipeline.from_pretrained(folder, local_files_only=True)


def embeds(pipe, prompt, negative="", clip_skip=1):
    return encode_prompts(pipe, prompt, negative, clip_skip)


def test_a_plain_prompt_gives_exactly_what_the_pipeline_gives(sd, sdxl):
    """Without any syntax, the conditioning is the pipelines' own (no drift for plain prompts)."""
    ours = embeds(sd, CAT, "blurry")
    theirs = sd.encode_prompt(CAT, "cpu", 1, True, negative_prompt="blurry")
    assert torch.equal(ours["prompt_embeds"], theirs[0]) and torch.equal(ours["negative_prompt_embeds"], theirs[1])
    ours = embeds(sdxl, CAT, "blurry")
    theirs = sdxl.encode_prompt(CAT, device="cpu", negative_prompt="blurry")
    names = ("prompt_embeds", "negative_prompt_embeds", "pooled_prompt_embeds", "negative_pooled_prompt_embeds")
    assert all(torch.allclose(ours[n], t, atol=1e-6) for n, t in zip(names, theirs))


def test_clip_skip_gives_what_the_pipeline_gives(sd):
    from paintwire.server.engines.diffusion.loader import _alias_text_model

    _alias_text_model(sd)  # as the loader does: diffusers' clip-skip path predates transformers 5
    ours = embeds(sd, CAT, clip_skip=2)["prompt_embeds"]
    theirs = sd.encode_prompt(CAT, "cpu", 1, False, clip_skip=1)[0]  # diffusers counts from 0
    assert torch.allclose(ours, theirs, atol=1e-6) and not torch.allclose(ours, embeds(sd, CAT)["prompt_embeds"])


def test_a_weight_scales_its_tokens_and_the_mean_is_restored(sd):
    plain = embeds(sd, CAT)["prompt_embeds"][0]
    weighted = embeds(sd, "a photo of a (cat:1.3)")["prompt_embeds"][0]
    ratio = weighted / plain
    # Every vector is rescaled by one factor (the mean restore); the cat's by 1.3 more.
    others = ratio[[0, 1, 2, 3, 4, 6]]
    assert torch.allclose(others, others[0, 0].expand_as(others), rtol=1e-4)
    assert torch.allclose(ratio[5] / ratio[0], torch.full_like(ratio[5], 1.3), rtol=1e-4)
    assert torch.allclose(weighted.mean(), plain.mean(), rtol=1e-4)


@pytest.mark.parametrize("short,explicit", [
    ("a photo of a (cat)", "a photo of a (cat:1.1)"),
    ("a photo of a ((cat))", "a photo of a (cat:1.21)"),
    ("a photo of a [cat]", f"a photo of a (cat:{1 / 1.1})"),
])
def test_brackets_are_the_webuis_factors(sd, short, explicit):
    a, b = embeds(sd, short)["prompt_embeds"], embeds(sd, explicit)["prompt_embeds"]
    assert torch.allclose(a, b, atol=1e-6) and not torch.allclose(a, embeds(sd, CAT)["prompt_embeds"])


def test_escaped_brackets_are_text(sd):
    escaped = embeds(sd, "a photo of a \\(cat\\)")["prompt_embeds"]
    literal = sd.encode_prompt("a photo of a (cat)", "cpu", 1, False)[0]
    assert torch.equal(escaped, literal)


def test_break_starts_a_new_chunk(sd):
    out = embeds(sd, "a photo of a cat BREAK a dog")["prompt_embeds"]
    assert out.shape[1] == 154
    assert torch.equal(out[:, :77], embeds(sd, "a photo of a cat ")["prompt_embeds"])
    assert torch.equal(out[:, 77:], embeds(sd, " a dog")["prompt_embeds"])


def test_a_long_prompt_is_encoded_in_chunks_of_75_tokens(sd):
    words = " ".join(["cat"] * 80)  # 80 tokens
    out = embeds(sd, words)["prompt_embeds"]
    assert out.shape[1] == 154
    assert torch.equal(out[:, :77], embeds(sd, " ".join(["cat"] * 75))["prompt_embeds"])
    assert torch.equal(out[:, 77:], embeds(sd, " ".join(["cat"] * 5))["prompt_embeds"])
    # The pipeline itself would drop the last 5 tokens.
    assert torch.equal(out[:, :77], sd.encode_prompt(words, "cpu", 1, False)[0])


def test_a_full_chunk_is_cut_after_a_recent_comma():
    comma = 267
    tokens = [1] * 70 + [comma] + [2] * 10  # the comma at index 70: 5 tokens before the chunk's end
    chunks = chunk_tokens([(tokens, 1.0)], comma)
    assert [len(c.ids) for c in chunks] == [71, 10] and chunks[0].ids[-1] == comma
    far = [1] * 40 + [comma] + [2] * 40  # a comma 35 tokens back is too far: cut at 75
    assert [len(c.ids) for c in chunk_tokens([(far, 1.0)], comma)] == [75, 6]
    assert chunk_tokens([], comma) == [Chunk([], [])]
    assert [len(c.ids) for c in chunk_tokens([([1], 1.0), None, ([2], 2.0)], comma)] == [1, 1]


def test_positive_and_negative_get_the_same_number_of_chunks(sd):
    long = " ".join(["cat"] * 80)
    out = embeds(sd, "a dog", long)
    assert out["prompt_embeds"].shape == out["negative_prompt_embeds"].shape == (1, 154, 32)
    empty_chunk = embeds(sd, "")["prompt_embeds"]
    assert torch.equal(out["prompt_embeds"][:, 77:], empty_chunk)
    out = embeds(sd, long, "ugly")
    assert torch.equal(out["negative_prompt_embeds"][:, 77:], empty_chunk)


def test_the_negative_prompt_takes_the_syntax_too(sd):
    a = embeds(sd, CAT, "blurry, (ugly:1.4)")["negative_prompt_embeds"]
    b = embeds(sd, CAT, "blurry, ugly")["negative_prompt_embeds"]
    assert a.shape == b.shape and not torch.allclose(a, b)


def test_sdxl_joins_both_encoders_and_pools_the_first_chunk(sdxl):
    out = embeds(sdxl, " ".join(["cat"] * 80) + " BREAK dog")
    assert out["prompt_embeds"].shape == (1, 231, 32 + 48)
    first = embeds(sdxl, " ".join(["cat"] * 75))
    assert torch.equal(out["pooled_prompt_embeds"], first["pooled_prompt_embeds"])
    weighted = embeds(sdxl, "a photo of a (cat:1.5)")["prompt_embeds"]
    plain = embeds(sdxl, CAT)["prompt_embeds"]
    ratio = weighted[0] / plain[0]
    # Each encoder's half is weighted and mean-restored on its own.
    for half in (slice(0, 32), slice(32, 80)):
        assert torch.allclose(ratio[5, half] / ratio[1, half], torch.full_like(ratio[5, half], 1.5), rtol=1e-3)


def test_sdxl_empty_negative_is_zeros_as_in_diffusers(sdxl):
    out = embeds(sdxl, " ".join(["cat"] * 80))
    assert out["negative_prompt_embeds"].shape == out["prompt_embeds"].shape
    assert not out["negative_prompt_embeds"].any() and not out["negative_pooled_prompt_embeds"].any()


def test_an_embedding_name_inside_weights_uses_its_vectors():
    pipe = tiny_models.build_tiny_sd15_four_level(vocab_size=49408)
    before = embeds(pipe, "a (tinyemb:1.2) cat")["prompt_embeds"]
    pipe.load_textual_inversion(torch.randn(2, 32), token="tinyemb")  # two vectors: tinyemb tinyemb_1
    after = embeds(pipe, "a (tinyemb:1.2) cat")["prompt_embeds"]
    ids = pipe.tokenizer.convert_tokens_to_ids(["tinyemb", "tinyemb_1"])
    assert min(ids) >= 49408 and not torch.allclose(before, after)
