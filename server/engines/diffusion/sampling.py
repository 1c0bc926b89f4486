"""Schedulers, step counts, and the per-step hook (progress, cancel, previews, latent blends)."""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any, Callable

import torch

from ..base import JobContext
from .previews import PreviewMaker
from .samplers import AUTOMATIC, scheduler_options


def make_scheduler(name: str, config: Any, schedule: str = AUTOMATIC, seed: int | None = None) -> Any:
    """A fresh scheduler of the chosen kind, from the model's scheduler config."""
    import diffusers

    cls_name, options = scheduler_options(name, schedule)
    if cls_name == "DPMSolverSDEScheduler" and seed is not None:
        options["noise_sampler_seed"] = seed  # its Brownian noise is otherwise drawn from a random seed
    return getattr(diffusers, cls_name).from_config(config, **options)


# The flow families' samplers: a WebUI sampler name -> its flow-matching scheduler in diffusers.
# Any other sampler runs as flow Euler (what the models were distilled and published with).
FLOW_SAMPLERS = {"euler": "FlowMatchEulerDiscreteScheduler", "euler_a": "FlowMatchEulerDiscreteScheduler"}
FLOW_DEFAULT = "euler"


def flow_sampler(name: str) -> str:
    """The sampler a flow model runs for the sampler ``name`` a job asks for."""
    return name if name in FLOW_SAMPLERS else FLOW_DEFAULT


def make_flow_scheduler(name: str, config: Any) -> Any:
    """A fresh flow-matching scheduler from the model's own config (shift, dynamic shifting)."""
    import diffusers

    cls = getattr(diffusers, FLOW_SAMPLERS[flow_sampler(name)])
    return cls.from_config(config, stochastic_sampling=True) if name == "euler_a" else cls.from_config(config)


def inference_steps(steps: int, strength: float, exact: bool) -> int:
    """What to pass as num_inference_steps so that the run has the right number of steps.

    diffusers runs int(n * strength) steps for img2img and inpaint; the WebUI
    default does the same (steps x strength). With ``exact``, n is raised so
    that exactly ``steps`` steps run. Either way at least one step runs.
    """
    if strength >= 1.0:
        return steps
    wanted = steps if exact else max(1, int(steps * strength))
    n = max(1, math.ceil(wanted / max(strength, 1e-3)))
    while int(n * strength) < wanted:
        n += 1
    while n > 1 and int((n - 1) * strength) >= wanted:
        n -= 1
    return n


def img2img_calls(scheduler: Any, steps: int, strength: float) -> int:
    """How many times an img2img run of ``steps`` inference steps calls the model (and the step
    hook), as diffusers' get_timesteps counts: second-order solvers call it about twice a step."""
    # A flow scheduler that shifts its schedule by the image size needs a shift (mu); the count does not depend on it.
    shift = {"mu": 0.0} if getattr(scheduler.config, "use_dynamic_shifting", False) else {}
    scheduler.set_timesteps(steps, **shift)
    t_start = steps - min(int(steps * strength), steps)
    return len(scheduler.timesteps[t_start * scheduler.order:])


class SchedulerTap:
    """Wraps a scheduler instance to see what the pipeline does not pass to callbacks:
    the predicted clean latent of each step (for previews), and the image latents
    and noise of add_noise (for latent blends)."""

    def __init__(self, scheduler: Any) -> None:
        self.scheduler = scheduler
        self.x0: torch.Tensor | None = None
        self.image_latents: torch.Tensor | None = None
        self.noise: torch.Tensor | None = None
        flow = hasattr(scheduler, "scale_noise")  # flow matching: x_t = (1 - sigma) x0 + sigma noise
        self.add_noise = scheduler.scale_noise if flow else scheduler.add_noise
        step = scheduler.step

        # wraps: the pipelines read step()'s signature to decide whether to pass the
        # generator; without it an ancestral or SDE sampler draws unseeded noise.
        @functools.wraps(step)
        def tapped_step(*args: Any, **kwargs: Any) -> Any:
            if flow:  # the step predicts a velocity: x0 = x_t - sigma v
                index = scheduler.step_index if scheduler.step_index is not None else 0
                sigma = scheduler.sigmas[index]
                # step(model_output, timestep, sample, ...), positionally or by name
                velocity = args[0] if args else kwargs["model_output"]
                sample = args[2] if len(args) > 2 else kwargs.get("sample")
                out = step(*args, **kwargs)
                self.x0 = sample - sigma.to(sample) * velocity if sample is not None else None
                return out
            out = step(*args, **kwargs)
            x0 = out[1] if isinstance(out, tuple) and len(out) > 1 else getattr(out, "pred_original_sample", None)
            if x0 is None:  # multistep solvers keep their x0 predictions
                outputs = getattr(scheduler, "model_outputs", None)
                x0 = outputs[-1] if outputs else None
            self.x0 = x0
            return out

        @functools.wraps(self.add_noise)
        def tapped_add_noise(original: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
            # add_noise(original, noise, timesteps); a flow scheduler's scale_noise(sample, timestep, noise)
            noise = kwargs.get("noise", args[-1] if flow else args[0]) if (args or kwargs) else None
            if self.image_latents is None:
                self.image_latents, self.noise = original, noise
            return self.add_noise(original, *args, **kwargs)

        scheduler.step = tapped_step
        if flow:
            scheduler.scale_noise = tapped_add_noise
        else:
            scheduler.add_noise = tapped_add_noise


Blend = Callable[[Any, int, torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass
class StepHook:
    """The pipeline's callback_on_step_end: applies the latent blend, reports
    progress (which raises JobCancelledError once the job is cancelled: raising
    here stops the pipeline at once, before the VAE decode), offers previews."""

    ctx: JobContext
    tap: SchedulerTap
    stage: str = "denoising"
    previews: PreviewMaker | None = None
    blend: Blend | None = None
    offset: int = 0  # steps done before this pipeline call (tiled jobs)
    total: int | None = None  # steps of the whole job, where it has several calls
    last_latents: torch.Tensor | None = None

    def __call__(self, pipe: Any, i: int, t: torch.Tensor, kwargs: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        latents = kwargs["latents"]
        if self.blend is not None:
            latents = out["latents"] = self.blend(pipe, i, t, latents)
        self.last_latents = latents
        total = self.total or (self.offset + pipe.num_timesteps)
        self.ctx.progress(self.offset + i + 1, total, self.stage)
        if self.previews is not None:
            self.previews.offer(self.tap.x0 if self.tap.x0 is not None else latents)
        return out
