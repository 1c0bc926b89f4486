"""The sampler and schedule vocabulary, and the diffusers schedulers it makes."""

from __future__ import annotations

import pytest

pytest.importorskip("diffusers")

import diffusers  # noqa: E402

from paintwire.protocol import ErrorCode, ProtocolError  # noqa: E402
from paintwire.server.engines.diffusion.params import SCHEDULE, SCHEDULER, SCHEDULER_LABELS  # noqa: E402
from paintwire.server.engines.diffusion.samplers import SAMPLERS, SCHEDULES, scheduler_options  # noqa: E402
from paintwire.server.engines.diffusion.sampling import make_scheduler  # noqa: E402

# An SD1.5 scheduler config, as a model folder or a generated single-file config carries it.
SD_CONFIG = diffusers.DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", steps_offset=1,
                                    timestep_spacing="leading", set_alpha_to_one=False, clip_sample=False).config
WEBUI = ["Euler", "Euler a", "LMS", "Heun", "DPM2", "DPM2 a", "DPM++ 2S a", "DPM++ 2M", "DPM++ SDE", "DPM++ 2M SDE",
         "DPM++ 3M SDE", "DDIM", "PLMS", "UniPC", "LCM"]


def timesteps(name: str, schedule: str, steps: int, config=SD_CONFIG) -> list[int]:
    scheduler = make_scheduler(name, config, schedule, seed=1)
    scheduler.set_timesteps(steps)
    return [int(t) for t in scheduler.timesteps]


def test_the_webui_samplers_are_offered_under_their_names():
    assert set(WEBUI) <= {s.label for s in SAMPLERS.values()}
    assert SCHEDULER.choices == tuple(SAMPLERS) and SCHEDULER_LABELS["dpmpp_2m_sde"] == "DPM++ 2M SDE"
    assert SCHEDULE.choices == tuple(SCHEDULES) and SCHEDULE.default == "automatic"
    for sampler in SAMPLERS.values():
        assert hasattr(diffusers, sampler.cls) and sampler.automatic in SCHEDULES


@pytest.mark.parametrize("name", list(SAMPLERS))
def test_every_sampler_and_schedule_makes_its_scheduler(name):
    for schedule in SAMPLERS[name].schedules:
        cls, options = scheduler_options(name, schedule)
        scheduler = make_scheduler(name, SD_CONFIG, schedule)
        assert type(scheduler).__name__ == cls
        for key, value in options.items():
            assert scheduler.config[key] == value


def test_schedules_change_the_noise_levels():
    karras = make_scheduler("euler", SD_CONFIG, "karras")
    exponential = make_scheduler("euler", SD_CONFIG, "exponential")
    uniform = make_scheduler("euler", SD_CONFIG, "uniform")
    for s in (karras, exponential, uniform):
        s.set_timesteps(8)
    assert len({tuple(round(float(x), 3) for x in s.sigmas) for s in (karras, exponential, uniform)}) == 3
    # "automatic" is the WebUI's usual schedule for each sampler.
    assert timesteps("dpmpp_2m", "automatic", 6) == timesteps("dpmpp_2m", "karras", 6) != timesteps("dpmpp_2m", "uniform", 6)
    assert timesteps("dpmpp_2m_sde", "automatic", 6) == timesteps("dpmpp_2m_sde", "exponential", 6)
    assert timesteps("dpmpp_2m_karras", "automatic", 6) == timesteps("dpmpp_2m", "karras", 6)


def test_sgm_uniform_gives_the_trailing_timesteps_of_turbo_and_lightning():
    assert timesteps("euler_a", "sgm_uniform", 1) == [999]  # SD-Turbo / SDXL-Turbo, one step
    assert timesteps("euler", "sgm_uniform", 4) == [999, 749, 499, 249]  # Lightning 4-step
    assert timesteps("ddim", "sgm_uniform", 2) == [999, 499]  # Hyper-SD 2-step
    assert timesteps("euler_a", "automatic", 1) == [1]  # why: the leading default would start almost noise-free
    # A Turbo model's own folder says "trailing": automatic keeps it.
    turbo = diffusers.EulerAncestralDiscreteScheduler.from_config(SD_CONFIG, timestep_spacing="trailing").config
    assert timesteps("euler_a", "automatic", 1, turbo) == [999]


def test_lcm_and_tcd_use_the_distilled_timesteps():
    assert timesteps("lcm", "automatic", 4) == [999, 759, 499, 259]
    assert timesteps("tcd", "automatic", 4) == [999, 759, 499, 259]


@pytest.mark.parametrize("name,schedule", [("euler_a", "karras"), ("ddim", "exponential"), ("lcm", "sgm_uniform"),
                                           ("dpmpp_2m_karras", "exponential"), ("dpmpp_2s_a", "sgm_uniform")])
def test_a_schedule_the_sampler_cannot_take_is_a_clear_error(name, schedule):
    with pytest.raises(ProtocolError) as info:
        scheduler_options(name, schedule)
    error = info.value
    assert error.code is ErrorCode.INVALID_PARAM and error.field == "job.params.schedule"
    assert SAMPLERS[name].label in error.message and "Automatic" in error.message
