"""The memory plan per family and card, at real size, without a GPU.

The sizes come from header-only sparse folders of Flux.1-dev and Flux.2 Klein 4B
and 9B (fixtures/real_sizes.py: every tensor of the published models, no data on
disk), read as the engine reads them (weight_sizes.py); the plan is the pure
function the engine places models with (memory_plan.py). The cards are what a
desktop leaves free: 7.2 GiB of an 8 GB card, 11 of 12, 15 of 16, 23 of 24.
The placement itself (fp8 storage, block streaming, encoders freed or streamed)
runs on the CPU on the tiny Flux and Klein pipelines, with the CPU standing in
for the card.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fixtures.real_sizes import FLUX1_INDEX, KLEIN_INDEX, flux1_dev_components, klein_components, write_header_only_folder  # noqa: E402
from paintwire.protocol import ErrorCode, ProtocolError, validate_params  # noqa: E402
from paintwire.server.config import DeviceConfig, ModelsConfig  # noqa: E402
from paintwire.server.engines.base import EngineJob, JobContext  # noqa: E402
from paintwire.server.engines.diffusion import memory  # noqa: E402
from paintwire.server.engines.diffusion.families import FLUX, FLUX2, family_named  # noqa: E402
from paintwire.server.engines.diffusion.memory_plan import (  # noqa: E402
    FP8, FREED, GGUF, INT8, NF4, RESIDENT, STREAMED, Card, Placement, Weights, plan,
)
from paintwire.server.engines.diffusion.weight_sizes import folder_weights  # noqa: E402

GiB = 2**30
CARDS = {8: 7.2, 12: 11.0, 16: 15.0, 24: 23.0}  # GB on the box -> GiB free after the desktop
BNB = frozenset({"bitsandbytes"})


@pytest.fixture(scope="module")
def real(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("real-flux")
    return {
        "flux1-dev": write_header_only_folder(root / "flux1-dev", FLUX1_INDEX, flux1_dev_components()),
        "klein-4b": write_header_only_folder(root / "klein-4b", KLEIN_INDEX, klein_components("4b")),
        "klein-9b": write_header_only_folder(root / "klein-9b", KLEIN_INDEX, klein_components("9b")),
    }


@pytest.fixture(scope="module")
def weights(real) -> dict[str, Weights]:
    return {name: folder_weights(path, 2) for name, path in real.items()}  # bf16


def test_the_sizes_read_from_the_headers_are_the_published_models(weights):
    params = {name: {c: s / 2 / 1e9 for c, s in w.sizes.items()} for name, w in weights.items()}
    # Flux.1-dev: a 12B transformer, T5-XXL's 4.7B encoder, CLIP-L, the 84M VAE.
    assert params["flux1-dev"]["transformer"] == pytest.approx(11.90, abs=0.01)
    assert params["flux1-dev"]["text_encoder_2"] == pytest.approx(4.76, abs=0.01)
    assert params["flux1-dev"]["text_encoder"] == pytest.approx(0.123, abs=0.001)
    assert params["flux1-dev"]["vae"] == pytest.approx(0.084, abs=0.001)
    # Klein 4B and 9B with Qwen3 4B (tied embeddings: 4.02B) and 8B (8.19B).
    assert params["klein-4b"]["transformer"] == pytest.approx(3.88, abs=0.01)
    assert params["klein-4b"]["text_encoder"] == pytest.approx(4.02, abs=0.01)
    assert params["klein-9b"]["transformer"] == pytest.approx(9.08, abs=0.01)
    assert params["klein-9b"]["text_encoder"] == pytest.approx(8.19, abs=0.01)
    # The largest repeated block, what streaming holds at a time: a Flux.1 double block, a T5 block.
    assert weights["flux1-dev"].blocks["transformer"] / 2 / 1e6 == pytest.approx(339.8, abs=0.1)
    assert weights["flux1-dev"].blocks["text_encoder_2"] / 2 / 1e6 == pytest.approx(192.9, abs=0.1)
    assert weights["flux1-dev"].labels == {"text_encoder": "CLIP text encoder", "text_encoder_2": "T5 text encoder"}


def test_the_registry_reads_their_kinds(real):
    from paintwire.server.engines.diffusion.models import ModelRegistry

    registry = ModelRegistry.scan([real["flux1-dev"].parent], include_hf_cache=False)
    assert {e.name: e.kind for e in registry.entries.values()} == {"flux1-dev": "flux", "klein-4b": "flux2-klein", "klein-9b": "flux2-klein"}


def _plan(weights, name, card_gb, quantizers=frozenset(), family=FLUX, pixels=1024 * 1024):
    card = Card("cuda", int(CARDS[card_gb] * GiB), f"{card_gb} GB card", quantizers)
    return plan(weights[name], card, family.activation_bytes(1, pixels), "auto", family.per_component_memory)


def _summary(p: Placement) -> tuple:
    """(offload, the transformer's form, {encoder: mode or form})"""
    encoders = {c: p.form(c) or m for c, m in p.encoders}
    return p.offload, p.form("transformer"), encoders


# What a person would choose, best quality first (module docstring of memory_plan.py).
FLUX1_DEV = {
    # 24 GB: bf16 does not fit beside a step; fp8 does, CLIP stays, T5 visits the card to read a prompt.
    (24, False): ("none", FP8, {"text_encoder": RESIDENT, "text_encoder_2": FREED}),
    (24, True): ("none", FP8, {"text_encoder": RESIDENT, "text_encoder_2": FREED}),
    # 16 GB: fp8 on the card; T5 (8.9 GiB) no longer fits beside it, even in int8: streamed by blocks.
    (16, False): ("none", FP8, {"text_encoder": RESIDENT, "text_encoder_2": STREAMED}),
    (16, True): ("none", FP8, {"text_encoder": RESIDENT, "text_encoder_2": STREAMED}),
    # 12 GB: NF4 (6.7 GB) where bitsandbytes is installed; else fp8 streamed by blocks, leaving room for T5 whole.
    (12, True): ("none", NF4, {"text_encoder": RESIDENT, "text_encoder_2": STREAMED}),
    (12, False): ("group", FP8, {"text_encoder": RESIDENT, "text_encoder_2": FREED}),
    # 8 GB: even NF4 leaves no room for a 1024 px step: fp8 blocks streamed, T5 streamed.
    (8, True): ("group", FP8, {"text_encoder": RESIDENT, "text_encoder_2": STREAMED}),
    (8, False): ("group", FP8, {"text_encoder": RESIDENT, "text_encoder_2": STREAMED}),
}
KLEIN_4B = {
    (24, False): ("none", "", {"text_encoder": RESIDENT}),
    (16, True): ("none", "", {"text_encoder": INT8}),  # bf16 transformer, Qwen3 4B in int8 beside it
    (16, False): ("none", "", {"text_encoder": STREAMED}),
    (12, False): ("none", "", {"text_encoder": STREAMED}),
    (8, False): ("none", FP8, {"text_encoder": STREAMED}),
    (8, True): ("none", FP8, {"text_encoder": STREAMED}),
}
KLEIN_9B = {
    (24, False): ("none", "", {"text_encoder": STREAMED}),  # bf16 transformer (17 GiB); Qwen3 8B streamed
    (16, False): ("none", FP8, {"text_encoder": STREAMED}),
    (12, True): ("none", NF4, {"text_encoder": STREAMED}),
    (12, False): ("group", FP8, {"text_encoder": STREAMED}),
    (8, True): ("group", FP8, {"text_encoder": STREAMED}),
}


@pytest.mark.parametrize("name,family,table", [("flux1-dev", FLUX, FLUX1_DEV), ("klein-4b", FLUX2, KLEIN_4B), ("klein-9b", FLUX2, KLEIN_9B)])
def test_the_plan_per_card_is_what_a_person_would_choose(weights, name, family, table):
    for (card_gb, bnb), want in table.items():
        p = _plan(weights, name, card_gb, BNB if bnb else frozenset(), family)
        assert _summary(p) == want, (name, card_gb, bnb, p.describe())
        assert p.fits and p.peak <= p.usable, (name, card_gb, p.describe())


def test_the_plan_in_words(weights):
    assert _plan(weights, "klein-4b", 24, family=FLUX2).describe() == "all on the device (peak about 17.9 of 23.0 GiB)"
    assert _plan(weights, "flux1-dev", 12, BNB).describe() == (
        "transformer in NF4; T5 text encoder streamed while encoding (peak about 10.0 of 11.0 GiB)")
    assert _plan(weights, "flux1-dev", 8).describe() == (
        "transformer in fp8 streamed block by block; T5 text encoder streamed while encoding (peak about 4.0 of 7.2 GiB)")
    assert _plan(weights, "flux1-dev", 24).describe().startswith("transformer in fp8; T5 text encoder freed after encoding")
    assert _plan(weights, "klein-4b", 12, family=FLUX2).describe().startswith("transformer on the device; Qwen3 text encoder streamed")
    assert "bitsandbytes is not installed" in _plan(weights, "flux1-dev", 12).notes[0]
    assert not _plan(weights, "flux1-dev", 12, BNB).notes


def test_a_gguf_transformer_takes_its_file_and_no_other_form(weights):
    q4 = Weights({**weights["flux1-dev"].sizes, "transformer": int(6.8e9)}, 2, weights["flux1-dev"].blocks, frozenset({"transformer"}))
    card = Card("cuda", int(11 * GiB), quantizers=BNB)
    p = plan(q4, card, FLUX.activation_reserve)
    assert (p.offload, p.form("transformer")) == ("none", GGUF)
    assert p.describe().startswith("transformer from its GGUF file")
    small = plan(q4, Card("cuda", int(7.2 * GiB)), FLUX.activation_reserve)
    assert (small.offload, small.form("transformer")) == ("group", GGUF)  # streamed as stored


def test_a_larger_image_or_batch_needs_more_and_at_last_does_not_fit(weights):
    one = _plan(weights, "klein-4b", 8, family=FLUX2)
    larger = _plan(weights, "klein-4b", 8, family=FLUX2, pixels=1280 * 1280)
    assert (one.offload, one.form("transformer")) == ("none", FP8)
    assert (larger.offload, larger.form("transformer"), larger.fits) == ("group", FP8, True)  # the step's activations need the room
    huge = _plan(weights, "flux1-dev", 8, pixels=8 * 2048 * 2048)
    assert not huge.fits and huge.offload == "sequential"
    tiny_card = plan(weights["flux1-dev"], Card("cuda", 2 * GiB), FLUX.activation_reserve)
    assert not tiny_card.fits


def test_on_the_cpu_nothing_is_offloaded_and_the_plan_says_why(weights):
    p = plan(weights["flux1-dev"], Card("cpu", 30 * GiB), FLUX.activation_reserve)
    assert (p.offload, p.forms, p.fits) == ("none", (), True)
    assert p.describe().startswith("all in the computer's memory")
    assert any("CUDA cards only" in n for n in p.notes) and any("expect swapping" in n for n in p.notes)
    mps = plan(weights["klein-4b"], Card("mps", 30 * GiB, quantizers=BNB), FLUX2.activation_reserve)
    assert mps.offload == "none" and not mps.forms


def test_explicit_settings_and_stable_diffusion_keep_whole_components(weights):
    p = plan(weights["flux1-dev"], Card("cuda", 23 * GiB), FLUX.activation_reserve, "model")
    assert (p.offload, p.forms) == ("model", ())
    sdxl = Weights({"unet": int(4.8 * GiB), "text_encoder": int(0.23 * GiB), "text_encoder_2": int(1.3 * GiB), "vae": int(0.16 * GiB)})
    unknown = plan(weights["flux1-dev"], Card("cuda", 0), FLUX.activation_reserve)  # free memory not known: nothing to plan against
    assert (unknown.offload, unknown.forms, unknown.fits, unknown.notes) == ("none", (), True, ("the device's free memory is not known",))
    sd = family_named("sdxl")
    assert plan(sdxl, Card("cuda", int(7.5 * GiB), quantizers=BNB), sd.activation_reserve, "auto", sd.per_component_memory).offload == "model"
    assert not sd.per_component_memory and FLUX.per_component_memory and FLUX2.per_component_memory


def test_a_gguf_file_in_a_folder_is_read_as_stored(tmp_path):
    from fixtures.tiny_flux import flux_to_bfl, save_flux, write_gguf

    folder = save_flux(tmp_path / "flux", "dev")
    from diffusers import FluxTransformer2DModel

    state = FluxTransformer2DModel.from_pretrained(folder / "transformer").state_dict()
    for f in (folder / "transformer").glob("*.safetensors"):
        f.unlink()
    path = write_gguf(folder / "transformer" / "flux1-dev-Q8_0.gguf", flux_to_bfl(state))
    w = folder_weights(folder, 2)
    assert w.fixed == frozenset({"transformer"}) and w.sizes["transformer"] == path.stat().st_size
    assert 0 < w.blocks["transformer"] < w.sizes["transformer"]


# --- carrying a plan out, on the CPU ---------------------------------------------------------------

def _kwargs(klein: bool) -> dict:
    return dict(prompt="a red fox", height=64, width=64, num_inference_steps=2, output_type="np", max_sequence_length=64,
                guidance_scale=1.0 if klein else 3.5)


def _hooked(module) -> bool:
    from diffusers.hooks import HookRegistry

    return any(getattr(m, "_diffusers_hook", None) is not None and isinstance(m._diffusers_hook, HookRegistry)
               and m._diffusers_hook.hooks for m in module.modules())


@pytest.mark.parametrize("klein", [False, True])
@pytest.mark.parametrize("placement", [
    Placement("none", (("transformer", FP8),), (("text_encoder", FREED), ("text_encoder_2", STREAMED)), denoiser="transformer"),
    Placement("group", (("transformer", FP8),), (("text_encoder", STREAMED), ("text_encoder_2", FREED)), denoiser="transformer"),
    Placement("group", (), (("text_encoder", RESIDENT), ("text_encoder_2", RESIDENT)), denoiser="transformer"),
], ids=["fp8-encoders-freed-and-streamed", "fp8-streamed-by-blocks", "bf16-streamed-by-blocks"])
def test_each_placement_runs_and_gives_the_same_picture(klein, placement):
    from fixtures.tiny_flux import build_flux, build_flux2_klein

    def build():
        pipe = build_flux2_klein("distilled") if klein else build_flux("dev")
        for module in pipe.components.values():  # built in memory, in training mode: T5's dropout would draw
            if isinstance(module, torch.nn.Module):
                module.eval()
        return pipe

    plain = build()
    plain.set_progress_bar_config(disable=True)
    want = plain(generator=torch.Generator().manual_seed(5), **_kwargs(klein)).images
    pipe = build()
    pipe.set_progress_bar_config(disable=True)
    memory.place(pipe, memory.MemoryPlan(placement.offload, False, placement=placement), torch.device("cpu"))
    got = pipe(generator=torch.Generator().manual_seed(5), **_kwargs(klein)).images
    again = pipe(generator=torch.Generator().manual_seed(5), **_kwargs(klein)).images  # hooks survive a run
    assert np.array_equal(got, again)
    fp8 = placement.form("transformer") == FP8
    assert np.abs(got - want).max() < (0.1 if fp8 else 0.02)  # fp8 storage rounds the weights; streaming alone changes little
    dtypes = {p.dtype for p in pipe.transformer.parameters()}
    assert (torch.float8_e4m3fn in dtypes) is fp8
    assert _hooked(pipe.transformer) is (fp8 or placement.offload == "group")
    for name, mode in placement.encoders:
        if getattr(pipe, name, None) is not None:
            assert _hooked(getattr(pipe, name)) is (mode != RESIDENT), name


def test_streaming_enters_the_encoders_down_to_their_blocks():
    from transformers import Qwen3Config, Qwen3ForCausalLM, T5Config, T5EncoderModel

    t5 = T5EncoderModel(T5Config(d_model=32, d_ff=64, num_layers=2, num_heads=2, d_kv=16, vocab_size=64))
    qwen = Qwen3ForCausalLM(Qwen3Config(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                                        num_key_value_heads=1, head_dim=16, vocab_size=64))
    assert memory.block_holders(t5) == ["encoder"]
    assert memory.block_holders(qwen) == ["model"]


def test_the_quantization_config_names_each_library():
    pytest.importorskip("bitsandbytes")
    p = Placement("none", (("transformer", NF4), ("text_encoder_2", INT8)), denoiser="transformer")
    config = memory.quantization_config(p, torch.bfloat16)
    import diffusers
    import transformers

    assert isinstance(config.quant_mapping["transformer"], diffusers.BitsAndBytesConfig)
    assert config.quant_mapping["transformer"].bnb_4bit_quant_type == "nf4"
    assert isinstance(config.quant_mapping["text_encoder_2"], transformers.BitsAndBytesConfig)
    assert config.quant_mapping["text_encoder_2"].load_in_8bit
    assert memory.quantization_config(Placement("none", (("transformer", FP8),)), torch.bfloat16) is None


# --- the engine on a card that is not here ------------------------------------------------------------

def _pretend_gpu(monkeypatch, total: int, free: int) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda d=None: "NVIDIA GeForce RTX 3060")
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda d=None: (8, 6))
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda d=None: (free, total))
    monkeypatch.setattr(torch.version, "hip", None)


