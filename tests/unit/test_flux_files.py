"""Flux.1 and Flux.2 Klein from files as people keep them: BFL single files (with or
without ComfyUI's prefix), all-in-one files, ComfyUI's split folders, GGUF and fp8
transformers; and each bad input listed with its sentence instead of failing a job.

Generation goes through the engine with the tiny models of fixtures/tiny_flux.py; where
the weights are the same as a diffusers folder's, so are the pixels. The tiny Flux.1
transformer needs ``flux1_single_file_any_width`` (diffusers' converter assumes the real
3072-wide model).
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fixtures import tiny_flux as tf  # noqa: E402
from fixtures.tiny_models import _save, write_tiny_vae  # noqa: E402
from paintwire.protocol import validate_params  # noqa: E402
from paintwire.server.config import DeviceConfig, ModelsConfig  # noqa: E402
from paintwire.server.engines.base import EngineJob, JobContext  # noqa: E402
from paintwire.server.engines.diffusion import DiffusersEngine  # noqa: E402
from paintwire.server.engines.diffusion.entries import read_header_entries  # noqa: E402
from paintwire.server.engines.diffusion.families import FLUX, FLUX2, recognise_file  # noqa: E402
from paintwire.server.engines.diffusion.families.flux_files import transformer_config  # noqa: E402
from paintwire.server.engines.diffusion.models import ModelRegistry  # noqa: E402
from paintwire.server.engines.diffusion.split_layout import file_shapes  # noqa: E402


def _state(path: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(path))


def _all_in_one(comfy: Path, dest: Path) -> Path:
    """ComfyUI's all-in-one Flux.1 checkpoint made of the parts of a comfy folder."""
    state = {}
    for folder, name, prefix in (("diffusion_models", "tiny-flux1-dev.safetensors", "model.diffusion_model."),
                                 ("text_encoders", tf.COMFY_CLIP_L, "text_encoders.clip_l.transformer."),
                                 ("text_encoders", tf.COMFY_T5, "text_encoders.t5xxl.transformer."),
                                 ("vae", tf.COMFY_FLUX_VAE, "vae.")):
        state.update({prefix + k: v for k, v in _state(comfy / folder / name).items()})
    return _save(dest, state)


def _fp8(source: Path, dest: Path) -> Path:
    """The transformer of ``source`` as the common "-fp8" downloads are: 2-D weights in float8_e4m3fn."""
    state = {k: v.to(torch.float8_e4m3fn) if v.ndim == 2 else v for k, v in _state(source).items()}
    return _save(dest, state)


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    """One model folder holding every layout (the weights of a variant are the same in each)."""
    root = tmp_path_factory.mktemp("flux-files")
    tf.save_flux(root / "flux1", layout="comfy")
    tf.save_flux2_klein(root / "klein", layout="comfy")
    tf.save_flux2_klein(root / "klein-gguf", layout="gguf")
    (root / "klein-gguf" / "diffusers").rename(root / "klein-gguf-reference")  # not a second copy of the parts
    shutil.rmtree(root / "klein-gguf-reference")
    # The transformer alone with ComfyUI's prefix, its parts found in the comfy folder.
    bfl = _state(root / "flux1" / "diffusion_models" / "tiny-flux1-dev.safetensors")
    _save(root / "single" / "prefixed-flux1.safetensors", {f"model.diffusion_model.{k}": v for k, v in bfl.items()})
    klein = _state(root / "klein" / "diffusion_models" / "tiny-flux2-klein-distilled.safetensors")
    _save(root / "single" / "prefixed-klein.safetensors", {f"model.diffusion_model.{k}": v for k, v in klein.items()})
    _all_in_one(root / "flux1", root / "aio" / "flux1-aio.safetensors")
    _fp8(root / "klein" / "diffusion_models" / "tiny-flux2-klein-distilled.safetensors", root / "fp8" / "klein-fp8.safetensors")
    write_tiny_vae(root / "vae" / "sd-vae.safetensors", original_layout=True)  # an SD VAE: offered for SD models only
    return root


@pytest.fixture(scope="module")
def engine(root):
    eng = DiffusersEngine(DeviceConfig(), ModelsConfig(model_dirs=[root]))
    yield eng
    eng.close()


def _name(engine: DiffusersEngine, path: Path) -> str:
    return next(e.name for e in engine.registry.entries.values() if e.path == path)


