"""The tiny Flux.1 and Flux.2 Klein fixtures: every family and layout loads with the plain
diffusers pipelines, offline, runs, and gives the weights of the diffusers folder."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

import diffusers  # noqa: E402
from PIL import Image  # noqa: E402
from safetensors.torch import load_file  # noqa: E402

from fixtures import tiny_flux  # noqa: E402
from fixtures.tiny_flux import (  # noqa: E402
    COMFY_CLIP_L, COMFY_FLUX2_VAE, COMFY_FLUX_VAE, COMFY_QWEN3, COMFY_T5, flux1_single_file_any_width, flux_from_bfl,
    flux_to_bfl, save_comfy_transformer_only, save_comfy_with_sd_vae, save_flux, save_flux2_klein, save_flux_lora,
    save_unsupported_gguf, write_truncated_safetensors,
)

SIZE = 64
STEPS = dict(num_inference_steps=2, output_type="np")


@pytest.fixture(autouse=True, scope="module")
def _two_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def flux(tmp_path_factory):
    """Folders of the Flux.1 variants: dev in the comfy layout (its diffusers folder beside), the rest diffusers."""
    root = tmp_path_factory.mktemp("flux")
    folders = {"dev": save_flux(root / "dev", "dev", layout="comfy")}
    for variant in ("schnell", "fill", "kontext"):
        folders[variant] = save_flux(root / variant, variant).parent
    return folders


@pytest.fixture(scope="module")
def klein(tmp_path_factory):
    root = tmp_path_factory.mktemp("klein")
    return {"distilled": save_flux2_klein(root / "distilled", "distilled", layout="comfy"),
            "base": save_flux2_klein(root / "base", "base").parent}


def _image(seed: int, width: int = SIZE, height: int = SIZE) -> Image.Image:
    return Image.fromarray((np.random.RandomState(seed).rand(height, width, 3) * 255).astype("uint8"))


def _mask() -> Image.Image:
    mask = Image.new("L", (SIZE, SIZE), 0)
    mask.paste(255, (16, 16, 48, 48))
    return mask


def _gen() -> torch.Generator:
    return torch.Generator().manual_seed(0)


def _check(images: np.ndarray, width: int = SIZE, height: int = SIZE) -> None:
    assert images.shape == (1, height, width, 3)
    assert np.isfinite(images).all()


def _same_weights(a: dict, b: dict) -> None:
    assert set(a) == set(b)
    for key in b:
        assert torch.equal(a[key], b[key]), key


# --- generation with each pipeline -----------------------------------------------------------


@pytest.mark.parametrize("variant", ["dev", "schnell"])
def test_flux_txt2img(flux, variant):
    pipe = diffusers.FluxPipeline.from_pretrained(flux[variant] / "diffusers", local_files_only=True)
    assert pipe.transformer.config.guidance_embeds is (variant == "dev")
    assert pipe.scheduler.config.use_dynamic_shifting is (variant == "dev")
    _check(pipe(prompt="a cat", height=SIZE, width=SIZE * 2, generator=_gen(), **STEPS).images, width=SIZE * 2)


def test_flux_img2img_inpaint_and_true_cfg(flux):
    pipe = diffusers.FluxPipeline.from_pretrained(flux["dev"] / "diffusers", local_files_only=True)
    _check(pipe(prompt="a cat", negative_prompt="a dog", true_cfg_scale=4.0, height=SIZE, width=SIZE,
                generator=_gen(), **STEPS).images)
    # Without height and width, img2img and inpaint work at 1024 x 1024, not at the image's size.
    sized = dict(height=SIZE, width=SIZE, generator=_gen(), **STEPS)
    img2img = diffusers.FluxImg2ImgPipeline.from_pipe(pipe)
    _check(img2img(prompt="a cat", image=_image(1), strength=0.6, **sized).images)
    inpaint = diffusers.FluxInpaintPipeline.from_pipe(pipe)
    _check(inpaint(prompt="a cat", image=_image(1), mask_image=_mask(), strength=0.9, **sized).images)


def test_flux_fill(flux):
    pipe = diffusers.FluxFillPipeline.from_pretrained(flux["fill"] / "diffusers", local_files_only=True)
    assert pipe.transformer.config.in_channels == 384  # as the real FLUX.1-Fill: the detector's mark
    _check(pipe(prompt="a cat", image=_image(1), mask_image=_mask(), height=SIZE, width=SIZE, guidance_scale=30.0,
                generator=_gen(), **STEPS).images)


def test_flux_kontext_keeps_the_size_asked_for_only_with_max_area(flux):
    pipe = diffusers.FluxKontextPipeline.from_pretrained(flux["kontext"] / "diffusers", local_files_only=True)
    # Kontext scales the output to max_area (1 MP by default) at the asked aspect ratio, and
    # resizes the reference to a preferred ~1 MP size unless _auto_resize is off.
    out = pipe(prompt="make it red", image=_image(1, 96, 64), height=SIZE, width=SIZE * 2, max_area=SIZE * SIZE * 2,
               _auto_resize=False, guidance_scale=2.5, generator=_gen(), **STEPS)
    _check(out.images, width=SIZE * 2)


@pytest.mark.parametrize("variant", ["distilled", "base"])
def test_klein_txt2img_and_reference_edit(klein, variant):
    pipe = diffusers.Flux2KleinPipeline.from_pretrained(klein[variant] / "diffusers", local_files_only=True)
    assert pipe.config.is_distilled is (variant == "distilled")
    short = dict(max_sequence_length=64)  # the default 512 tokens work too; fewer keep the test quick
    _check(pipe(prompt="a cat", height=SIZE, width=SIZE, generator=_gen(), **short, **STEPS).images)
    refs = [_image(1), _image(2, 96, 64)]
    _check(pipe(prompt="the cat in the hat", image=refs, height=SIZE, width=SIZE, generator=_gen(), **short, **STEPS).images)


def test_klein_inpaint_with_reference(klein):
    pipe = diffusers.Flux2KleinInpaintPipeline.from_pretrained(klein["distilled"] / "diffusers", local_files_only=True)
    _check(pipe(prompt="a cat", image=_image(1), mask_image=_mask(), image_reference=[_image(2)], strength=0.8,
                height=SIZE, width=SIZE, max_sequence_length=64, generator=_gen(), **STEPS).images)


def test_latent_output_decodes_to_the_image_and_previews_see_packed_latents(flux, klein):
    pipe = diffusers.FluxPipeline.from_pretrained(flux["dev"] / "diffusers", local_files_only=True)
    seen = []

    def step(_pipe, i, t, kwargs):
        seen.append(tuple(kwargs["latents"].shape))
        return {}

    args = dict(prompt="a cat", height=SIZE, width=SIZE * 2, num_inference_steps=2)
    image = pipe(**args, generator=_gen(), output_type="pt", callback_on_step_end=step).images
    packed = pipe(**args, generator=_gen(), output_type="latent").images
    # Flux.1 returns its latents packed: 2 x 2 patches of 16 channels as tokens.
    assert packed.shape == (1, (SIZE // 16) * (SIZE * 2 // 16), 64) and seen == [packed.shape] * 2
    latents = pipe._unpack_latents(packed, SIZE, SIZE * 2, pipe.vae_scale_factor)
    latents = latents / pipe.vae.config.scaling_factor + pipe.vae.config.shift_factor
    decoded = pipe.image_processor.postprocess(pipe.vae.decode(latents).sample, output_type="pt")
    torch.testing.assert_close(decoded, image)

    kpipe = diffusers.Flux2KleinPipeline.from_pretrained(klein["distilled"] / "diffusers", local_files_only=True)
    seen.clear()
    kargs = dict(args, max_sequence_length=64)
    image = kpipe(**kargs, generator=_gen(), output_type="pt", callback_on_step_end=step).images
    latents = kpipe(**kargs, generator=_gen(), output_type="latent").images
    # Klein returns them unpacked and out of the batch-norm space, ready for the VAE; the
    # callback sees them packed and normalised: (B, tokens, 4 x 32).
    assert latents.shape == (1, 32, SIZE // 8, SIZE * 2 // 8)
    assert seen == [(1, (SIZE // 16) * (SIZE * 2 // 16), 128)] * 2
    decoded = kpipe.image_processor.postprocess(kpipe.vae.decode(latents).sample, output_type="pt")
    torch.testing.assert_close(decoded, image)


# --- single files, ComfyUI folders, GGUF ------------------------------------------------------


def _transformer_state(folder, family: int) -> dict:
    cls = diffusers.FluxTransformer2DModel if family == 1 else diffusers.Flux2Transformer2DModel
    return cls.from_pretrained(folder / "diffusers", subfolder="transformer", local_files_only=True).state_dict()


@pytest.mark.parametrize("variant", ["schnell", "fill"])
def test_flux_single_file_gives_the_folder_weights(tmp_path, variant):
    path = save_flux(tmp_path, variant, layout="single")
    config = dict(config=str(tmp_path / "diffusers"), subfolder="transformer", local_files_only=True)
    # diffusers' own converter splits the single blocks at the real width (3072) only.
    with pytest.raises(RuntimeError, match="split"):
        diffusers.FluxTransformer2DModel.from_single_file(str(path), **config)
    with flux1_single_file_any_width():
        model = diffusers.FluxTransformer2DModel.from_single_file(str(path), **config)
    _same_weights(model.state_dict(), _transformer_state(tmp_path, 1))
    header = load_file(path)
    assert ("guidance_in.in_layer.weight" in header) is (variant != "schnell")
    assert header["img_in.weight"].shape[1] == (384 if variant == "fill" else 64)


def test_bfl_naming_is_what_diffusers_reads_at_the_real_width():
    """flux_to_bfl is the inverse of diffusers' Flux.1 converter: checked on a state dict
    with the real widths along the split axis (3072, MLP 12288) and one column."""
    from diffusers.loaders.single_file_utils import convert_flux_transformer_checkpoint_to_diffusers

    tiny = diffusers.FluxTransformer2DModel(num_layers=1, num_single_layers=2, attention_head_dim=16, num_attention_heads=2,
                                            joint_attention_dim=32, pooled_projection_dim=32, guidance_embeds=True,
                                            axes_dims_rope=(4, 6, 6)).state_dict()
    gen = torch.Generator().manual_seed(0)
    real = {32: 3072, 128: 12288}  # the tiny inner and MLP widths -> the real ones
    state = {}
    for key, value in tiny.items():
        n = real.get(value.shape[0], value.shape[0])
        state[key] = torch.randn((n, 1) if value.ndim == 2 else (n,), generator=gen)
    back = convert_flux_transformer_checkpoint_to_diffusers(flux_to_bfl(state, family=1))
    _same_weights(back, state)
    _same_weights(flux_from_bfl(flux_to_bfl(state, family=1), family=1), state)


def test_klein_single_file_loads_with_plain_diffusers(tmp_path):
    path = save_flux2_klein(tmp_path, "base", layout="single")
    model = diffusers.Flux2Transformer2DModel.from_single_file(
        str(path), config=str(tmp_path / "diffusers"), subfolder="transformer", local_files_only=True)
    _same_weights(model.state_dict(), _transformer_state(tmp_path, 2))
    assert "single_stream_modulation.lin.weight" in load_file(path)  # diffusers' mark of Flux.2


def test_comfy_flux_parts_rebuild_the_pipeline(flux):
    from transformers import CLIPTextModel, T5EncoderModel

    root = flux["dev"]
    reference = diffusers.FluxPipeline.from_pretrained(root / "diffusers", local_files_only=True)
    assert sorted(p.relative_to(root).as_posix() for p in root.glob("[!d]*/*.safetensors")) == [
        f"text_encoders/{COMFY_CLIP_L}", f"text_encoders/{COMFY_T5}", f"vae/{COMFY_FLUX_VAE}"]
    with flux1_single_file_any_width():
        transformer = diffusers.FluxTransformer2DModel.from_single_file(
            str(root / "diffusion_models" / "tiny-flux1-dev.safetensors"), config=str(root / "diffusers"),
            subfolder="transformer", local_files_only=True)
    vae = diffusers.AutoencoderKL.from_single_file(str(root / "vae" / COMFY_FLUX_VAE), config=str(root / "diffusers"),
                                                   subfolder="vae", local_files_only=True)
    clip = CLIPTextModel(reference.text_encoder.config)
    clip.load_state_dict({k.removeprefix("text_model."): v for k, v in load_file(root / "text_encoders" / COMFY_CLIP_L).items()})
    t5 = T5EncoderModel(reference.text_encoder_2.config)
    t5.load_state_dict(load_file(root / "text_encoders" / COMFY_T5), strict=False)  # the tied embedding is stored once
    for part, model in (("transformer", transformer), ("vae", vae), ("text_encoder", clip), ("text_encoder_2", t5)):
        _same_weights(model.state_dict(), getattr(reference, part).state_dict())
    pipe = diffusers.FluxPipeline(scheduler=tiny_flux.flux_scheduler("dev"), vae=vae, text_encoder=clip,
                                  tokenizer=reference.tokenizer, text_encoder_2=t5, tokenizer_2=reference.tokenizer_2,
                                  transformer=transformer)
    _check(pipe(prompt="a cat", height=SIZE, width=SIZE, generator=_gen(), **STEPS).images)


def test_comfy_klein_parts_match_the_folder(klein):
    from diffusers.loaders.single_file_utils import convert_ldm_vae_checkpoint

    root = klein["distilled"]
    reference = diffusers.Flux2KleinPipeline.from_pretrained(root / "diffusers", local_files_only=True)
    transformer = diffusers.Flux2Transformer2DModel.from_single_file(
        str(root / "diffusion_models" / "tiny-flux2-klein-distilled.safetensors"), config=str(root / "diffusers"),
        subfolder="transformer", local_files_only=True)
    _same_weights(transformer.state_dict(), reference.transformer.state_dict())
    text = load_file(root / "text_encoders" / COMFY_QWEN3)
    assert text.keys() == reference.text_encoder.state_dict().keys() - {"lm_head.weight"}
    # diffusers has no single-file reader for the Flux.2 VAE; its LDM part converts as SD's does.
    original = load_file(root / "vae" / COMFY_FLUX2_VAE)
    vae = convert_ldm_vae_checkpoint({k: v for k, v in original.items() if not k.startswith("bn.")}, dict(reference.vae.config))
    vae.update({k: v for k, v in original.items() if k.startswith("bn.")})
    expected = {k: v for k, v in reference.vae.state_dict().items() if k != "bn.num_batches_tracked"}
    _same_weights(vae, expected)


def test_gguf_q8_transformers_load_on_the_cpu_and_run(tmp_path):
    from diffusers.quantizers.gguf.utils import dequantize_gguf_tensor

    quant = diffusers.GGUFQuantizationConfig(compute_dtype=torch.float32)
    path = save_flux(tmp_path / "f", "dev", layout="gguf")
    config = dict(config=str(tmp_path / "f" / "diffusers"), subfolder="transformer", local_files_only=True)
    with flux1_single_file_any_width():
        model = diffusers.FluxTransformer2DModel.from_single_file(str(path), quantization_config=quant, **config)
    weight = model.transformer_blocks[0].attn.to_q.weight
    assert weight.quant_type == 8  # Q8_0
    reference = _transformer_state(tmp_path / "f", 1)
    torch.testing.assert_close(dequantize_gguf_tensor(weight).float(), reference["transformer_blocks.0.attn.to_q.weight"],
                               atol=2e-3, rtol=0)
    pipe = diffusers.FluxPipeline.from_pretrained(tmp_path / "f" / "diffusers", transformer=model, local_files_only=True)
    _check(pipe(prompt="a cat", height=SIZE, width=SIZE, generator=_gen(), **STEPS).images)

    path = save_flux2_klein(tmp_path / "k", "distilled", layout="gguf")
    model = diffusers.Flux2Transformer2DModel.from_single_file(
        str(path), quantization_config=quant, config=str(tmp_path / "k" / "diffusers"), subfolder="transformer",
        local_files_only=True)
    assert model.single_transformer_blocks[0].attn.to_qkv_mlp_proj.weight.quant_type == 8


def test_unsupported_gguf_quant_is_refused(tmp_path):
    path = save_unsupported_gguf(tmp_path / "ternary.gguf", family=2)
    save_flux2_klein(tmp_path, "distilled")
    with pytest.raises(Exception) as caught:
        diffusers.Flux2Transformer2DModel.from_single_file(
            str(path), quantization_config=diffusers.GGUFQuantizationConfig(compute_dtype=torch.float32),
            config=str(tmp_path / "diffusers"), subfolder="transformer", local_files_only=True)
    # diffusers hides its ValueError ("... has a quantization type: 34 which is unsupported")
    # behind an OSError, two exceptions down the chain: a loader that wants a clear message
    # reads the tensor types first (gguf.GGUFReader).
    messages, error = [], caught.value
    while error is not None:
        messages.append(str(error))
        error = error.__cause__ or error.__context__
    import gguf

    code = int(gguf.GGMLQuantizationType.TQ1_0)
    assert isinstance(caught.value, OSError)
    assert any(f"quantization type: {code} which is unsupported" in m for m in messages), messages


# --- LoRA formats ------------------------------------------------------------------------------


def _lora_outputs(pipe, folder, tmp_path, cases):
    args = dict(prompt="a cat", height=SIZE, width=SIZE, **STEPS)
    outputs = {"none": pipe(**args, generator=_gen()).images}
    for name, kwargs in cases.items():
        path = save_flux_lora(tmp_path / f"{name}.safetensors", folder / "transformer", **kwargs)
        pipe.load_lora_weights(str(path), adapter_name=name)
        outputs[name] = pipe(**args, generator=_gen()).images
        outputs[name, "adapters"] = pipe.get_list_adapters()
        pipe.unload_lora_weights()
    return outputs


def test_flux1_lora_formats(flux, tmp_path):
    folder = flux["dev"] / "diffusers"
    pipe = diffusers.FluxPipeline.from_pretrained(folder, local_files_only=True)
    out = _lora_outputs(pipe, folder, tmp_path, {
        "diffusers": dict(format="diffusers", single_blocks=False), "kohya": dict(format="kohya", single_blocks=False),
        "bfl": dict(format="bfl"),
    })
    assert np.abs(out["diffusers"] - out["none"]).max() > 1e-3
    np.testing.assert_allclose(out["kohya"], out["diffusers"], atol=1e-5)
    # A BFL-named LoRA with lora_A/lora_B keys matches no converter for Flux.1: it loads nothing, silently.
    assert out["bfl", "adapters"] == {} and np.array_equal(out["bfl"], out["none"])
    # The kohya converter splits single-block linear1 at the real widths only.
    path = save_flux_lora(tmp_path / "kohya-single.safetensors", folder / "transformer", format="kohya")
    with pytest.raises(AssertionError):
        pipe.load_lora_weights(str(path))


def test_klein_lora_formats_all_load_the_same_update(klein, tmp_path):
    folder = klein["distilled"] / "diffusers"
    pipe = diffusers.Flux2KleinPipeline.from_pretrained(folder, local_files_only=True)
    out = _lora_outputs(pipe, folder, tmp_path, {f: dict(format=f) for f in tiny_flux.LORA_FORMATS})
    assert np.abs(out["diffusers"] - out["none"]).max() > 1e-3
    for name in ("kohya", "bfl"):
        assert out[name, "adapters"] == {"transformer": [name]}
        np.testing.assert_allclose(out[name], out["diffusers"], atol=1e-5)


# --- tokenizers and bad inputs -----------------------------------------------------------------


def test_tokenizers_are_built_offline_with_the_real_special_tokens():
    t5 = tiny_flux.t5_tokenizer()
    assert (t5.pad_token_id, t5.eos_token_id, t5.unk_token_id) == (0, 1, 2)
    assert len(t5) == t5.vocab_size + 100 and "<extra_id_99>" in t5.get_vocab()  # T5's sentinels at the end
    assert t5("a cat").input_ids[-1] == t5.eos_token_id
    qwen = tiny_flux.qwen3_tokenizer()
    text = "a cat, ünïcode ✓"
    assert qwen.decode(qwen(text).input_ids) == text
    chat = qwen.apply_chat_template([{"role": "user", "content": "a cat"}], tokenize=False, add_generation_prompt=True,
                                    enable_thinking=False)
    assert chat == "<|im_start|>user\na cat<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"
    assert qwen.convert_tokens_to_ids("<|im_end|>") != qwen.unk_token_id


def test_bad_inputs(tmp_path):
    from safetensors import SafetensorError

    single = save_flux(tmp_path / "s", "dev", layout="single")
    truncated = write_truncated_safetensors(tmp_path / "cut.safetensors", single)
    with pytest.raises(SafetensorError):
        load_file(truncated)

    alone = save_comfy_transformer_only(tmp_path / "alone")
    assert [p.relative_to(tmp_path / "alone").as_posix() for p in (tmp_path / "alone").rglob("*") if p.is_file()] == [
        "diffusion_models/tiny-flux1-dev.safetensors"]
    assert alone.exists()

    root = save_comfy_with_sd_vae(tmp_path / "wrong")
    vae = root / "vae" / "sd-vae.safetensors"
    assert [p.name for p in (root / "vae").iterdir()] == [vae.name]
    assert load_file(vae)["decoder.conv_in.weight"].shape[1] == 4  # 4 latent channels where Flux has 16
    with pytest.raises(Exception):
        diffusers.AutoencoderKL.from_single_file(str(vae), config=str(root / "diffusers"), subfolder="vae",
                                                 local_files_only=True)


def test_tiny_models_stay_small(flux, klein):
    for folder in [*flux.values(), *klein.values()]:
        total = sum(p.stat().st_size for p in (folder / "diffusers").rglob("*.safetensors"))
        assert total < 4_000_000, (folder, total)
