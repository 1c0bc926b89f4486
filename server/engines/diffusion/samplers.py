"""The samplers and schedules offered to clients, and the diffusers scheduler settings for each.

The WebUI's names and its "Schedule type" (since 1.9) are the vocabulary painters
know; this table maps them onto diffusers' scheduler classes. It is the one
place for that vocabulary: the parameter specs take their choices and labels
from it, and ``make_scheduler`` its settings.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from paintwire.protocol import ErrorCode, ProtocolError

# Schedules: how the steps are spread over the noise levels (the WebUI's "Schedule type").
AUTOMATIC, UNIFORM, KARRAS, EXPONENTIAL, SGM_UNIFORM = "automatic", "uniform", "karras", "exponential", "sgm_uniform"
SCHEDULES = {
    AUTOMATIC: "Automatic", UNIFORM: "Uniform", KARRAS: "Karras", EXPONENTIAL: "Exponential", SGM_UNIFORM: "SGM Uniform",
}
SPACINGS = (AUTOMATIC, UNIFORM, SGM_UNIFORM)  # what a solver without its own sigma schedule can take
ALL_SCHEDULES = tuple(SCHEDULES)


@dataclass(frozen=True)
class Sampler:
    """One of the WebUI's samplers, as the diffusers scheduler that implements it."""

    label: str  # the WebUI's name
    cls: str  # the diffusers scheduler class
    options: tuple[tuple[str, Any], ...] = ()
    schedules: tuple[str, ...] = ALL_SCHEDULES
    automatic: str = UNIFORM  # what "automatic" means for it (the WebUI's default schedule for this sampler)


SAMPLERS: dict[str, Sampler] = {
    "dpmpp_2m": Sampler("DPM++ 2M", "DPMSolverMultistepScheduler", (("algorithm_type", "dpmsolver++"),), automatic=KARRAS),
    # The name older clients and saved settings use: DPM++ 2M with the Karras schedule.
    "dpmpp_2m_karras": Sampler("DPM++ 2M Karras", "DPMSolverMultistepScheduler", (("algorithm_type", "dpmsolver++"),),
                               schedules=(AUTOMATIC, KARRAS), automatic=KARRAS),
    "dpmpp_2m_sde": Sampler("DPM++ 2M SDE", "DPMSolverMultistepScheduler", (("algorithm_type", "sde-dpmsolver++"),), automatic=EXPONENTIAL),
    "dpmpp_3m_sde": Sampler("DPM++ 3M SDE", "DPMSolverMultistepScheduler",
                            (("algorithm_type", "sde-dpmsolver++"), ("solver_order", 3)), automatic=EXPONENTIAL),
    "dpmpp_sde": Sampler("DPM++ SDE", "DPMSolverSDEScheduler", automatic=KARRAS),
    # diffusers has no ancestral single-step DPM++; its stochastic second-order single-step solver is the nearest.
    "dpmpp_2s_a": Sampler("DPM++ 2S a", "DPMSolverSinglestepScheduler",
                          (("algorithm_type", "sde-dpmsolver++"), ("solver_order", 2), ("lower_order_final", True)),
                          schedules=(AUTOMATIC, UNIFORM, KARRAS, EXPONENTIAL), automatic=KARRAS),
    "euler_a": Sampler("Euler a", "EulerAncestralDiscreteScheduler", schedules=SPACINGS),
    "euler": Sampler("Euler", "EulerDiscreteScheduler"),
    "lms": Sampler("LMS", "LMSDiscreteScheduler"),
    "heun": Sampler("Heun", "HeunDiscreteScheduler"),
    "dpm2": Sampler("DPM2", "KDPM2DiscreteScheduler", automatic=KARRAS),
    "dpm2_a": Sampler("DPM2 a", "KDPM2AncestralDiscreteScheduler", automatic=KARRAS),
    "ddim": Sampler("DDIM", "DDIMScheduler", schedules=SPACINGS),
    "plms": Sampler("PLMS", "PNDMScheduler", (("skip_prk_steps", True),), schedules=SPACINGS),
    "unipc": Sampler("UniPC", "UniPCMultistepScheduler"),
    # Few-step samplers: LCM models and LCM-LoRA (and DMD2), TCD for Hyper-SD's one-step LoRAs. Both
    # pick their own timesteps from the distilled schedule (999, 759, 499, 259 for 4 steps).
    "lcm": Sampler("LCM", "LCMScheduler", schedules=(AUTOMATIC,)),
    "tcd": Sampler("TCD", "TCDScheduler", schedules=(AUTOMATIC,)),
}


def scheduler_options(name: str, schedule: str) -> tuple[str, dict[str, Any]]:
    """The diffusers class and settings for a sampler and a schedule; a schedule the
    sampler cannot take is an invalid_param error that says which ones it can."""
    sampler = SAMPLERS[name]
    if schedule not in sampler.schedules:
        allowed = ", ".join(SCHEDULES[s] for s in sampler.schedules)
        raise ProtocolError(
            ErrorCode.INVALID_PARAM,
            f"The {sampler.label} sampler has no {SCHEDULES.get(schedule, schedule)} schedule; choose one of: {allowed}.",
            "job.params.schedule",
        )
    options = dict(sampler.options)
    chosen = sampler.automatic if schedule == AUTOMATIC else schedule
    if KARRAS in sampler.schedules:  # the class has use_karras_sigmas and use_exponential_sigmas
        options.update(use_karras_sigmas=chosen == KARRAS, use_exponential_sigmas=chosen == EXPONENTIAL)
    if chosen == SGM_UNIFORM:
        options["timestep_spacing"] = "trailing"  # what SGM uniform is in diffusers' terms (Turbo, Lightning, Hyper)
    elif schedule == UNIFORM and sampler.cls != "DPMSolverSinglestepScheduler":
        options["timestep_spacing"] = "linspace"
    # Automatic keeps the model's own spacing: a Turbo model's folder already says "trailing".
    return sampler.cls, options