def _txt2img(engine: DiffusersEngine, model: str) -> np.ndarray:
    spec = next(m for m in engine.modes() if m.name == "txt2img")
    p = validate_params(spec.params, {"steps": 2, "seed": 11, "prompt": "a lighthouse", "width": 64, "height": 64})
    with tf.flux1_single_file_any_width():
        return engine.run(EngineJob("flux-files", "txt2img", p, model=model), JobContext()).layers[0].pixels


@pytest.fixture(scope="module")
def reference(engine, root):
    """The diffusers folders' images, each made once."""
    return {"flux1": _txt2img(engine, _name(engine, root / "flux1" / "diffusers")),
            "klein": _txt2img(engine, _name(engine, root / "klein" / "diffusers"))}


# --- what the registry lists ---------------------------------------------------------------------


def test_every_layout_is_one_model_named_after_its_transformer_and_the_parts_are_not_listed(engine, root):
    found = {e.name: e.kind for e in engine.registry.entries.values() if e.single_file and e.is_checkpoint}
    assert found == {"tiny-flux1-dev": "flux", "tiny-flux2-klein-distilled": "flux2-klein", "tiny-flux2-klein-distilled-Q8_0": "flux2-klein",
                     "prefixed-flux1": "flux", "prefixed-klein": "flux2-klein", "flux1-aio": "flux", "klein-fp8": "flux2-klein"}
    assert engine.registry.unusable == {}  # text encoders and Flux VAEs are parts: neither unknown files nor SD VAEs
    comfy = engine.registry.get("tiny-flux1-dev")
    assert {p.role: p.path.name for p in comfy.parts} == {
        "transformer": "tiny-flux1-dev.safetensors", "clip-l": tf.COMFY_CLIP_L, "t5": tf.COMFY_T5, "t5-tokenizer": "tokenizer_2",
        "flux-vae": tf.COMFY_FLUX_VAE}
    aio = engine.registry.get("flux1-aio")
    assert {p.role: p.prefix for p in aio.parts if p.path == aio.path} == {
        "transformer": "model.diffusion_model.", "clip-l": "text_encoders.clip_l.transformer.", "t5": "text_encoders.t5xxl.transformer.",
        "flux-vae": "vae."}


@pytest.mark.parametrize("variant,kind", [("dev", "flux"), ("schnell", "flux-schnell"), ("fill", "flux-fill")])
def test_flux1_variants_are_told_by_their_tensors_and_their_configs_match_the_diffusers_ones(tmp_path, variant, kind):
    path = tf.save_flux(tmp_path, variant, layout="single")
    shapes = file_shapes(path)
    assert recognise_file(shapes) == kind
    _config_matches(transformer_config(shapes), tmp_path / "diffusers" / "transformer" / "config.json")


def test_klein_is_told_from_flux1_and_its_config_matches(tmp_path):
    path = tf.save_flux2_klein(tmp_path, layout="single")
    shapes = file_shapes(path)
    assert recognise_file(shapes) == "flux2-klein" and FLUX.recognise_file(shapes) is None and FLUX2.recognise_file(shapes)
    _config_matches(transformer_config(shapes), tmp_path / "diffusers" / "transformer" / "config.json")


def _config_matches(config: dict, reference: Path) -> None:
    import json

    want = json.loads(reference.read_text())
    assert {k: (list(v) if isinstance(v, tuple) else v) for k, v in config.items() if k in want} == \
        {k: want[k] for k in config if k in want}


def _comfy_copy(source: Path, dest: Path) -> Path:
    shutil.copytree(source, dest, ignore=shutil.ignore_patterns("diffusers"))
    return dest


def test_kontext_by_file_name_or_sidecar_and_a_sidecar_kind_must_fit_the_tensors(root, tmp_path):
    comfy = _comfy_copy(root / "flux1", tmp_path / "models")
    shutil.copytree(root / "flux1" / "diffusers", tmp_path / "models" / "flux1-dev-diffusers")  # for the T5 tokenizer
    models = comfy / "diffusion_models"
    shutil.copy(models / "tiny-flux1-dev.safetensors", models / "my-FLUX.1-Kontext-dev.safetensors")
    shutil.copy(models / "tiny-flux1-dev.safetensors", models / "editor.safetensors")
    (models / "editor.yaml").write_text("kind: flux-kontext\n")
    shutil.copy(models / "tiny-flux1-dev.safetensors", models / "wrong.safetensors")
    (models / "wrong.yaml").write_text("kind: flux-fill\n")
    shutil.copy(models / "tiny-flux1-dev.safetensors", models / "typo.safetensors")
    (models / "typo.yaml").write_text("vae: [1, 2]\n")
    registry = ModelRegistry.scan([tmp_path / "models"], include_hf_cache=False)
    kinds = {e.name: e.kind for e in registry.entries.values() if e.single_file}
    assert kinds == {"tiny-flux1-dev": "flux", "my-FLUX.1-Kontext-dev": "flux-kontext", "editor": "flux-kontext"}
    assert "its sidecar says kind 'flux-fill'" in registry.unusable["wrong"].reason
    assert "flux or flux-kontext" in registry.unusable["wrong"].reason
    assert "vae must be a file name" in registry.unusable["typo"].reason