def test_the_engine_shows_each_models_plan_and_refuses_a_job_that_cannot_fit(real, monkeypatch):
    from paintwire.server.engines.diffusion import DiffusersEngine
    from paintwire.server.logs import ready

    _pretend_gpu(monkeypatch, total=12 * GiB, free=11 * GiB)
    engine = DiffusersEngine(DeviceConfig(name="cuda"), ModelsConfig(model_dirs=[real["flux1-dev"].parent]))
    try:
        engine.card = Card("cuda", engine.card.usable, engine.card.name)  # whether bitsandbytes is installed here or not
        infos = {m.name: m.memory for m in engine.models()}
        assert infos["flux1-dev"].startswith("transformer in fp8 streamed block by block; T5 text encoder freed after encoding")
        assert "bitsandbytes is not installed" in infos["flux1-dev"]
        assert infos["klein-4b"].startswith("transformer on the device; Qwen3 text encoder streamed while encoding")
        lines = engine.memory_lines()
        assert any(line.startswith("klein-4b: transformer on the device") for line in lines) and len(lines) == 3

        class Server:  # what ready() reads of a server
            engines = [engine]
            model_watch = type("W", (), {"interval": 0})()

        summary = ready(Server(), "stderr", 1.0)
        assert any(line.startswith("  memory: flux1-dev: transformer in fp8 streamed block by block") for line in summary)

        spec = next(m for m in engine.modes() if m.name == "txt2img")
        params = validate_params(spec.params, {"steps": 4, "seed": 1, "width": 2048, "height": 2048, "batch_size": 4})
        with pytest.raises(ProtocolError) as refused:
            engine.run(EngineJob("j", "txt2img", params, model="flux1-dev"), JobContext())
        assert refused.value.code is ErrorCode.OUT_OF_MEMORY
        assert refused.value.message.startswith("Model 'flux1-dev' does not fit NVIDIA GeForce RTX 3060 at 2048x2048, 4 images: ")
        assert "Lower the size or the batch size" in refused.value.message
    finally:
        engine.close()


