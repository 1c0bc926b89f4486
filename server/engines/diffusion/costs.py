"""What each phase of a job costs, in seconds, so that the overall fraction tracks time.

The fraction weighs a job's phases by their cost (JobContext.plan). Costs are
kept per unit of work, per model:

- loading: seconds per GB of the model's weight files;
- encoding: seconds per megapixel of image the VAE encodes, plus one prompt;
- denoising: seconds per step per megapixel generated;
- decoding: seconds per megapixel decoded.

A model's first job uses ``PRIORS``: the costs measured at real size (SD1.5,
512x512, fp32 on a 2-core CPU; fp16 on a GPU), scaled by the model's weight
bytes against SD1.5's, as compute grows with the networks' size. After each job
the seconds it spent in each phase replace the model's costs (a moving
average), so the next job is weighed by what this server measured. And within
a job, its first denoising step, once timed, re-weighs the work left
(JobContext's ``calibrate``): a slower or busier machine than planned moves the
fraction at its own pace from the second step on.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from paintwire.protocol import Phase

from ..base import EngineJob

if TYPE_CHECKING:
    from .families.base import Family

GB = 1e9
SD15_BYTES = 2.13 * GB  # an SD1.5 single file in fp16: the size the priors were measured at
LEARNING_RATE = 0.5  # each job's measurement counts half: follows a busier machine within a few jobs


@dataclass(frozen=True)
class Costs:
    """Seconds per unit of each phase (see the module's docstring), for an SD1.5-size model."""

    load_per_gb: float
    prompt: float
    encode_per_mp: float
    step_per_mp: float
    decode_per_mp: float
    upscale_per_mp: float


# Measured with full-size SD1.5 weights: on the CPU by `./run bench real_size` and the issue's
# figures on the 2-core EPYC (a 512x512 step 15-20 s, a VAE encode 12 s, a load 7-8 s for 2.1 GB);
# on a GPU, the orders of magnitude of an SD1.5 job in fp16 (a 512x512 step in about 40 ms).
PRIORS = {
    "cpu": Costs(load_per_gb=3.5, prompt=1.0, encode_per_mp=45.0, step_per_mp=65.0, decode_per_mp=90.0, upscale_per_mp=2.0),
    "gpu": Costs(load_per_gb=2.0, prompt=0.02, encode_per_mp=0.15, step_per_mp=0.15, decode_per_mp=0.3, upscale_per_mp=0.5),
}


@dataclass(frozen=True)
class JobWork:
    """How much work a job's phases hold, in the units of Costs."""

    weight_gb: float  # the model's weight files
    cold: bool  # the model loads first
    encode_mp: float  # image megapixels the VAE encodes (0 for txt2img)
    steps: int
    generate_mp: float  # megapixels generated per step (every image of the batch)
    upscale_mp: float = 0.0  # output megapixels of an upscale
    prompt: bool = True  # the prompt is encoded (not found among the model's recent prompts)

    def units(self) -> dict[Phase, float]:
        """The work of each phase the job goes through, in order."""
        units: dict[Phase, float] = {Phase.LOADING_MODEL: self.weight_gb} if self.cold else {}
        if self.upscale_mp:
            units[Phase.UPSCALING] = self.upscale_mp
        units[Phase.ENCODING] = self.encode_mp
        units[Phase.DENOISING] = self.steps * self.generate_mp
        units[Phase.DECODING] = self.generate_mp
        return units


MP = 1e6


def job_work(job: EngineJob, family: Family, native: int | None, cold: bool, weight_bytes: int, steps: int, prompt: bool) -> JobWork:
    """The work of ``job`` on a model of ``family`` (``native``: its side, when loaded), from
    its parameters alone: the sizes are estimates (an inpaint's region is only known once
    the mode has read the mask), which the first timed step corrects."""
    p = job.params
    side = native or family.native_size
    image_mp = job.image.shape[0] * job.image.shape[1] / MP if job.image is not None else 0.0
    sized = p.get("width") and p.get("height")
    upscale_mp = 0.0
    if job.mode == "txt2img":
        run_mp = (p.get("width") or side) * (p.get("height") or side) / MP
    elif job.mode == "img2img":
        run_mp = p["width"] * p["height"] / MP if sized else image_mp * p.get("scale", 1.0) ** 2
    elif job.mode == "upscale":  # refined tile by tile over the whole result
        run_mp = upscale_mp = p["width"] * p["height"] / MP if sized else image_mp * p.get("scale", 1.0) ** 2
    elif p.get("inpaint_area") == "whole_picture" or (job.mode == "edit" and job.mask is None):  # an edit of all of it too
        run_mp = image_mp
    else:  # a selection's region, generated at about the model's own size
        run_mp = side * side / MP
    return JobWork(weight_bytes / GB, cold, 0.0 if job.mode == "txt2img" else run_mp, steps,
                   run_mp * p.get("batch_size", 1), upscale_mp, prompt)


@dataclass
class _Learned:
    per_unit: dict[Phase, float] = field(default_factory=dict)
    prompt: float | None = None


class PhaseCosts:
    """Each model's costs per unit of work, learned from the jobs it ran (thread-safe)."""

    def __init__(self, device_kind: str) -> None:
        self.prior = PRIORS["cpu" if device_kind == "cpu" else "gpu"]
        self._learned: dict[str, _Learned] = {}
        self._lock = threading.Lock()

    def _prior_per_unit(self, weight_gb: float) -> dict[Phase, float]:
        scale, p = _scale(weight_gb), self.prior
        return {Phase.LOADING_MODEL: p.load_per_gb, Phase.ENCODING: p.encode_per_mp * scale, Phase.DENOISING: p.step_per_mp * scale,
                Phase.DECODING: p.decode_per_mp * scale, Phase.UPSCALING: p.upscale_per_mp}

    def weights(self, model: str, work: JobWork) -> dict[Phase, float]:
        """Seconds each phase of ``work`` should take on ``model``, in the phases' order."""
        with self._lock:
            learned = self._learned.get(model, _Learned())
            per_unit = {**self._prior_per_unit(work.weight_gb), **learned.per_unit}
            prompt = learned.prompt if learned.prompt is not None else self.prior.prompt * _scale(work.weight_gb)
        weights = {phase: units * per_unit[phase] for phase, units in work.units().items()}
        if work.prompt:
            weights[Phase.ENCODING] += prompt
        return weights

    def learn(self, model: str, work: JobWork, seconds: dict[Phase, float]) -> None:
        """Fold one finished job's time per phase into ``model``'s costs."""
        with self._lock:
            learned = self._learned.setdefault(model, _Learned())
            spent = dict(seconds)
            if work.prompt and work.encode_mp == 0 and spent.get(Phase.ENCODING, 0.0) > 0:
                learned.prompt = _average(learned.prompt, spent[Phase.ENCODING])  # txt2img: encoding is the prompt
            elif work.prompt and Phase.ENCODING in spent:
                prompt = learned.prompt if learned.prompt is not None else self.prior.prompt * _scale(work.weight_gb)
                spent[Phase.ENCODING] -= min(prompt, spent[Phase.ENCODING] / 2)
            for phase, units in work.units().items():
                if units > 0 and spent.get(phase, 0.0) > 0:
                    learned.per_unit[phase] = _average(learned.per_unit.get(phase), spent[phase] / units)

    def forget(self, model: str) -> None:
        with self._lock:
            self._learned.pop(model, None)


def _scale(weight_gb: float) -> float:
    """A model's compute against SD1.5's: it grows with the networks' size."""
    return max(weight_gb * GB / SD15_BYTES, 1e-6)


def _average(old: float | None, new: float) -> float:
    return new if old is None else old + LEARNING_RATE * (new - old)
