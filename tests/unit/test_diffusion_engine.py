"""The diffusers engine driven directly (no server): single-file loading offline,
no network ever, cancel without decoding, embeddings, shared pipelines."""

from __future__ import annotations

import json
import socket
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fixtures import tiny_models  # noqa: E402
from paintwire.protocol import ErrorCode, Phase, ProtocolError, validate_params  # noqa: E402
from paintwire.server.config import DeviceConfig, ModelsConfig  # noqa: E402
from paintwire.server.engines.base import EngineJob, JobCancelledError, JobContext  # noqa: E402
from paintwire.server.engines.diffusion import DiffusersEngine  # noqa: E402
from paintwire.server.engines.diffusion.families import family_named  # noqa: E402
from paintwire.server.engines.diffusion.models import ModelRegistry, read_header  # noqa: E402


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("unit-models")
    tiny_models.build_tiny_sd15(root / "sd15")
    tiny_models.write_tiny_single_file(root / "single.safetensors")
    tiny_models.write_tiny_sdxl_single_file(root / "xl-single.safetensors")
    tiny_models.write_tiny_embedding(root / "emb" / "tinyemb.safetensors")
    return root


@pytest.fixture(scope="module")
def engine(models) -> DiffusersEngine:
    eng = DiffusersEngine(DeviceConfig(), ModelsConfig(model_dirs=[models]))
    yield eng
    eng.close()


def job(engine, mode, model="sd15", **params):
    spec = next(m for m in engine.modes() if m.name == mode)
    return EngineJob("j", mode, validate_params(spec.params, {"steps": 2, "seed": 3, "width": 64, "height": 64, **params}), model=model)


def test_single_file_skeleton_matches_the_original_configs(models, tmp_path):
    original = tiny_models.build_tiny_sd15_four_level()
    folder = family_named("sd15").write_skeleton(tmp_path / "skel", read_header(models / "single.safetensors"), "sd15", "StableDiffusionPipeline",
                            lambda n, s: None)
    for name in ("unet", "vae", "text_encoder"):
        generated = json.loads((folder / name / "config.json").read_text())
        config = getattr(original, name).config
        config = config.to_dict() if hasattr(config, "to_dict") else dict(config)
        for key in ("in_channels", "block_out_channels", "layers_per_block", "cross_attention_dim", "down_block_types",
                    "up_block_types", "latent_channels", "hidden_size", "num_hidden_layers", "intermediate_size", "vocab_size"):
            if key in generated and key in config:
                assert list(np.atleast_1d(generated[key])) == list(np.atleast_1d(config[key])), (name, key)


@pytest.mark.parametrize("name,components", [("single", ("unet", "vae", "text_encoder")),
                                             ("xl-single", ("unet", "vae", "text_encoder", "text_encoder_2"))])
def test_single_file_loads_bit_exact_through_the_real_path(engine, tmp_path, name, components):
    if name == "single":
        original = tiny_models.build_tiny_sd15_four_level()
    else:
        from diffusers import StableDiffusionXLPipeline

        original = StableDiffusionXLPipeline.from_pretrained(tiny_models.build_tiny_sdxl(tmp_path / "xl"), local_files_only=True)
    loaded = engine.cache.get(engine.registry.get(name))
    assert loaded.entry.kind == ("sd15" if name == "single" else "sdxl")
    for name in components:
        a, b = getattr(original, name).state_dict(), getattr(loaded.base, name).state_dict()
        assert a.keys() == b.keys()
        assert all(torch.equal(a[k], b[k].reshape(a[k].shape)) for k in a), name


def test_loading_never_touches_the_network(models, monkeypatch):
    """Even with HF_HUB_OFFLINE unset, no model load opens a connection."""
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    attempts = []

    def refuse(self, address, *args):
        attempts.append(address)
        raise OSError("network disabled in this test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", lambda *a, **k: refuse(None, a[0]))
    eng = DiffusersEngine(DeviceConfig(), ModelsConfig(model_dirs=[models]))
    try:
        for name in ("sd15", "single"):
            out = eng.run(job(eng, "txt2img", model=name), JobContext())
            assert out.layers[0].pixels.shape == (64, 64, 4)
    finally:
        eng.close()
    assert attempts == []


