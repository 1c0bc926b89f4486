"""The progress fraction's weights: phase costs from measurements, learned per model, and
re-weighed within a job by its first timed step."""

from __future__ import annotations

import numpy as np
import pytest

from paintwire.protocol import Phase
from paintwire.server.engines.base import EngineJob, JobContext, ProgressUpdate
from paintwire.server.engines.diffusion.costs import GB, PRIORS, SD15_BYTES, JobWork, PhaseCosts, job_work
from paintwire.server.engines.diffusion.families import family_named  # noqa: E402

SD15 = family_named("sd15")


def txt2img(steps: int = 2, side: int = 512, batch: int = 1) -> EngineJob:
    return EngineJob("j", "txt2img", {"width": side, "height": side, "steps": steps, "batch_size": batch})


def share(weights: dict[Phase, float], phase: Phase) -> float:
    return weights[phase] / sum(weights.values())


def test_a_cold_job_on_the_cpu_is_mostly_steps_not_loading():
    """The first job after a start, a full-size SD1.5 at 512x512 with 2 steps on the CPU:
    loading was weighed as 10 of 14 steps (a fraction of 0.71 once loaded, at 7.6 s of a
    152 s job); weighed by measured costs it is a small part."""
    work = job_work(txt2img(), SD15, None, True, int(SD15_BYTES), 2, True)
    weights = PhaseCosts("cpu").weights("big", work)
    assert list(weights) == [Phase.LOADING_MODEL, Phase.ENCODING, Phase.DENOISING, Phase.DECODING]
    assert share(weights, Phase.LOADING_MODEL) < 0.15
    assert share(weights, Phase.DENOISING) > 0.5
    prior = PRIORS["cpu"]
    assert weights[Phase.LOADING_MODEL] == pytest.approx(prior.load_per_gb * SD15_BYTES / GB)
    assert weights[Phase.DENOISING] == pytest.approx(2 * 0.262144 * prior.step_per_mp)
    assert weights[Phase.ENCODING] == pytest.approx(prior.prompt)  # txt2img encodes only the prompt


def test_on_a_gpu_loading_is_most_of_a_cold_job():
    work = job_work(txt2img(), SD15, None, True, int(SD15_BYTES), 2, True)
    assert share(PhaseCosts("cuda").weights("big", work), Phase.LOADING_MODEL) > 0.9


def test_the_weights_grow_with_the_work():
    costs = PhaseCosts("cpu")
    base = costs.weights("m", job_work(txt2img(4), SD15, None, False, int(SD15_BYTES), 4, True))
    more = costs.weights("m", job_work(txt2img(8, batch=2), SD15, None, False, int(SD15_BYTES), 8, True))
    assert more[Phase.DENOISING] == pytest.approx(4 * base[Phase.DENOISING])  # twice the steps, twice the images
    assert more[Phase.DECODING] == pytest.approx(2 * base[Phase.DECODING])
    cached = costs.weights("m", job_work(txt2img(4), SD15, None, False, int(SD15_BYTES), 4, False))
    assert cached[Phase.ENCODING] == 0  # a prompt found among the model's recent ones costs nothing
    image = np.zeros((1024, 1024, 4), np.uint8)
    img2img = EngineJob("j", "img2img", {"width": 0, "height": 0, "scale": 1.0, "steps": 4, "batch_size": 1}, image)
    work = job_work(img2img, SD15, 512, False, int(SD15_BYTES), 4, False)
    assert work.encode_mp == work.generate_mp == pytest.approx(1024 * 1024 / 1e6)


def test_a_model_is_weighed_by_its_measured_times_after_a_job():
    costs = PhaseCosts("cpu")
    work = JobWork(weight_gb=2.0, cold=True, encode_mp=0.25, steps=4, generate_mp=0.25)
    seconds = {Phase.LOADING_MODEL: 8.0, Phase.ENCODING: 4.0, Phase.DENOISING: 40.0, Phase.DECODING: 6.0}
    costs.learn("m", work, seconds)
    learned = costs.weights("m", work)
    # The encoding held the prompt too: what the prior says of it is taken off the image's share.
    assert learned[Phase.LOADING_MODEL] == pytest.approx(8.0) and learned[Phase.DENOISING] == pytest.approx(40.0)
    assert learned[Phase.DECODING] == pytest.approx(6.0) and learned[Phase.ENCODING] == pytest.approx(4.0)
    assert costs.weights("m", JobWork(2.0, False, 0.25, 8, 0.25))[Phase.DENOISING] == pytest.approx(80.0)  # per step
    assert costs.weights("other", work) != learned  # per model
    costs.learn("m", work, {**seconds, Phase.DENOISING: 20.0})  # a faster run: half-way there
    assert costs.weights("m", work)[Phase.DENOISING] == pytest.approx(30.0)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_first_timed_step_reweighs_the_rest_without_a_jump():
    clock = Clock()
    updates: list[ProgressUpdate] = []
    ctx = JobContext(on_progress=updates.append, clock=clock)
    ctx.plan({Phase.LOADING_MODEL: 10.0, Phase.DENOISING: 10.0, Phase.DECODING: 5.0}, {Phase.DENOISING: 4}, calibrate=Phase.DENOISING)
    ctx.phase(Phase.LOADING_MODEL, 0, 100)
    clock.now += 10
    ctx.phase(Phase.LOADING_MODEL, 100, 100)
    assert ctx.fraction == pytest.approx(0.4)  # as planned: 10 of 25
    ctx.phase(Phase.DENOISING, 0, 4)
    clock.now += 10  # the first step took 10 s, not the 2.5 s planned: four times slower
    ctx.phase(Phase.DENOISING, 1, 4)
    assert ctx.weights[Phase.DENOISING] == pytest.approx(40.0) and ctx.weights[Phase.DECODING] == pytest.approx(20.0)
    assert ctx.weights[Phase.LOADING_MODEL] == pytest.approx(10.0)
    assert ctx.fraction == pytest.approx(0.4)  # held where it was, then paced by the new weights
    ctx.phase(Phase.DENOISING, 4, 4)
    # 30 of the 50 s left after the first step are steps: 0.4 + 0.6 * 30 / 50.
    assert ctx.fraction == pytest.approx(0.4 + 0.6 * 30 / 50)
    ctx.phase(Phase.DECODING, 1, 1)
    assert ctx.fraction == pytest.approx(1.0)
    assert [u.fraction for u in updates] == sorted(u.fraction for u in updates)
    clock.now += 5
    assert ctx.seconds() == {Phase.LOADING_MODEL: pytest.approx(10.0), Phase.DENOISING: pytest.approx(10.0), Phase.DECODING: pytest.approx(5.0)}
