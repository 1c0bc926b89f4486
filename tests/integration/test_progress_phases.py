"""Progress through the real server with tiny models: a cold model's load reported part by
part as it happens, the prompt's encoding reported as `encoding` (warm models too), and a
fraction that never goes back and follows the weights the engine computes."""

from __future__ import annotations

from pathlib import Path

import pytest
from diffusion_fixtures import hf_cache_dir, start_with_cache, tiny_models_dir  # noqa: F401

from fixtures.tiny_models import SD15
from paintwire.protocol import Client, JobRequest, Phase, Progress
from paintwire.server.engines.base import EngineJob
from paintwire.server.engines.diffusion.costs import PhaseCosts, job_work
from paintwire.server.engines.diffusion.families import family_named
from paintwire.server.engines.diffusion.generate import PROMPT_STAGE
from paintwire.server.engines.diffusion.load_progress import IMPORT_STAGE, LOAD_PARTS, weight_bytes

PARAMS = {"steps": 3, "seed": 7, "width": 64, "height": 64}


@pytest.fixture(scope="module")
def server(tiny_models_dir: Path, hf_cache_dir: Path):  # noqa: F811
    """A server of its own: its models are all cold when the module starts."""
    server = start_with_cache(hf_cache_dir, model_dirs=[str(tiny_models_dir)], engines=["diffusers"])
    yield server
    server.stop()


def progress_of(client: Client, prompt: str) -> list[Progress]:
    events: list = []
    request = JobRequest("diffusers", "txt2img", model=SD15, params={**PARAMS, "prompt": prompt})
    client.run(request, on_event=events.append, timeout=180)
    return [e for e in events if isinstance(e, Progress)]


def runs(progress: list[Progress]) -> list[str]:
    return [p.phase for i, p in enumerate(progress) if i == 0 or progress[i - 1].phase != p.phase]


def test_a_cold_then_a_warm_job_report_every_phase_by_its_name(server, tiny_models_dir):  # noqa: F811
    with Client(server.url, name="progress-test", timeout=180) as client:
        cold = progress_of(client, "a red apple")
        warm = progress_of(client, "a green pear")  # warm model, a prompt it has not encoded yet

    assert runs(cold) == ["preparing", "loading_model", "encoding", "denoising", "decoding", "finishing"]
    loading = [p for p in cold if p.phase == "loading_model"]
    assert (loading[0].step, loading[0].total) == (0, LOAD_PARTS) and (loading[-1].step, loading[-1].total) == (LOAD_PARTS, LOAD_PARTS)
    assert [p.step for p in loading] == sorted(p.step for p in loading)
    stages = [p.stage for p in loading]
    assert {"loading text encoder", "loading vae", "loading unet"} <= set(stages)  # each part as it loads
    parts = [s for s in stages if s.startswith("loading ") and s != "loading model"]
    one_by_one = [s for i, s in enumerate(parts) if i == 0 or parts[i - 1] != s]
    assert len(one_by_one) == len(set(one_by_one))  # each part reported while it loads, then the next
    assert IMPORT_STAGE in stages[:3]  # the first load after a start says it is importing diffusers
    encoding = [(p.step, p.total, p.stage) for p in cold if p.phase == "encoding"]
    assert encoding == [(0, 1, PROMPT_STAGE), (1, 1, PROMPT_STAGE)]

    # The first job of a model is weighed by the engine's priors; the fraction reaches each
    # phase's share of them as the phase ends (no step has been timed before the denoising).
    folder = tiny_models_dir / "checkpoints" / SD15
    work = job_work(EngineJob("j", "txt2img", {**PARAMS, "batch_size": 1}), family_named("sd15"), None, True,
                    sum(weight_bytes(folder).values()), PARAMS["steps"], True)
    weights = PhaseCosts("cpu").weights(SD15, work)
    whole = sum(weights.values())
    assert loading[-1].fraction == pytest.approx(weights[Phase.LOADING_MODEL] / whole, abs=1e-4)
    encoded = [p for p in cold if p.phase == "encoding"][-1]
    assert encoded.fraction == pytest.approx((weights[Phase.LOADING_MODEL] + weights[Phase.ENCODING]) / whole, abs=1e-4)

    assert runs(warm) == ["preparing", "encoding", "denoising", "decoding", "finishing"]
    assert [p.stage for p in warm if p.phase == "encoding"] == [PROMPT_STAGE, PROMPT_STAGE]
    for progress in (cold, warm):
        fractions = [p.fraction for p in progress]
        assert fractions == sorted(fractions) and fractions[0] == 0.0 and fractions[-1] == pytest.approx(1.0)
        steps = [p.step for p in progress if p.phase == "denoising"]
        assert steps == list(range(PARAMS["steps"] + 1))
