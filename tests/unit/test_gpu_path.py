"""The GPU path on a machine without a GPU: device and dtype choice, small-card
measures, NaN-safe decoding and out-of-memory recovery.

What needs a GPU is simulated at the narrowest point: torch.cuda's answers for
a card that is not here, and failures (NaN, OutOfMemoryError) raised from hooks
on the real modules of a real tiny pipeline, which then runs normally.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fixtures import tiny_models  # noqa: E402
from paintwire.protocol import ErrorCode, ProtocolError, validate_params  # noqa: E402
from paintwire.server.config import ConfigError, DeviceConfig, ModelsConfig, ServerConfig, load_config  # noqa: E402
from paintwire.server.engines.base import EngineJob, JobContext  # noqa: E402
from paintwire.server.engines.diffusion import DiffusersEngine, device, memory  # noqa: E402
from paintwire.server.engines.diffusion.memory import MemoryPlan  # noqa: E402
from paintwire.server.engines.diffusion.families import family_named  # noqa: E402

GiB = 2**30


# --- device and dtype --------------------------------------------------------------------


@pytest.mark.parametrize("kind,precision,bf16_fast,bf16_ok,want", [
    ("cuda", "auto", True, True, torch.bfloat16),  # Ampere and later: bf16 as fast as fp16, no VAE overflow
    ("cuda", "auto", False, True, torch.float16),  # Turing and older
    ("rocm", "auto", False, True, torch.float16),
    ("mps", "auto", False, False, torch.float16),
    ("cpu", "auto", True, True, torch.float32),
    ("cuda", "fp32", True, True, torch.float32),
    ("cuda", "fp16", True, True, torch.float16),
    ("cuda", "bf16", False, False, torch.float16),  # asked for, not supported: fp16 with a warning
    ("cpu", "bf16", True, True, torch.bfloat16),
])
def test_dtype_choice(kind, precision, bf16_fast, bf16_ok, want):
    assert device.choose_dtype(kind, precision, bf16_fast, bf16_ok) == want


def test_device_choice_on_this_machine():
    cpu = device.choose_device("cpu", budget_gb=1.5)
    assert (cpu.device.type, cpu.dtype, cpu.kind, cpu.name) == ("cpu", torch.float32, "cpu", "CPU")
    assert cpu.usable == int(1.5 * GiB) and cpu.memory_budget == int(0.75 * 1.5 * GiB)
    if not torch.cuda.is_available():
        assert device.choose_device("auto").device.type in ("cpu", "mps")
    info = device.choose_device("cpu").info()
    assert info.kind == "cpu" and info.dtype == "fp32" and 0 < info.free_memory <= info.total_memory


@pytest.mark.parametrize("setting", ["cuda", "cuda:7", "tpu", "nonsense"])
def test_a_device_that_is_not_here_is_a_clear_configuration_error(setting):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(ConfigError, match="device"):
        device.choose_device(setting)


def _pretend_gpu(monkeypatch, name: str, capability: tuple[int, int], total: int, free: int, hip: str | None = None) -> None:
    """torch.cuda's answers for a card that is not in this machine."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda d=None: name)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda d=None: capability)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: capability >= (8, 0))
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda d=None: (free, total))
    monkeypatch.setattr(torch.version, "hip", hip)


@pytest.mark.parametrize("name,capability,hip,dtype,kind,shown", [
    ("NVIDIA GeForce RTX 3060", (8, 6), None, torch.bfloat16, "cuda", "NVIDIA GeForce RTX 3060"),
    ("NVIDIA GeForce GTX 1660", (7, 5), None, torch.float16, "cuda", "NVIDIA GeForce GTX 1660"),
    ("AMD Radeon RX 7900 XTX", (11, 0), "6.4", torch.float16, "rocm", "AMD Radeon RX 7900 XTX (ROCm)"),
])
def test_cuda_and_rocm_cards(monkeypatch, name, capability, hip, dtype, kind, shown):
    _pretend_gpu(monkeypatch, name, capability, total=12 * GiB, free=10 * GiB, hip=hip)
    choice = device.choose_device("auto")
    assert (choice.device.type, choice.dtype, choice.kind, choice.name) == ("cuda", dtype, kind, shown)
    assert choice.usable == 10 * GiB  # what was free at start: the desktop keeps the rest
    assert choice.memory_budget == int(7.5 * GiB)
    info = choice.info()
    assert (info.total_memory, info.free_memory) == (12 * GiB, 10 * GiB)
    assert info.summary() == f"{shown}, {device.DTYPE_NAMES[dtype]}, 10.0 of 12.0 GiB free"
    assert device.choose_device("auto", budget_gb=4).usable == 4 * GiB
    assert device.choose_device("cuda:0", precision="fp32").dtype == torch.float32