def test_a_single_file_without_a_local_tokenizer_fails_clearly(tmp_path):
    """A checkpoint with a vocabulary size that no shipped tokenizer has, and no
    diffusers folder to borrow one from."""
    from safetensors.torch import load_file, save_file

    src = tmp_path / "src.safetensors"
    tiny_models.write_tiny_single_file(src)
    tensors = load_file(str(src))
    key = "cond_stage_model.transformer.text_model.embeddings.token_embedding.weight"
    tensors[key] = torch.zeros(32000, tensors[key].shape[1])
    (tmp_path / "m").mkdir()
    save_file(tensors, str(tmp_path / "m" / "odd-vocab.safetensors"))
    eng = DiffusersEngine(DeviceConfig(), ModelsConfig(model_dirs=[tmp_path / "m"]))
    try:
        with pytest.raises(ProtocolError) as info:
            eng.run(job(eng, "txt2img", model="odd-vocab"), JobContext())
    finally:
        eng.close()
    assert info.value.code is ErrorCode.ENGINE_FAILED and "no CLIP tokenizer with 32000 tokens" in info.value.message


REAL_VOCAB_FILES = {
    "sd15": (tiny_models.write_tiny_single_file, {"vocab_size": 49408}),
    "sd2": (tiny_models.write_tiny_sd2_single_file, {}),
    "sdxl": (tiny_models.write_tiny_sdxl_single_file, {"vocab_size": 49408}),
}


@pytest.mark.parametrize("kind", list(REAL_VOCAB_FILES))
def test_a_real_vocabulary_single_file_alone_in_an_empty_folder_generates(tmp_path, kind):
    """The real 49408-token CLIP vocabulary, with nothing else on disk: the
    shipped tokenizer is used, with each encoder's published pad token."""
    write, options = REAL_VOCAB_FILES[kind]
    folder = tmp_path / "models"
    write(folder / "painter-model.safetensors", **options)
    eng = DiffusersEngine(DeviceConfig(), ModelsConfig(model_dirs=[folder]))
    try:
        assert [(m.name, m.kind) for m in eng.models()] == [("painter-model", kind)]
        out = eng.run(job(eng, "txt2img", model="painter-model", prompt="a photo of a cat", negative_prompt="blurry"), JobContext())
        assert out.layers[0].pixels.shape == (64, 64, 4) and out.layers[0].pixels[..., :3].std() > 0
        base = eng.cache.get(eng.registry.get("painter-model")).base
    finally:
        eng.close()
    tokenizers = [base.tokenizer] + ([base.tokenizer_2] if kind == "sdxl" else [])
    assert all(len(t) == 49408 and t("a photo of a cat").input_ids == [49406, 320, 1125, 539, 320, 2368, 49407] for t in tokenizers)
    assert [t.pad_token for t in tokenizers] == {"sd15": ["<|endoftext|>"], "sd2": ["!"], "sdxl": ["<|endoftext|>", "!"]}[kind]


def test_cancel_during_the_first_step_stops_it_without_decoding(engine):
    loaded = engine.cache.get(engine.registry.get("sd15"))
    decodes = []
    original = loaded.base.vae.decode
    loaded.base.vae.decode = lambda *a, **k: decodes.append(1) or original(*a, **k)
    cancel = threading.Event()
    steps = []

    def on_progress(update):
        if update.phase is Phase.DENOISING:
            steps.append(update.step)
            cancel.set()  # the owner cancels as the first step begins

    try:
        with pytest.raises(JobCancelledError):
            engine.run(job(engine, "txt2img", steps=20), JobContext(cancel, on_progress))
        assert steps == [0] and decodes == []  # stopped inside the first step
        engine.run(job(engine, "txt2img"), JobContext())
        assert decodes == [1]
    finally:
        del loaded.base.vae.decode


def test_an_embedding_named_in_the_prompt_is_used(engine, models):
    with_emb = engine.run(job(engine, "txt2img", prompt="a tinyemb cat"), JobContext()).layers[0].pixels
    bare = DiffusersEngine(DeviceConfig(), ModelsConfig(model_dirs=[models / "sd15"]))  # the same model, no embeddings folder
    try:
        without = bare.run(job(bare, "txt2img", prompt="a tinyemb cat"), JobContext()).layers[0].pixels
        plain = bare.run(job(bare, "txt2img", prompt="a cat"), JobContext()).layers[0].pixels
    finally:
        bare.close()
    assert not np.array_equal(with_emb, without)
    again = engine.run(job(engine, "txt2img", prompt="a cat"), JobContext()).layers[0].pixels
    assert np.array_equal(plain, again)  # the embedding is unloaded after its job


