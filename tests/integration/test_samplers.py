"""Every sampler with every schedule it takes, and the few-step recipes, on the tiny models
through the real server."""

from __future__ import annotations

import numpy as np
import pytest
from diffusion_fixtures import diffusers_server, hf_cache_dir, tiny_models_dir  # noqa: F401
from helpers import layer_pixels

from fixtures.tiny_models import LORA, SD15, SDXL
from paintwire.protocol import Client, ErrorCode, JobFailed, JobRequest
from paintwire.server.engines.diffusion.samplers import SAMPLERS

W = H = 32
# Every sampler with its usual schedule, and every schedule with one sampler that takes them all
# (that each sampler builds with each schedule it takes is checked in tests/unit/test_sampler_vocabulary.py).
COMBOS = [(name, "automatic") for name in SAMPLERS] + [("euler", s) for s in ("uniform", "karras", "exponential", "sgm_uniform")]


@pytest.fixture(scope="module")
def client(diffusers_server):  # noqa: F811
    with Client(diffusers_server.url, name="sampler-test", timeout=120) as c:
        yield c


def generate(client, events=None, model=SD15, **params):
    request = JobRequest("diffusers", "txt2img", model=model,
                         params={"steps": 3, "seed": 11, "prompt": "a red apple", "width": W, "height": H, **params})
    return client.run(request, on_event=events.append if events is not None else None, timeout=120)


@pytest.mark.parametrize("name,schedule", COMBOS)
def test_every_sampler_runs_with_every_schedule_it_takes(client, name, schedule):
    events = []
    result = generate(client, events, scheduler=name, schedule=schedule)
    layer = result.layers[0]
    assert layer.settings["scheduler"] == name and layer.settings["schedule"] == schedule
    pixels = layer_pixels(layer)
    assert pixels.shape == (H, W, 4) and pixels[..., :3].std() > 0
    last = [e for e in events if e.TYPE == "progress" and e.stage == "denoising"][-1]
    assert last.step == last.total >= 3  # second-order samplers (Heun, DPM2, DPM++ SDE) report each model call


def test_stochastic_samplers_repeat_with_the_seed(client):
    for name in ("dpmpp_sde", "dpmpp_2m_sde", "euler_a"):
        a, b = (layer_pixels(generate(client, scheduler=name).layers[0]) for _ in range(2))
        assert np.array_equal(a, b), name


def test_the_schedule_changes_the_picture(client):
    karras = layer_pixels(generate(client, scheduler="euler", schedule="karras", steps=4).layers[0])
    exponential = layer_pixels(generate(client, scheduler="euler", schedule="exponential", steps=4).layers[0])
    assert not np.array_equal(karras, exponential)


def test_a_schedule_the_sampler_cannot_take_is_refused(client):
    with pytest.raises(JobFailed) as info:
        generate(client, scheduler="euler_a", schedule="karras")
    assert info.value.error.code is ErrorCode.INVALID_PARAM and info.value.error.field == "job.params.schedule"
    assert "Euler a" in info.value.error.message


def test_guidance_off_ignores_the_negative_prompt(client):
    # cfg_scale 1 runs no unconditional pass: what Turbo, Lightning and LCM models need.
    a = layer_pixels(generate(client, cfg_scale=1.0, negative_prompt="blurry").layers[0])
    b = layer_pixels(generate(client, cfg_scale=1.0, negative_prompt="a green pear").layers[0])
    c = layer_pixels(generate(client, cfg_scale=7.0, negative_prompt="a green pear").layers[0])
    assert np.array_equal(a, b) and not np.array_equal(b, c)


@pytest.mark.parametrize("model", [SD15, SDXL])
@pytest.mark.parametrize("recipe", [
    {"scheduler": "euler_a", "schedule": "sgm_uniform", "steps": 1},  # SD-Turbo, SDXL-Turbo
    {"scheduler": "euler", "schedule": "sgm_uniform", "steps": 4},  # SDXL-Lightning LoRA or model
    {"scheduler": "tcd", "steps": 1},  # Hyper-SD one-step LoRA
    {"scheduler": "ddim", "schedule": "sgm_uniform", "steps": 2},  # Hyper-SD n-step LoRA
    {"scheduler": "lcm", "steps": 4},  # LCM model, DMD2
])
def test_few_step_recipes(client, model, recipe):
    events = []
    result = generate(client, events, model=model, cfg_scale=1.0, **recipe)
    steps = [(e.step, e.total) for e in events if e.TYPE == "progress" and e.stage == "denoising" and e.step > 0]
    assert steps == [(i, recipe["steps"]) for i in range(1, recipe["steps"] + 1)]
    assert layer_pixels(result.layers[0])[..., :3].std() > 0


def test_lcm_lora_with_the_lcm_sampler(client):
    plain = layer_pixels(generate(client, scheduler="lcm", steps=4, cfg_scale=1.5).layers[0])
    with_lora = layer_pixels(generate(client, scheduler="lcm", steps=4, cfg_scale=1.5, prompt=f"a red apple <lora:{LORA}:1>").layers[0])
    assert not np.array_equal(plain, with_lora)  # the LoRA took part in the LCM run


def test_img2img_with_a_few_step_sampler(client):
    image = np.zeros((H, W, 4), np.uint8)
    image[..., :3], image[..., 3] = 90, 255
    from helpers import rgba_payload

    request = JobRequest("diffusers", "img2img", rgba_payload(image), model=SD15,
                         params={"steps": 4, "seed": 3, "prompt": "x", "scheduler": "lcm", "cfg_scale": 1.0, "strength": 0.5})
    events = []
    result = client.run(request, on_event=events.append, timeout=120)
    assert [e.step for e in events if e.TYPE == "progress" and e.stage == "denoising" and e.step > 0] == [1, 2]  # 4 x 0.5
    assert result.layers[0].image.width == W


def test_a_jobs_sampler_does_not_carry_over_to_the_next(client):
    before = layer_pixels(generate(client, scheduler="dpmpp_2m").layers[0])
    generate(client, scheduler="dpmpp_3m_sde", schedule="sgm_uniform")  # solver order 3, trailing timesteps
    after = layer_pixels(generate(client, scheduler="dpmpp_2m").layers[0])
    assert np.array_equal(before, after)