def test_out_of_memory_is_recognised_from_every_backend():
    assert device.is_out_of_memory(torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"))
    assert device.is_out_of_memory(RuntimeError("MPS backend out of memory (MPS allocated: 17.00 GB)"))
    assert device.is_out_of_memory(RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory"))
    assert device.is_out_of_memory(MemoryError())
    assert not device.is_out_of_memory(RuntimeError("mat1 and mat2 shapes cannot be multiplied"))
    assert not device.is_out_of_memory(ValueError("out of memory"))


# --- small cards ---------------------------------------------------------------------------

FAMILY_SD15, FAMILY_SDXL = family_named("sd15"), family_named("sdxl")
SD15 = {"unet": int(1.6 * GiB), "text_encoder": int(0.23 * GiB), "vae": int(0.16 * GiB)}  # fp16 sizes
SDXL = {"unet": int(4.8 * GiB), "text_encoder": int(0.23 * GiB), "text_encoder_2": int(1.3 * GiB), "vae": int(0.16 * GiB)}
CUDA = torch.device("cuda")


@pytest.mark.parametrize("components,family,usable,want", [
    (SD15, FAMILY_SD15, 11 * GiB, "none"),
    (SD15, FAMILY_SD15, int(3.7 * GiB), "none"),  # a 4 GB card holds SD1.5 in fp16
    (SD15, FAMILY_SD15, int(3.2 * GiB), "model"),
    (SD15, FAMILY_SD15, int(2.0 * GiB), "sequential"),
    (SDXL, FAMILY_SDXL, 11 * GiB, "none"),
    (SDXL, FAMILY_SDXL, int(7.5 * GiB), "model"),  # 8 GB cards
    (SDXL, FAMILY_SDXL, int(5.5 * GiB), "sequential"),  # 6 GB cards
    (SDXL, FAMILY_SDXL, int(3.7 * GiB), "sequential"),
])
def test_offload_follows_the_model_size_and_the_memory(components, family, usable, want):
    assert memory.choose_offload("auto", components, usable, family, CUDA) == want


def test_offload_settings():
    assert memory.choose_offload("none", SDXL, 2 * GiB, FAMILY_SDXL, CUDA) == "none"
    assert memory.choose_offload("sequential", SD15, 24 * GiB, FAMILY_SD15, CUDA) == "sequential"
    # Apple and the CPU share the host's memory: nothing to offload to.
    assert memory.choose_offload("model", SDXL, 2 * GiB, FAMILY_SDXL, torch.device("mps")) == "none"
    assert memory.choose_offload("auto", SDXL, 2 * GiB, FAMILY_SDXL, torch.device("cpu")) == "none"
    assert memory.choose_attention_slicing("auto", torch.device("mps"))
    assert not memory.choose_attention_slicing("auto", CUDA)
    assert memory.choose_attention_slicing("on", CUDA) and not memory.choose_attention_slicing("off", torch.device("mps"))


def test_vae_tiling_above_four_times_the_native_size_or_when_memory_is_short():
    assert not memory.vae_tiling_needed(1024, 1024, 512)
    assert memory.vae_tiling_needed(1024, 1032, 512)
    assert not memory.vae_tiling_needed(2048, 2048, 1024, 2, free_bytes=20 * GiB)
    assert memory.vae_tiling_needed(1024, 1024, 1024, 2, free_bytes=1 * GiB)  # SDXL at 1024 on a nearly full card
    assert not memory.vae_tiling_needed(1024, 1024, 1024, 2, free_bytes=None)


def test_gpu_settings_are_validated_and_read_from_every_source():
    config = load_config(env={"PAINTWIRE_PRECISION": "fp16", "PAINTWIRE_TORCH_COMPILE": "true", "PAINTWIRE_CHANNELS_LAST": "0"},
                         overrides={"offload": "model"})
    assert (config.device.precision, config.device.torch_compile, config.device.channels_last, config.device.offload) == ("fp16", True, False, "model")
    with pytest.raises(ConfigError, match="precision must be one of auto, fp16, bf16, fp32"):
        load_config(env={"PAINTWIRE_PRECISION": "half"})
    with pytest.raises(ConfigError, match="torch_compile"):
        load_config(env={"PAINTWIRE_TORCH_COMPILE": "maybe"})
    with pytest.raises(ConfigError, match="offload"):
        load_config(env={"PAINTWIRE_OFFLOAD": "disk"})


# --- the engine, with failures simulated on real modules ---------------------------------------


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("gpu-models")
    tiny_models.build_tiny_sd15(root / "sd15")
    tiny_models.build_tiny_sd15(root / "other")
    return root


def make_job(engine, mode="txt2img", **params):
    spec = next(m for m in engine.modes() if m.name == mode)
    image = np.full((64, 64, 4), 200, np.uint8) if mode == "img2img" else None
    return EngineJob("j", mode, validate_params(spec.params, {"steps": 2, "seed": 3, "width": 64, "height": 64, **params}),
                     image=image, model="sd15")


@pytest.fixture(scope="module")
def engine(models):
    eng = DiffusersEngine(DeviceConfig(name="cpu"), ModelsConfig(model_dirs=[models]))
    yield eng
    eng.close()


def test_attention_is_pytorch_sdpa_by_default(engine):
    from diffusers.models.attention_processor import AttnProcessor2_0

    unet = engine.cache.get(engine.registry.get("sd15")).base.unet
    assert {type(p) for p in unet.attn_processors.values()} == {AttnProcessor2_0}


def test_the_device_is_in_the_capabilities(engine):
    from paintwire.server.app import PaintwireServer

    caps = PaintwireServer(ServerConfig(engines=[]), [engine]).capabilities
    info = caps.engine("diffusers").device
    assert (info.name, info.kind, info.dtype) == ("CPU", "cpu", "fp32") and info.total_memory >= info.free_memory > 0


@pytest.mark.parametrize("where", ["unet", "vae.decoder", "text_encoder"])
def test_out_of_memory_in_any_step_fails_that_job_and_the_next_runs(engine, where):
    before = engine.run(make_job(engine, batch_size=2), JobContext()).layers
    engine.cache.get(engine.registry.get("other"))
    engine.cache.get(engine.registry.get("sd15"))  # two models warm; sd15 the last used
    module = engine.cache.get(engine.registry.get("sd15")).base
    for part in where.split("."):
        module = getattr(module, part)

    def out_of_memory(*args):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    handle = module.register_forward_pre_hook(out_of_memory)
    try:
        with pytest.raises(ProtocolError) as failed:
            # A prompt of its own: a repeated one's encoding is cached, and the text encoder would not run.
            engine.run(make_job(engine, batch_size=2, prompt=f"a prompt not encoded before ({where})"), JobContext())
    finally:
        handle.remove()
    assert failed.value.code is ErrorCode.OUT_OF_MEMORY
    assert "ran out of memory" in failed.value.message and "the size (64x64) or the batch size (2)" in failed.value.message
    assert engine.cache.loaded == ["sd15"]  # the other warm model was let go
    after = engine.run(make_job(engine, batch_size=2), JobContext()).layers
    assert all(np.array_equal(a.pixels, b.pixels) for a, b in zip(before, after))


def test_out_of_memory_advice_names_what_to_lower():
    from paintwire.server.engines.diffusion.engine import out_of_memory_advice

    gpu = device.DeviceChoice(torch.device("cuda"), torch.float16, 0, "NVIDIA GeForce GTX 1650", "cuda", 4 * GiB)
    job = EngineJob("j", "inpaint", {"batch_size": 1, "inpaint_area": "whole_picture"}, image=np.zeros((2048, 3072, 4), np.uint8))
    text = out_of_memory_advice(job, gpu, DeviceConfig())
    assert text == ("The GPU (NVIDIA GeForce GTX 1650) ran out of memory for this job; lower the size (a 3072x2048 image) or "
                    "the inpaint area (choose 'only masked'), or set offload = \"model\" in the server's configuration "
                    "(\"sequential\" for 4 GB cards).")
    assert 'offload = "sequential"' in out_of_memory_advice(job, gpu, DeviceConfig(offload="model"))


@pytest.fixture(scope="module")
def half_engine(models):
    """The engine in 16-bit precision on the CPU (bf16: the CPU runs it well; fp16 is
    the same code path and slow here)."""
    eng = DiffusersEngine(DeviceConfig(name="cpu", precision="bf16"), ModelsConfig(model_dirs=[models]))
    yield eng
    eng.close()


def _nan_when_half(calls: list[torch.dtype]):
    """A forward hook that overflows, as the SDXL VAE does in fp16, whenever it runs in 16 bits."""
    def hook(module, args, output):
        calls.append(output.dtype)
        return torch.full_like(output, float("nan")) if output.dtype != torch.float32 else output
    return hook


def test_a_decode_that_overflows_in_half_precision_is_redone_in_fp32(half_engine):
    loaded = half_engine.cache.get(half_engine.registry.get("sd15"))
    assert loaded.base.vae.dtype == torch.bfloat16 and not loaded.vae_fp32
    calls: list[torch.dtype] = []
    handle = loaded.base.vae.decoder.register_forward_hook(_nan_when_half(calls))
    try:
        first = half_engine.run(make_job(half_engine), JobContext()).layers[0].pixels
        assert calls == [torch.bfloat16, torch.float32] and loaded.vae_fp32
        assert loaded.base.vae.dtype == torch.bfloat16  # back in its own dtype between jobs
        second = half_engine.run(make_job(half_engine), JobContext()).layers[0].pixels
        assert calls[2:] == [torch.float32]  # learned: straight to fp32
    finally:
        handle.remove()
        loaded.vae_fp32 = False
    assert np.array_equal(first, second) and first[..., :3].std() > 0 and first[..., :3].max() > 0  # a picture, not black


def test_nan_from_the_unet_or_a_vae_broken_in_fp32_is_an_error_not_a_black_image(half_engine):
    loaded = half_engine.cache.get(half_engine.registry.get("sd15"))
    handle = loaded.base.unet.register_forward_hook(lambda m, a, out: (torch.full_like(out[0], float("nan")),))
    try:
        with pytest.raises(ProtocolError, match='precision = "fp32"') as failed:
            half_engine.run(make_job(half_engine), JobContext())
    finally:
        handle.remove()
    assert failed.value.code is ErrorCode.ENGINE_FAILED
    handle = loaded.base.vae.decoder.register_forward_hook(lambda m, a, out: torch.full_like(out, float("nan")))
    try:
        with pytest.raises(ProtocolError, match="even in fp32; choose another VAE"):
            half_engine.run(make_job(half_engine), JobContext())
    finally:
        handle.remove()
        loaded.vae_fp32 = False
    assert half_engine.run(make_job(half_engine), JobContext()).layers  # and the next job is fine


def test_model_offload_and_attention_slicing_run_every_mode_with_shared_components(models, engine):
    """The real accelerate hooks, with the CPU standing in for the card: the pipelines
    made with from_pipe share the offloaded components and give the same pictures."""
    small = DiffusersEngine(DeviceConfig(name="cpu"), ModelsConfig(model_dirs=[models]))
    small.memory_plan = lambda entry, pipe: MemoryPlan("model", attention_slicing=True, channels_last=True)
    try:
        for mode in ("txt2img", "img2img"):
            plain = engine.run(make_job(engine, mode), JobContext()).layers[0].pixels
            offloaded = small.run(make_job(small, mode), JobContext()).layers[0].pixels
            assert np.abs(plain.astype(int) - offloaded.astype(int)).max() <= 2, mode
        loaded = small.cache.get(small.registry.get("sd15"))
        assert loaded.pipeline("img2img").unet is loaded.base.unet  # one copy of the weights
        assert loaded.pipeline("img2img")._all_hooks  # the derived pipeline moves its last component off the card
        assert type(next(iter(loaded.base.unet.attn_processors.values()))).__name__ == "SlicedAttnProcessor"
        assert loaded.base.unet.conv_in.weight.is_contiguous(memory_format=torch.channels_last)
    finally:
        small.close()


def test_torch_compile_is_opt_in_and_its_time_is_reported_once(models, engine, monkeypatch, caplog):
    """The real torch.compile path (dynamo capture) with the eager backend: inductor's
    code generation takes minutes on a CPU and says nothing about a GPU."""
    monkeypatch.setattr(memory, "COMPILE_BACKEND", "eager")
    assert getattr(engine.cache.get(engine.registry.get("sd15")).base.unet, "_compiled_call_impl", None) is None  # off by default
    compiled = DiffusersEngine(DeviceConfig(name="cpu", torch_compile=True), ModelsConfig(model_dirs=[models]))
    try:
        with caplog.at_level("WARNING"):
            first = compiled.run(make_job(compiled), JobContext()).layers[0].pixels
            compiled.run(make_job(compiled), JobContext())
        reports = [r.getMessage() for r in caplog.records if r.getMessage().startswith("torch.compile:")]
        assert len(reports) == 1 and reports[0].startswith("torch.compile: sd15 compiled in about ")
        assert np.array_equal(first, engine.run(make_job(engine), JobContext()).layers[0].pixels)
    finally:
        compiled.close()