def test_on_the_cpu_the_engine_says_what_is_not_used_there(real):
    from paintwire.server.engines.diffusion import DiffusersEngine

    engine = DiffusersEngine(DeviceConfig(name="cpu"), ModelsConfig(model_dirs=[real["flux1-dev"].parent]))
    try:
        text = {m.name: m.memory for m in engine.models()}["flux1-dev"]
        assert text.startswith("all in the computer's memory") and "fp8 storage and bitsandbytes NF4/int8 are used on CUDA cards only" in text
        assert engine.memory_lines() == ["flux1-dev, klein-4b, klein-9b: all in the computer's memory"]
    finally:
        engine.close()


@pytest.mark.parametrize("placement", [
    Placement("group", (("transformer", FP8),), (("text_encoder", RESIDENT), ("text_encoder_2", FREED)), denoiser="transformer"),
    Placement("none", (("transformer", FP8),), (("text_encoder", STREAMED), ("text_encoder_2", STREAMED)), denoiser="transformer"),
], ids=["streamed-by-blocks", "encoders-streamed"])
def test_the_engine_runs_every_task_of_a_placed_flux_model(tmp_path, placement):
    """The engine's own path (its cache, from_pipe for img2img, the prompt cache) on a model
    placed per component, the CPU standing in for the card."""
    from fixtures.tiny_flux import save_flux, save_flux_lora
    from paintwire.server.engines.diffusion import DiffusersEngine

    folder = save_flux(tmp_path / "flux", "dev")
    save_flux_lora(tmp_path / "loras" / "ink.safetensors", folder / "transformer" / "config.json", format="diffusers")
    engine = DiffusersEngine(DeviceConfig(name="cpu"), ModelsConfig(model_dirs=[tmp_path]))
    plain = DiffusersEngine(DeviceConfig(name="cpu"), ModelsConfig(model_dirs=[tmp_path]))
    engine.memory_plan = lambda entry, pipe: memory.MemoryPlan(placement.offload, False, placement=placement)
    try:
        (name,) = [e.name for e in engine.registry.entries.values() if e.is_checkpoint]
        for mode in ("txt2img", "img2img"):
            spec = next(m for m in engine.modes() if m.name == mode)
            image = np.full((64, 64, 4), 180, np.uint8) if mode == "img2img" else None
            params = validate_params(spec.params, {"steps": 2, "seed": 3, "width": 64, "height": 64, "cfg_scale": 3.5, "prompt": "a fox"})
            job = EngineJob("j", mode, params, image=image, model=name)
            placed = engine.run(job, JobContext()).layers[0].pixels
            again = engine.run(job, JobContext()).layers[0].pixels  # the prompt's conditioning cached: no encoder runs
            want = plain.run(job, JobContext()).layers[0].pixels
            assert np.array_equal(placed, again), mode
            assert np.abs(placed.astype(int) - want.astype(int)).max() <= 24, mode  # fp8 storage rounds the weights
            if mode == "txt2img":
                placed_txt2img = placed
        # A LoRA on the placed transformer (fp8: its layers made in fp8 by peft, cast to the compute dtype).
        spec = next(m for m in engine.modes() if m.name == "txt2img")
        params = validate_params(spec.params, {"steps": 2, "seed": 3, "width": 64, "height": 64, "cfg_scale": 3.5, "prompt": "a fox <lora:ink:1>"})
        job = EngineJob("j", "txt2img", params, model=name)
        with_lora, want = engine.run(job, JobContext()).layers[0].pixels, plain.run(job, JobContext()).layers[0].pixels
        assert np.abs(with_lora.astype(int) - want.astype(int)).max() <= 24
        assert np.abs(with_lora.astype(int) - placed_txt2img.astype(int)).max() > 24  # the LoRA changes the picture
        loaded = engine.cache.get(engine.registry.get(name))
        assert loaded.pipeline("img2img").transformer is loaded.base.transformer  # one copy, hooks and all
        inpaint = loaded.pipeline("inpaint")  # made now, before any step: from_pipe casts what it shares
        assert torch.float8_e4m3fn in {p.dtype for p in inpaint.transformer.parameters()}  # still stored in fp8
        assert loaded.base.vae.dtype == torch.float32
        assert loaded.prompts.hits >= 2
    finally:
        engine.close()
        plain.close()


