"""Through the real server: honest progress, models found without a restart (pushed to the
clients that asked, or on request), models that cannot load listed with their reason, a
model switch that does not stall other clients, and the log of an expected failure."""

from __future__ import annotations

import json
import shutil
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from diffusion_fixtures import picture, tiny_models_dir  # noqa: F401
from helpers import inpaint_request, rect_mask, rgba_payload, scene

from fixtures.tiny_models import SD15, SDXL
from paintwire.protocol import CapabilitiesUpdate, Client, ErrorCode, JobCancelled, JobFailed, JobRequest, Phase, Progress, Started

FAST = {"steps": 2, "seed": 7, "prompt": "a red apple"}


def phases(events) -> list[str]:
    seen = [e.phase for e in events if isinstance(e, Progress)]
    return [p for i, p in enumerate(seen) if i == 0 or seen[i - 1] != p]


def test_the_first_progress_names_the_preparation_and_each_phase_follows(start_server):
    server = start_server()
    events = []
    with Client(server.url, name="phases-test", timeout=60) as client:
        client.run(inpaint_request(scene(), rect_mask(160, 120, 10, 10, 20, 20), method="ns"), on_event=events.append)
    i = next(i for i, e in enumerate(events) if isinstance(e, Started))
    first = events[i + 1]
    assert isinstance(first, Progress) and first.phase == Phase.PREPARING.value and first.fraction == 0.0
    assert phases(events) == [Phase.PREPARING.value, Phase.WORKING.value, Phase.FINISHING.value]
    fractions = [e.fraction for e in events if isinstance(e, Progress)]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0


@pytest.fixture
def model_dir(tmp_path, tiny_models_dir):  # noqa: F811
    """A model folder with one checkpoint, to which tests copy more."""
    folder = tmp_path / "models"
    shutil.copytree(tiny_models_dir / "checkpoints" / SD15, folder / SD15)
    return folder


def diffusers(start_server, folder: Path, **config):
    return start_server(model_dirs=[str(folder)], engines=["classical", "diffusers"], previews_per_second=0.0, **config)


def names(caps, usable=True):
    return sorted(m.name for m in caps.models if m.engine == "diffusers" and m.usable == usable)


def test_a_model_copied_in_is_pushed_to_clients_that_asked_and_others_can_refresh(start_server, model_dir, tiny_models_dir):  # noqa: F811
    server = diffusers(start_server, model_dir, model_rescan_seconds=0.2)
    with Client(server.url, name="watcher", timeout=60, updates=True) as watcher, Client(server.url, name="plain", timeout=60) as plain:
        assert names(watcher.capabilities) == [SD15]
        shutil.copytree(tiny_models_dir / "checkpoints" / SDXL, model_dir / "new-xl")
        # A folder that looks like a model but lacks its tokenizer: listed, with the reason, never offered.
        shutil.copytree(tiny_models_dir / "checkpoints" / SD15, model_dir / "half")
        shutil.rmtree(model_dir / "half" / "tokenizer")
        pushed = None
        deadline = time.monotonic() + 60
        while pushed is None or names(pushed) != sorted([SD15, "new-xl"]):
            assert time.monotonic() < deadline, "no capabilities message for the new model"
            message = next(watcher.events(timeout=60))
            if isinstance(message, CapabilitiesUpdate):
                pushed = message.capabilities
        assert watcher.capabilities == pushed  # the client's view is updated: no reconnect
        assert names(pushed, usable=False) == ["half"]
        problem = next(m.problem for m in pushed.models if m.name == "half")
        assert "tokenizer" in problem and "vocab.json" in problem
        # A client that did not ask for updates got nothing; its refresh brings the same list.
        assert plain.poll() == []
        assert names(plain.rescan()) == sorted([SD15, "new-xl"])
        # The new model runs at once; the unusable one is refused with its reason.
        assert plain.run(JobRequest("diffusers", "txt2img", model="new-xl", params={**FAST, "width": 64, "height": 64}), timeout=120).layers
        with pytest.raises(JobFailed) as info:
            plain.run(JobRequest("diffusers", "txt2img", model="half", params=FAST), timeout=60)
        assert info.value.error.code is ErrorCode.UNKNOWN_MODEL and "tokenizer" in info.value.error.message
        # A model removed is gone for new jobs.
        shutil.rmtree(model_dir / "new-xl")
        assert names(plain.rescan()) == [SD15]
        with pytest.raises(JobFailed) as info:
            plain.run(JobRequest("diffusers", "txt2img", model="new-xl", params=FAST), timeout=60)
        assert info.value.error.code is ErrorCode.UNKNOWN_MODEL


def test_loading_a_model_does_not_stall_other_clients(start_server, model_dir, tiny_models_dir):  # noqa: F811
    shutil.copytree(tiny_models_dir / "checkpoints" / SDXL, model_dir / SDXL)
    server = diffusers(start_server, model_dir, model_rescan_seconds=0)
    loading = threading.Event()
    events = []
    done = threading.Event()

    def painter() -> None:
        def on_event(e):
            events.append(e)
            if isinstance(e, Progress) and e.phase == Phase.LOADING_MODEL.value:
                loading.set()

        with Client(server.url, name="switcher", timeout=120) as c:
            c.run(JobRequest("diffusers", "txt2img", model=SDXL, params={**FAST, "steps": 6, "width": 64, "height": 64}),
                  on_event=on_event, timeout=120)
        done.set()

    thread = threading.Thread(target=painter)
    thread.start()
    try:
        assert loading.wait(60), "the switch never reported loading the model"
        # While the model loads: another client connects, queues a job, cancels it, and the
        # server answers its HTTP health check.
        with Client(server.url, name="other", timeout=30) as other:
            with pytest.raises(JobCancelled):
                other.run(inpaint_request(scene(), rect_mask(160, 120, 10, 10, 20, 20)),
                          on_event=lambda e: e.TYPE == "queued" and other.cancel(e.job), timeout=30)
        with urllib.request.urlopen(server.http + "/health", timeout=30) as r:
            assert json.load(r)["status"] == "ok"
        assert not done.is_set()  # all of it while the switch was still under way
    finally:
        thread.join(180)
    loads = [(e.step, e.total) for e in events if isinstance(e, Progress) and e.phase == Phase.LOADING_MODEL.value]
    assert loads[-1][0] == loads[-1][1] > 1  # "loading model" with its parts counted
    assert phases(events)[-3:] == [Phase.DENOISING.value, Phase.DECODING.value, Phase.FINISHING.value]


def test_an_expected_load_failure_is_one_log_line(start_server, model_dir):
    # A checkpoint whose UNet weights are damaged after the scan: the load fails as a user would see it.
    server = diffusers(start_server, model_dir, model_rescan_seconds=0)
    weights = next((model_dir / SD15 / "unet").glob("*.safetensors"))
    weights.write_bytes(weights.read_bytes()[:4096])
    with Client(server.url, name="broken", timeout=60) as client:
        with pytest.raises(JobFailed) as info:
            client.run(JobRequest("diffusers", "txt2img", model=SD15, params=FAST), timeout=120)
    assert info.value.error.code is ErrorCode.ENGINE_FAILED and SD15 in info.value.error.message
    log = server.log()
    lines = [line for line in log.splitlines() if SD15 in line and "could not be loaded" in line]
    assert len(lines) == 1 and " WARNING " in lines[0], log
    assert "Traceback" not in log, log
