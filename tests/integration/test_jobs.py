"""Jobs through the real server with the real client: inpaint, upscale, formats, events."""

from __future__ import annotations

import json
import urllib.request

import numpy as np
import pytest
from helpers import inpaint_request, layer_pixels, mask_payload, rect_mask, rgba_payload, scene

from paintwire.protocol import Client, ImagePayload, JobRequest, PixelFormat
from paintwire.protocol.images import Encoding
from paintwire.server import masks
from paintwire.server.layers import OutputLayer
from paintwire.server.imaging import encode_png
from paintwire.server.region import flatten


@pytest.fixture
def client(live_server):
    with Client(live_server.url, name="test") as c:
        yield c


@pytest.mark.parametrize("method", ["telea", "ns", "fill"])
def test_inpaint_replaces_the_masked_area_and_keeps_the_rest_bit_exact(client, method):
    img = scene()
    mask = rect_mask(160, 120, 40, 30, 40, 40)  # covers part of the red diagonal
    events = []
    result = client.run(inpaint_request(img, mask, method=method, mask_blur=3), on_event=events.append)

    assert [e.TYPE for e in events[:2]] == ["queued", "started"]
    assert events[-1].TYPE == "result" and any(e.TYPE == "progress" for e in events)
    assert (result.width, result.height) == (160, 120)
    (layer,) = result.layers
    soft = masks.feather(mask, 3)
    box = masks.bounds(soft)
    assert box == masks.bounds(mask)  # the feather stays inside the selection
    # The layer covers exactly the feathered mask's bounds, with the feathered mask as alpha.
    assert (layer.x, layer.y, layer.image.width, layer.image.height) == (box.x, box.y, box.width, box.height)
    pixels = layer_pixels(layer)
    assert np.array_equal(pixels[..., 3], masks.crop(soft, box))
    out = flatten(img, OutputLayer(pixels, layer.x, layer.y, layer.name))
    assert np.array_equal(out[mask == 0], img[mask == 0])  # the README's promise, with default settings
    # The red stroke inside the hard mask is gone.
    core = out[45:55, 45:55, :3].astype(int)
    assert (np.abs(core - [255, 0, 0]).sum(axis=2) > 100).all()
    assert layer.settings["method"] == method and layer.settings["mask_blur"] == 3


def test_outward_mask_blur_blends_beyond_the_selection_as_the_webui_does(client):
    img = scene()
    mask = rect_mask(160, 120, 40, 30, 40, 40)
    (layer,) = client.run(inpaint_request(img, mask, mask_blur=3, mask_blur_outward=True)).layers
    soft = masks.blur(mask, 3)
    box = masks.bounds(soft)
    assert (layer.x, layer.y, layer.image.width, layer.image.height) == (box.x, box.y, box.width, box.height)
    assert np.array_equal(layer_pixels(layer)[..., 3], masks.crop(soft, box))
    out = flatten(img, OutputLayer(layer_pixels(layer), layer.x, layer.y, layer.name))
    assert not np.array_equal(out[mask == 0], img[mask == 0])  # pixels outside the selection changed


def test_bgra_in_and_out_gives_the_same_pixels_as_rgba(client):
    img = scene()
    mask = rect_mask(160, 120, 10, 10, 30, 20)
    rgba_result = client.run(inpaint_request(img, mask))
    bgra = ImagePayload(160, 120, PixelFormat.BGRA8, img[..., [2, 1, 0, 3]].tobytes())
    request = JobRequest("classical", "inpaint", bgra, mask_payload(mask), output_format=PixelFormat.BGRA8)
    bgra_result = client.run(request)
    a, b = rgba_result.layers[0], bgra_result.layers[0]
    assert (a.x, a.y) == (b.x, b.y) and b.image.format is PixelFormat.BGRA8
    assert np.array_equal(layer_pixels(a), layer_pixels(b)[..., [2, 1, 0, 3]])


def test_png_encoded_input_is_accepted(client):
    img = scene()
    mask = rect_mask(160, 120, 10, 10, 30, 20)
    png = ImagePayload(160, 120, PixelFormat.RGBA8, encode_png(img), Encoding.PNG)
    png_mask = ImagePayload(160, 120, PixelFormat.L8, encode_png(mask), Encoding.PNG)
    via_png = client.run(JobRequest("classical", "inpaint", png, png_mask))
    via_raw = client.run(inpaint_request(img, mask))
    assert np.array_equal(layer_pixels(via_png.layers[0]), layer_pixels(via_raw.layers[0]))


def test_invert_mask_regenerates_everything_else(client):
    img = scene()
    mask = np.full((120, 160), 255, np.uint8)
    mask[20:100, 20:140] = 0
    result = client.run(inpaint_request(img, masks.invert(mask), invert_mask=True, mask_blur=0))
    layer = result.layers[0]
    assert (layer.x, layer.y, layer.image.width, layer.image.height) == (0, 0, 160, 120)
    alpha = layer_pixels(layer)[..., 3]
    assert alpha[60, 80] == 0 and alpha[5, 5] == 255


def test_upscale_makes_a_bigger_canvas(client):
    img = scene(64, 48)
    img[..., 3] = 255
    img[:10, :10, 3] = 0  # a transparent corner stays transparent
    result = client.run(JobRequest("classical", "upscale", rgba_payload(img), params={"scale": 2.5}))
    assert (result.width, result.height) == (160, 120)
    (layer,) = result.layers
    pixels = layer_pixels(layer)
    assert (layer.x, layer.y, pixels.shape) == (0, 0, (120, 160, 4))
    assert pixels[2, 2, 3] == 0 and pixels[100, 100, 3] == 255
    explicit = client.run(JobRequest("classical", "upscale", rgba_payload(img), params={"width": 100, "height": 50}))
    assert (explicit.width, explicit.height) == (100, 50)


def test_http_health_and_info(live_server):
    with urllib.request.urlopen(live_server.http + "/health", timeout=10) as r:
        assert json.load(r)["status"] == "ok"
    with urllib.request.urlopen(live_server.http + "/info", timeout=10) as r:
        info = json.load(r)
    names = [e["name"] for e in info["capabilities"]["engines"]]
    assert "classical" in names and info["protocol"] == 1
