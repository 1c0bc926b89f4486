"""The version rule (docs/protocol.md, "Evolving the protocol"): a client of
today meets a welcome from a newer server, with fields, a parameter type, an
input kind, a placement kind and a model kind it does not know, and keeps
working with everything it does know."""

from __future__ import annotations

import msgpack

from paintwire.hostkit.modes import model_choices, offered_modes
from paintwire.hostkit.placement import place_result
from paintwire.hostkit.request import JobSettings, build_request
from paintwire.hostkit.snapshot import Snapshot
from paintwire.protocol import (
    ClientConnection, ConnectionState, ImagePayload, InputKind, Layer, ModelKind, PixelFormat, PlacementKind, Result, Welcome, check_job,
)

LIMITS = {"max_message_bytes": 1 << 26, "max_pixels": 1 << 20, "max_side": 4096, "max_queued_per_client": 4, "max_gpu_seconds": 60}
STEPS = {"name": "steps", "type": "int", "default": 20, "label": "Steps", "help": "", "min": 1, "max": 150, "unit": "steps"}
COLOUR = {"name": "tint", "type": "colour", "default": [255, 0, 0], "label": "Tint", "help": "A colour picker, some day."}
MODES = [
    {   # known inputs, a parameter of an unknown type, an unknown placement, fields nobody reads yet
        "name": "posterize", "label": "Posterize", "help": "Fewer colours.", "order": 70, "icon": "poster.svg",
        "inputs": [{"kind": "image", "required": True, "label": "Picture", "help": "", "layer_filter": "paint"},
                   {"kind": "mask", "required": False, "label": "Selection", "help": ""},
                   {"kind": "depth_map", "required": False, "label": "Depth", "help": "An optional input of a future kind."}],
        "placement": "layers_with_blend_mode", "model_kinds": ["builtin"], "params": [STEPS, COLOUR],
    },
    {   # requires an input of a kind this client cannot gather
        "name": "control", "label": "Control", "help": "", "order": 5,
        "inputs": [{"kind": "image", "required": True}, {"kind": "control_layer", "required": True}],
        "placement": "layers", "model_kinds": ["sd15", "flux"], "params": [],
    },
]
FUTURE_WELCOME = {
    "type": "welcome", "protocol": 1, "server": "paintwire/9.0", "session": "abc",
    "capabilities": {
        "engines": [{"name": "future", "label": "Future", "modes": MODES, "vendor": "someone"}],
        "models": [{"name": "poster", "engine": "future", "kind": "builtin", "label": "Poster"},
                   {"name": "flux-dev", "engine": "future", "kind": "flux", "label": "Flux", "size_gb": 23}],
        "limits": LIMITS, "formats": ["rgba8", "bgra8", "l8", "rgba16"], "encodings": ["raw", "png", "webp"],
        "features": ["streams"],
    },
}


def _welcome() -> Welcome:
    client = ClientConnection()
    client.hello("today/1.0")
    welcome = client.receive(msgpack.packb(FUTURE_WELCOME, use_bin_type=True))
    assert isinstance(welcome, Welcome) and client.state is ConnectionState.READY
    return welcome


def test_a_future_welcome_is_readable_and_keeps_what_the_client_knows():
    caps = _welcome().capabilities
    posterize = caps.engine("future").mode("posterize")
    assert [p.name for p in posterize.params] == ["steps"]  # the colour parameter is left out; the server's default applies
    assert [i.kind for i in posterize.inputs] == [InputKind.IMAGE, InputKind.MASK, "depth_map"]
    assert posterize.placement == "layers_with_blend_mode" and not isinstance(posterize.placement, PlacementKind)
    assert posterize.needs_image and not posterize.needs_mask and posterize.mask_allowed
    assert {m.kind for m in caps.models} == {ModelKind.BUILTIN, "flux"}


def test_the_host_kit_offers_what_it_can_feed_and_sends_what_it_knows():
    caps = _welcome().capabilities
    assert [m.name for m in offered_modes(caps)] == ["posterize"]  # "control" needs a control layer
    assert [c.key for c in model_choices(caps, "posterize")] == ["future/poster"]
    snapshot = Snapshot(4, 2, bytes(32), PixelFormat.RGBA8)
    request = build_request(snapshot, caps, JobSettings("posterize", "future", "poster", {"steps": 3, "tint": "red"}))
    assert dict(request.params) == {"steps": 3} and request.mask is None  # nothing selected: the optional mask stays home
    check_job(request, caps)
    result = Result("j", (Layer(ImagePayload(4, 2, PixelFormat.RGBA8, bytes(32)), 0, 0, "Posterize"),), 4, 2)
    assert place_result(result, (4, 2), None, caps.engine("future").mode("posterize").placement).kind is PlacementKind.LAYERS