def test_a_sidecar_chooses_the_vae_and_a_klein_base_is_told_by_name(root, tmp_path):
    comfy = _comfy_copy(root / "klein", tmp_path / "models")
    shutil.copytree(root / "klein" / "diffusers", tmp_path / "models" / "klein-diffusers")
    shutil.copy(comfy / "vae" / tf.COMFY_FLUX2_VAE, comfy / "vae" / "zz-other-vae.safetensors")
    models = comfy / "diffusion_models"
    shutil.copy(models / "tiny-flux2-klein-distilled.safetensors", models / "flux-2-klein-base-4b.safetensors")
    (models / "flux-2-klein-base-4b.yaml").write_text("vae: zz-other-vae.safetensors\ntext_encoders: [qwen_3_4b.safetensors]\n")
    registry = ModelRegistry.scan([tmp_path / "models"], include_hf_cache=False)
    base = registry.get("flux-2-klein-base-4b")
    assert base.kind == "flux2-klein-base"
    assert {p.role: p.path.name for p in base.parts}["flux2-vae"] == "zz-other-vae.safetensors"
    assert {p.role: p.path.name for p in registry.get("tiny-flux2-klein-distilled").parts}["flux2-vae"] == tf.COMFY_FLUX2_VAE


def test_a_tokenizer_folder_beside_the_text_encoder_is_used(root, tmp_path):
    comfy = _comfy_copy(root / "flux1", tmp_path / "models")
    assert "no T5 tokenizer" in ModelRegistry.scan([comfy], include_hf_cache=False).unusable["tiny-flux1-dev"].reason
    shutil.copytree(root / "flux1" / "diffusers" / "tokenizer_2", comfy / "text_encoders" / "t5xxl.tokenizer")
    entry = ModelRegistry.scan([comfy], include_hf_cache=False).get("tiny-flux1-dev")
    assert {p.role: p.path for p in entry.parts}["t5-tokenizer"] == comfy / "text_encoders" / "t5xxl.tokenizer"


# --- bad input: listed with a sentence ----------------------------------------------------------


def _problems(folder: Path) -> dict[str, str]:
    registry = ModelRegistry.scan([folder], include_hf_cache=False)
    return {name: u.reason for name, u in registry.unusable.items()}


def test_a_transformer_alone_names_each_missing_file_and_its_folder(tmp_path):
    tf.save_comfy_transformer_only(tmp_path)
    assert _problems(tmp_path) == {"tiny-flux1-dev": (
        "tiny-flux1-dev cannot be loaded: it needs the CLIP-L text encoder (text_encoders/clip_l.safetensors), the T5-XXL "
        "text encoder (text_encoders/t5xxl_fp16.safetensors) and the Flux.1 VAE (vae/ae.safetensors) under a model folder.")}


def test_an_sd_vae_beside_a_flux_transformer_is_named_as_the_wrong_one(tmp_path):
    tf.save_comfy_with_sd_vae(tmp_path)
    shutil.rmtree(tmp_path / "diffusers")  # else its parts would serve (a diffusers folder of the family)
    problems = _problems(tmp_path)
    assert set(problems) == {"tiny-flux1-dev"}
    assert ("it needs the Flux.1 VAE (vae/ae.safetensors) under a model folder; sd-vae.safetensors is a Stable Diffusion "
            "VAE (4 latent channels), not the Flux.1 VAE") in problems["tiny-flux1-dev"]
    assert ModelRegistry.scan([tmp_path], include_hf_cache=False).get("sd-vae").kind == "vae"  # still an SD VAE for SD models


def test_a_gguf_of_a_type_that_cannot_load_is_listed_with_its_type(tmp_path):
    tf.save_unsupported_gguf(tmp_path / "flux1-dev-TQ1_0.gguf")
    problem = _problems(tmp_path)["flux1-dev-TQ1_0"]
    assert problem.startswith("flux1-dev-TQ1_0.gguf holds tensors quantised as TQ1_0, which this server cannot load (it loads ")
    assert "Q8_0" in problem and problem.endswith("use a file of one of those types.")


