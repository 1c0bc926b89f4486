"""The server listens before its slow engines have started: /health and the classical
engine answer at once, a slow engine is listed as starting (no modes, a notice), and
a client that asked for updates is sent the new capabilities when it is ready."""

from __future__ import annotations

import json
import threading
import urllib.request

import numpy as np
import pytest
from helpers import rgba_payload, scene
from server_process import start_server_process

from fixtures.gated_engine import GATE
from paintwire.hostkit import modes as kit_modes
from paintwire.protocol import CapabilitiesUpdate, Client, ClientError, EngineStatus, ErrorCode, JobFailed, JobRequest

SPEC = "fixtures.gated_engine:GatedEngine"


def test_a_slow_engine_starts_after_the_server_answers_and_clients_are_told(tmp_path, monkeypatch):
    gate = tmp_path / "gate"
    monkeypatch.setenv(GATE, str(gate))  # the server's environment: its engine waits for this file
    server = start_server_process(engines=["classical", SPEC], wait_ready=False)
    try:
        with urllib.request.urlopen(server.http + "/health", timeout=10) as response:
            assert response.status == 200 and json.loads(response.read())["status"] == "ok"
        with Client(server.url, name="early", updates=True, timeout=60) as client:
            engines = {e.name: e for e in client.capabilities.engines}
            assert engines["classical"].status == EngineStatus.READY and engines["classical"].modes
            starting = engines[SPEC]
            assert starting.starting and starting.modes == () and "starting" in starting.notice
            # A plug-in offers what is ready and says what is starting.
            assert "posterize" not in {m.name for m in kit_modes.offered_modes(client.capabilities)}
            assert starting.notice in kit_modes.engine_notices(client.capabilities)
            picture = rgba_payload(scene(32, 32))
            assert client.run(JobRequest("classical", "upscale", picture, params={"scale": 2.0}), timeout=60).layers
            assert "Paintwire ready" not in server.log(), "the engine started before it was let"
            with pytest.raises(JobFailed) as refused:  # a job for it now is told why
                client.run(JobRequest(SPEC, "posterize", picture), timeout=60)
            assert refused.value.error.code is ErrorCode.UNKNOWN_MODE and "starting" in refused.value.error.message

            with Client(server.url, name="no-updates", timeout=60) as plain, pytest.raises(ClientError, match="did not start"):
                plain.wait_until_started(60)  # it never hears of the start: it is told so, not left waiting
            waited: list = []
            waiter = Client(server.url, name="waiter", updates=True, timeout=60)  # as the CLI and GIMP wait
            waiter.connect()
            thread = threading.Thread(target=lambda: waited.append(waiter.wait_until_started(60)), daemon=True)
            thread.start()

            gate.touch()
            thread.join(60)
            waiter.close()
            assert waited and not any(e.starting for e in waited[0].engines)
            update = next(m for m in client.events(60) if isinstance(m, CapabilitiesUpdate))
            ready = {e.name: e for e in update.capabilities.engines}
            assert SPEC not in ready and ready["gated"].status == EngineStatus.READY and not ready["gated"].notice
            assert client.capabilities == update.capabilities
            assert "posterize" in {m.name for m in kit_modes.offered_modes(client.capabilities)}
            result = client.run(JobRequest("gated", "posterize", picture, params={"levels": 2}), timeout=60)
            levels = np.unique(np.frombuffer(result.layers[0].image.data, np.uint8).reshape(-1, 4)[:, :3])
            assert len(levels) <= 2
    finally:
        assert server.stop() == 0, server.log()
    log = server.log()
    assert log.index("Paintwire serving on") < log.index("Paintwire ready") and "gated (posterize)" in log
