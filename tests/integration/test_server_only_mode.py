"""A mode that only the server knows: an engine named in the configuration as
``module:Class`` (tests/fixtures/server_only_engine.py) is described in the
capabilities, offered by the host kit, and runs from a request the kit builds,
with nothing about it in any plug-in."""

from __future__ import annotations

import numpy as np

from paintwire.hostkit.form import FieldKind, fields
from paintwire.hostkit.modes import model_choices, offered_modes
from paintwire.hostkit.placement import place_result
from paintwire.hostkit.request import JobSettings, build_request, prompt_of
from paintwire.hostkit.snapshot import Snapshot
from paintwire.protocol import Client, PixelFormat, PlacementKind

from fixtures.server_only_engine import posterize

ENGINE = "fixtures.server_only_engine:PosterizeEngine"


def test_a_configured_engines_mode_is_offered_and_runs(start_server):
    server = start_server(engines=["classical", ENGINE])
    width, height = 12, 8
    rng = np.random.default_rng(3)
    picture = rng.integers(0, 256, (height, width, 4), dtype=np.uint8)
    picture[..., 3] = 255
    selection = np.zeros((height, width), np.uint8)
    selection[2:6, 3:9] = 255
    with Client(server.url) as client:
        caps = client.capabilities
        mode = next(m for m in offered_modes(caps) if m.name == "posterize")
        assert (mode.label, mode.order, mode.placement) == ("Posterize", 70, PlacementKind.LAYERS)
        assert [m.name for m in offered_modes(caps)] == ["inpaint", "upscale", "posterize"]  # the server's order
        (choice,) = model_choices(caps, "posterize")
        assert (choice.engine, choice.model, choice.label) == ("extras", None, "Extras (test engine)")
        palette = next(f for f in fields(mode, {}) if f.name == "palette")
        assert palette.kind == FieldKind.CHOICE and palette.choices == (("colour", "Colour"), ("grey", "Greyscale")) and palette.advanced
        snap = Snapshot(width, height, picture.tobytes(), PixelFormat.RGBA8, selection=selection.tobytes())
        request = build_request(snap, caps, JobSettings("posterize", "extras", None, {"levels": 3}))
        result = client.run(request)
    placement = place_result(result, (width, height), prompt_of(request.params), mode.placement)
    (layer,) = placement.layers
    got = np.frombuffer(layer.pixels, np.uint8).reshape(layer.height, layer.width, 4)
    want = posterize(picture, 3, grey=False)
    inside = selection == 255
    assert np.array_equal(got[inside, :3], want[inside, :3]) and (got[inside, 3] == 255).all()
    assert (got[~inside, 3] == 0).all()  # outside the selection the layer is transparent: the picture stays


def test_an_engine_that_cannot_be_loaded_is_skipped_with_a_reason(start_server):
    server = start_server(engines=["classical", "no_such_module:Engine", "fixtures.server_only_engine:posterize"])
    with Client(server.url) as client:
        assert [e.name for e in client.capabilities.engines] == ["classical"]
    log = server.log()
    assert "'no_such_module:Engine' not loaded" in log and "is not a paintwire.server.engines.base.Engine subclass" in log