def test_task_pipelines_share_the_loaded_components(engine):
    loaded = engine.cache.get(engine.registry.get("sd15"))
    img2img, inpaint = loaded.pipeline("img2img"), loaded.pipeline("inpaint")
    assert img2img.unet is loaded.base.unet and inpaint.vae is loaded.base.vae and inpaint.text_encoder is loaded.base.text_encoder
    assert type(img2img).__name__ == "StableDiffusionImg2ImgPipeline"


def test_no_model_at_all_is_unknown_model(tmp_path):
    eng = DiffusersEngine(DeviceConfig(), ModelsConfig(model_dirs=[tmp_path]), registry=ModelRegistry())
    with pytest.raises(ProtocolError) as info:
        eng.run(job(eng, "txt2img", model=None), JobContext())
    assert info.value.code is ErrorCode.UNKNOWN_MODEL and info.value.field == "job.model"


def test_a_vae_file_in_either_layout_replaces_the_models_own(models, tmp_path):
    folder = tmp_path / "vaes"
    tiny_models.write_tiny_vae(folder / "vae-diffusers.safetensors")
    tiny_models.write_tiny_vae(folder / "vae-original.safetensors", original_layout=True)  # same weights
    eng = DiffusersEngine(DeviceConfig(), ModelsConfig(model_dirs=[models / "sd15", folder]))
    try:
        assert {m.name: m.kind for m in eng.models()}["vae-original"] == "vae"
        own = eng.run(job(eng, "txt2img"), JobContext()).layers[0].pixels
        a = eng.run(job(eng, "txt2img", vae="vae-diffusers"), JobContext()).layers[0].pixels
        b = eng.run(job(eng, "txt2img", vae="vae-original"), JobContext()).layers[0].pixels
    finally:
        eng.close()
    assert not np.array_equal(own, a)
    assert np.array_equal(a, b)


def test_an_upscaler_file_spandrel_does_not_know_is_a_clear_error(models, tmp_path):
    from safetensors.torch import save_file

    (tmp_path / "upscalers").mkdir()  # listed by its folder; its tensors are no architecture spandrel knows
    save_file({"conv_first.weight": torch.zeros(4, 3, 3, 3)}, str(tmp_path / "upscalers" / "4x-odd.safetensors"))
    eng = DiffusersEngine(DeviceConfig(), ModelsConfig(model_dirs=[models / "sd15", tmp_path]))
    try:
        assert {m.name: m.kind for m in eng.models()}["4x-odd"] == "upscaler"
        img = np.full((16, 16, 4), 200, np.uint8)
        spec = next(m for m in eng.modes() if m.name == "upscale")
        upscale = EngineJob("j", "upscale", validate_params(spec.params, {"upscaler": "4x-odd", "refine": False}), image=img)
        with pytest.raises(ProtocolError) as info:
            eng.run(upscale, JobContext())
    finally:
        eng.close()
    assert info.value.code is ErrorCode.INVALID_PARAM and info.value.field == "job.params.upscaler"
    assert "4x-odd" in info.value.message and "architecture" in info.value.message


def test_big_images_decode_with_a_tiled_vae(engine):
    loaded = engine.cache.get(engine.registry.get("sd15"))
    calls = []
    vae = loaded.base.vae
    vae.enable_tiling, vae.disable_tiling = (lambda *a, **k: calls.append("on")), (lambda *a, **k: calls.append("off"))
    try:
        engine.run(job(engine, "txt2img", steps=1), JobContext())  # 64 px: the native size
        engine.run(job(engine, "txt2img", steps=1, width=160, height=160), JobContext())  # over 4x the native pixels
    finally:
        del vae.enable_tiling, vae.disable_tiling
    assert calls == ["off", "on"]


def test_a_single_file_borrows_a_tokenizer_from_the_hf_cache(tmp_path, monkeypatch):
    """Only the tokenizer files are taken from a cached CLIP repository, never its weights."""
    snap = tmp_path / "hub" / "models--openai--clip-vit-large-patch14" / "snapshots" / "abc"
    tiny_models.write_tokenizer(snap)
    (snap / "model.safetensors").write_bytes(b"weights")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    registry = ModelRegistry()
    found = registry.find_tokenizer(514)
    assert found == snap
    from paintwire.server.engines.diffusion.families.sd_configs import _write_tokenizer

    _write_tokenizer(tmp_path / "tok", 32000, "<|endoftext|>", lambda n: snap)  # a size with no shipped tokenizer
    assert (tmp_path / "tok" / "tokenizer.json").is_file() and not (tmp_path / "tok" / "model.safetensors").exists()