def test_bitsandbytes_is_offered_to_the_plan_on_cuda_only():
    import importlib.util

    installed = frozenset({"bitsandbytes"}) if importlib.util.find_spec("bitsandbytes") else frozenset()
    assert memory.card_of(torch.device("cuda"), "cuda", 12 * GiB).quantizers == installed
    assert memory.card_of(torch.device("cuda"), "rocm", 12 * GiB).quantizers == frozenset()
    assert memory.card_of(torch.device("cpu"), "cpu", 12 * GiB).quantizers == frozenset()


def test_out_of_memory_advice_for_flux_names_a_quantised_file():
    from paintwire.server.engines.diffusion import device
    from paintwire.server.engines.diffusion.engine import out_of_memory_advice

    gpu = device.DeviceChoice(torch.device("cuda"), torch.bfloat16, 0, "NVIDIA GeForce RTX 3060", "cuda", 11 * GiB)
    job = EngineJob("j", "txt2img", {"batch_size": 1, "width": 1536, "height": 1536})
    text = out_of_memory_advice(job, gpu, DeviceConfig(), FLUX)
    assert text.startswith("The GPU (NVIDIA GeForce RTX 3060) ran out of memory for this job; lower the size (1536x1536)")
    assert text.endswith("; a quantised file of the model (GGUF Q4 or Q5) takes a quarter to a third of the memory.")
    assert "GGUF" not in out_of_memory_advice(job, gpu, DeviceConfig(), family_named("sdxl"))