def test_truncated_files_are_listed_as_cut_short(root, tmp_path):
    source = root / "klein" / "diffusion_models" / "tiny-flux2-klein-distilled.safetensors"
    tf.write_truncated_safetensors(tmp_path / "half.safetensors", source)
    gguf = next((root / "klein-gguf").glob("*.gguf"))
    (tmp_path / "half-gguf.gguf").write_bytes(gguf.read_bytes()[: gguf.stat().st_size // 2])
    problems = _problems(tmp_path)
    size = source.stat().st_size
    assert problems["half"] == (f"half.safetensors is not a readable .safetensors file (it is cut short: {size // 2} of its {size} "
                                "bytes are there (a download that stopped?)).")
    assert problems["half-gguf"].startswith("half-gguf.gguf is not a readable GGUF file (it is cut short or damaged")
    with pytest.raises(ValueError, match="cut short"):
        read_header_entries(tmp_path / "half.safetensors")


def test_a_text_encoder_without_a_tokenizer_says_what_to_put_where(root, tmp_path):
    _comfy_copy(root / "klein", tmp_path / "models")
    assert _problems(tmp_path / "models")["tiny-flux2-klein-distilled"] == (
        "tiny-flux2-klein-distilled cannot be loaded: no Qwen3 tokenizer was found for qwen_3_4b.safetensors (a single file "
        "carries none): put the tokenizer/ folder of a FLUX.2 Klein diffusers download (with its tokenizer.json) beside it as "
        "text_encoders/qwen_3_4b.tokenizer/, or keep a FLUX.2 Klein diffusers folder in a model folder.")


def test_a_qwen3_of_another_width_is_not_taken(root, tmp_path):
    comfy = _comfy_copy(root / "klein", tmp_path / "models")
    wide = {k: torch.zeros(*[n * 2 if n == tf.TEXT_WIDTH else n for n in v.shape]) for k, v in _state(comfy / "text_encoders" / tf.COMFY_QWEN3).items()}
    (comfy / "text_encoders" / tf.COMFY_QWEN3).unlink()
    _save(comfy / "text_encoders" / "qwen_3_8b.safetensors", wide)
    problem = _problems(tmp_path / "models")["tiny-flux2-klein-distilled"]
    assert problem.startswith("tiny-flux2-klein-distilled cannot be loaded: it needs the Qwen3 text encoder (text_encoders/qwen_3_4b.safetensors)")
    assert f"qwen_3_8b.safetensors is {tf.TEXT_WIDTH * 2} wide where this model reads {tf.TEXT_WIDTH}" in problem


def test_the_flux2_vae_loads_with_bfls_names_for_its_quant_convolutions(root, tmp_path):
    """BFL's flux2-vae keeps them as encoder.quant_conv / decoder.post_quant_conv (diffusers'
    conversion script for it says so); the fixture's file has them on top, as the LDM layout."""
    from paintwire.server.engines.diffusion.loader import Loader

    comfy = _comfy_copy(root / "klein", tmp_path / "models")
    shutil.copytree(root / "klein" / "diffusers" / "tokenizer", comfy / "text_encoders" / "qwen_3_4b.tokenizer")
    vae = comfy / "vae" / tf.COMFY_FLUX2_VAE
    renamed = {("encoder." + k if k.startswith("quant_conv.") else "decoder." + k if k.startswith("post_quant_conv.") else k): v
               for k, v in _state(vae).items()}
    assert "encoder.quant_conv.weight" in renamed
    _save(vae, renamed)
    registry = ModelRegistry.scan([tmp_path / "models"], include_hf_cache=False)
    loader = Loader(registry, torch.device("cpu"), torch.float32)
    try:
        pipe = loader.load(registry.get("tiny-flux2-klein-distilled"))
    finally:
        loader.close()
    want = _state(root / "klein" / "diffusers" / "vae" / "diffusion_pytorch_model.safetensors")
    got = pipe.vae.state_dict()
    assert set(want) - set(got) == set()
    for key, value in want.items():
        torch.testing.assert_close(got[key], value, rtol=0, atol=0, msg=key)


# --- generation ----------------------------------------------------------------------------------


def test_a_transformer_file_beside_a_diffusers_folder_takes_the_folders_other_parts(root, reference, tmp_path):
    models = tmp_path / "models"
    shutil.copytree(root / "klein" / "diffusers", models / "FLUX.2-klein-4B")
    shutil.copy(root / "single" / "prefixed-klein.safetensors", models / "my-klein-finetune.safetensors")
    shutil.copy(root / "single" / "prefixed-klein.safetensors", models / "my-klein-base.safetensors")
    engine = DiffusersEngine(DeviceConfig(), ModelsConfig(model_dirs=[models]), ModelRegistry.scan([models], include_hf_cache=False))
    try:
        entry = engine.registry.get("my-klein-finetune")
        assert [(p.role, p.path) for p in entry.parts] == [("transformer", entry.path), ("pipeline", models / "FLUX.2-klein-4B")]
        np.testing.assert_array_equal(_txt2img(engine, "my-klein-finetune"), reference["klein"])
        assert engine.registry.get("my-klein-base").kind == "flux2-klein-base"
        base = engine.cache.get(engine.registry.get("my-klein-base"), None).base
        assert base.config.is_distilled is False  # the file's kind, not the folder's
    finally:
        engine.close()



@pytest.mark.parametrize("transformer,family", [
    ("flux1/diffusion_models/tiny-flux1-dev.safetensors", "flux1"),
    ("single/prefixed-flux1.safetensors", "flux1"),
    ("aio/flux1-aio.safetensors", "flux1"),
    ("klein/diffusion_models/tiny-flux2-klein-distilled.safetensors", "klein"),
    ("single/prefixed-klein.safetensors", "klein"),
])
def test_single_comfy_and_all_in_one_files_make_the_diffusers_folders_pixels(engine, root, reference, transformer, family):
    pixels = _txt2img(engine, _name(engine, root / transformer))
    assert pixels.shape == (64, 64, 4) and pixels[..., :3].std() > 0
    np.testing.assert_array_equal(pixels, reference[family])


def test_a_vae_of_another_family_is_refused_for_a_job(engine):
    from paintwire.protocol import ErrorCode, ProtocolError

    spec = next(m for m in engine.modes() if m.name == "txt2img")
    p = validate_params(spec.params, {"steps": 2, "prompt": "a lighthouse", "width": 64, "height": 64, "vae": "sd-vae"})
    with pytest.raises(ProtocolError) as info:
        engine.run(EngineJob("flux-files", "txt2img", p, model="tiny-flux1-dev"), JobContext())
    assert info.value.code is ErrorCode.INVALID_PARAM and info.value.field == "job.params.vae"
    assert str(info.value.message) == ("VAE 'sd-vae' has 4 latent channels; Flux.1 models use 16: choose a VAE made for Flux.1, "
                                       "or none.")


def test_a_gguf_transformer_runs_quantised_close_to_the_full_weights(engine, root, reference):
    name = _name(engine, next((root / "klein-gguf").glob("*.gguf")))
    pixels = _txt2img(engine, name)
    diff = np.abs(pixels.astype(int) - reference["klein"].astype(int))
    assert pixels[..., :3].std() > 0 and diff.max() <= 16 and diff.mean() < 2
    loaded = engine.cache.get(engine.registry.get(name), None).base
    assert type(loaded.transformer.x_embedder).__name__ == "GGUFLinear"  # kept quantised, dequantised layer by layer


def test_an_fp8_file_is_upcast_on_load(engine, root):
    path = root / "fp8" / "klein-fp8.safetensors"
    assert "F8_E4M3" in {v["dtype"] for v in read_header_entries(path).values()}
    pixels = _txt2img(engine, _name(engine, path))
    assert pixels[..., :3].std() > 0
    loaded = engine.cache.get(engine.registry.get("klein-fp8"), None).base
    weight = loaded.transformer.x_embedder.weight
    stored = _state(path)["img_in.weight"]
    assert weight.dtype == engine.choice.dtype
    torch.testing.assert_close(weight, stored.to(weight.dtype), rtol=0, atol=0)


def test_a_scaled_fp8_file_is_listed_as_not_loadable(root, tmp_path):
    state = _state(root / "flux1" / "text_encoders" / tf.COMFY_T5)
    scaled = {k: v.to(torch.float8_e4m3fn) if v.ndim == 2 else v for k, v in state.items()}
    scaled.update({"scaled_fp8": torch.zeros(0, dtype=torch.float8_e4m3fn),
                   "encoder.block.0.layer.0.SelfAttention.q.scale_weight": torch.ones(1)})
    _save(tmp_path / "t5xxl_fp8_e4m3fn_scaled.safetensors", scaled)
    assert _problems(tmp_path) == {"t5xxl_fp8_e4m3fn_scaled": (
        't5xxl_fp8_e4m3fn_scaled.safetensors is a "scaled" fp8 file (its weights come with scale factors such as '
        "encoder.block.0.layer.0.SelfAttention.q.scale_weight), which this server does not load: "
        "use a plain fp8, fp16 or bf16 file.")}


# --- real sizes: the configs written from full-size shapes are the published ones -----------------

FLUX1_DEV = dict(patch_size=1, in_channels=64, out_channels=64, num_layers=19, num_single_layers=38, attention_head_dim=128,
                 num_attention_heads=24, joint_attention_dim=4096, pooled_projection_dim=768, guidance_embeds=True,
                 axes_dims_rope=[16, 56, 56])
KLEIN_4B = dict(patch_size=1, in_channels=128, num_layers=5, num_single_layers=20, attention_head_dim=128, num_attention_heads=24,
                joint_attention_dim=7680, timestep_guidance_channels=256, mlp_ratio=3.0, axes_dims_rope=[32, 32, 32, 32],
                guidance_embeds=False)
KLEIN_9B = {**KLEIN_4B, "num_layers": 8, "num_single_layers": 24, "num_attention_heads": 32, "joint_attention_dim": 12288}


def _meta_shapes(model) -> dict:
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


@pytest.mark.parametrize("config,family", [
    (FLUX1_DEV, 1), ({**FLUX1_DEV, "guidance_embeds": False}, 1), ({**FLUX1_DEV, "in_channels": 384}, 1), (KLEIN_4B, 2), (KLEIN_9B, 2),
])
def test_real_size_transformer_configs_are_the_published_ones(config, family):
    from diffusers import Flux2Transformer2DModel, FluxTransformer2DModel

    cls = FluxTransformer2DModel if family == 1 else Flux2Transformer2DModel
    with torch.device("meta"):
        state = cls(**config).state_dict()
    shapes = {k: tuple(v.shape) for k, v in tf.flux_to_bfl(state, family=family).items()}
    written = transformer_config(shapes)
    assert {k: written[k] for k in config} == config


def test_real_size_text_encoder_and_vae_configs_are_the_published_ones():
    from diffusers import AutoencoderKL
    from transformers import Qwen3Config, Qwen3ForCausalLM, T5Config, T5EncoderModel

    from fixtures.tiny_models import _vae_to_ldm
    from paintwire.server.engines.diffusion.families.flux_files import FLUX_VAE, qwen3_config, t5_config, vae_config

    t5 = dict(vocab_size=32128, d_model=4096, d_kv=64, d_ff=10240, num_layers=24, num_heads=64, relative_attention_num_buckets=32,
              feed_forward_proj="gated-gelu")  # google/t5-v1_1-xxl, FLUX.1's text_encoder_2
    qwen = dict(vocab_size=151936, hidden_size=2560, intermediate_size=9728, num_hidden_layers=36, num_attention_heads=32,
                num_key_value_heads=8, head_dim=128)  # Qwen/Qwen3-4B
    vae = dict(block_out_channels=[128, 256, 512, 512], layers_per_block=2, latent_channels=16)  # FLUX.1-dev's vae
    with torch.device("meta"):
        t5_shapes = {k: v for k, v in _meta_shapes(T5EncoderModel(T5Config(**t5))).items() if k != "encoder.embed_tokens.weight"}
        qwen_shapes = {k: v for k, v in _meta_shapes(Qwen3ForCausalLM(Qwen3Config(**qwen))).items() if k != "lm_head.weight"}
        ae = AutoencoderKL(**vae, down_block_types=["DownEncoderBlock2D"] * 4, up_block_types=["UpDecoderBlock2D"] * 4,
                           use_quant_conv=False, use_post_quant_conv=False)
    ae_shapes = {k: tuple(v.shape) for k, v in _vae_to_ldm(ae.state_dict(), levels=4, layers=2).items()}
    assert {k: t5_config(t5_shapes)[k] for k in t5} == t5
    written = qwen3_config(qwen_shapes)
    assert {k: written[k] for k in qwen} == qwen and written["tie_word_embeddings"] is True
    assert written["rope_parameters"]["rope_theta"] == 1000000.0
    assert {k: vae_config(ae_shapes, FLUX_VAE)[k] for k in vae} == vae
    assert vae_config(ae_shapes, FLUX_VAE)["sample_size"] == 1024
