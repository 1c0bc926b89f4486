"""A server stops at once: within a couple of seconds of SIGTERM or SIGINT, with the
diffusers engine loaded and after (or during) a job.

Host tests start and stop servers all the time; one that lingered for 15 s after a
diffusers job (the interpreter's teardown of torch's objects) made them flaky."""

from __future__ import annotations

import signal
import threading
import time

import pytest
from server_process import start_server_process

from paintwire.protocol import Client, JobFailed, JobRequest

pytest.importorskip("diffusers")
from fixtures.tiny_models import build_tiny_sd15  # noqa: E402

pytestmark = pytest.mark.slow

# The aim is 2 s; the bound leaves room for a loaded test machine.
EXIT_BOUND_SECONDS = 5.0
JOB = {"prompt": "a red apple", "width": 64, "height": 64}


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("models")
    build_tiny_sd15(folder / "tiny_sd15")
    return folder


def _seconds_to_exit(server, sig: signal.Signals) -> float:
    began = time.monotonic()
    server.process.send_signal(sig)
    code = server.process.wait(60)
    took = time.monotonic() - began
    assert code == 0, server.log()
    return took


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_the_server_exits_at_once_after_a_diffusers_job(models, sig):
    server = start_server_process(model_dirs=[str(models)], engines=["classical", "diffusers"])
    try:
        with Client(server.url, name="shutdown-test", timeout=120) as client:
            assert client.run(JobRequest("diffusers", "txt2img", model="tiny_sd15", params={**JOB, "steps": 2}), timeout=120).layers
        took = _seconds_to_exit(server, sig)
    finally:
        server.stop()
    print(f"\nexit after {sig.name}: {took:.2f} s")
    assert took < EXIT_BOUND_SECONDS, server.log()


def test_the_server_exits_at_once_while_a_diffusers_job_runs(models):
    server = start_server_process(model_dirs=[str(models)], engines=["classical", "diffusers"])
    outcome: list[object] = []
    try:
        with Client(server.url, name="shutdown-test", timeout=120) as client:
            started = threading.Event()

            def run() -> None:
                try:
                    client.run(JobRequest("diffusers", "txt2img", model="tiny_sd15", params={**JOB, "steps": 150}),
                               on_event=lambda e: started.set() if e.TYPE == "progress" else None, timeout=120)
                    outcome.append("finished")
                except JobFailed as exc:
                    outcome.append(exc.error.code.value)
                except Exception as exc:  # the connection closed under the job
                    outcome.append(type(exc).__name__)

            worker = threading.Thread(target=run, daemon=True)
            worker.start()
            assert started.wait(120), "the job never made progress"
            took = _seconds_to_exit(server, signal.SIGTERM)
            worker.join(10)
    finally:
        server.stop()
    print(f"\nexit during a job: {took:.2f} s")
    assert outcome and outcome[0] != "finished"
    assert took < EXIT_BOUND_SECONDS, server.log()