def test_stable_diffusion_single_files_at_real_size_keep_their_rule(tmp_path):
    """SD single files: the components found by their prefixes in the header, and the
    whole-component rule of tests/unit/test_gpu_path.py on the sizes read."""
    from fixtures.real_sizes import CLIP_L, CLIP_L_XL, OPEN_CLIP_BIGG, OPEN_CLIP_XL, SDXL_UNET, SDXL_VAE, checkpoint_shapes, write_header_only
    from paintwire.server.engines.diffusion.weight_sizes import single_file_weights

    path = write_header_only(tmp_path / "sdxl.safetensors", checkpoint_shapes(SDXL_UNET, SDXL_VAE, [(CLIP_L_XL, CLIP_L), (OPEN_CLIP_XL, OPEN_CLIP_BIGG)]))
    w = single_file_weights(path, 2)
    params = {c: round(s / 2 / 1e6) for c, s in w.sizes.items()}
    assert params["unet"] == 2567 and params["vae"] == 84 and params["text_encoder"] == 123 and 690 <= params["text_encoder_2"] <= 700
    sdxl = family_named("sdxl")
    for usable, want in ((11, "none"), (7.5, "model"), (5.5, "sequential")):
        p = plan(w, Card("cuda", int(usable * GiB)), sdxl.activation_reserve, "auto", sdxl.per_component_memory)
        assert (p.offload, p.fits) == (want, True), usable
