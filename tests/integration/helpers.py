"""Small image makers and raw-frame helpers for the integration tests."""

from __future__ import annotations

import json
import time
import urllib.request

import numpy as np

from paintwire.protocol.client import open_websocket
from paintwire.protocol import Client, Hello, ImagePayload, JobCancelled, JobRequest, PixelFormat, decode_server_message, encode


def scene(width: int = 160, height: int = 120) -> np.ndarray:
    """An RGBA test picture: a gradient with a red diagonal stroke; opaque."""
    img = np.zeros((height, width, 4), np.uint8)
    img[..., 0] = np.linspace(0, 200, width, dtype=np.uint8)[None, :]
    img[..., 1] = np.linspace(30, 220, height, dtype=np.uint8)[:, None]
    img[..., 2] = 90
    img[..., 3] = 255
    for i in range(min(width, height)):
        img[i, max(0, i - 2) : i + 3, :3] = (255, 0, 0)
    return img


def rect_mask(width: int, height: int, x: int, y: int, w: int, h: int) -> np.ndarray:
    mask = np.zeros((height, width), np.uint8)
    mask[y : y + h, x : x + w] = 255
    return mask


def rgba_payload(img: np.ndarray) -> ImagePayload:
    return ImagePayload(img.shape[1], img.shape[0], PixelFormat.RGBA8, img.tobytes())


def mask_payload(mask: np.ndarray) -> ImagePayload:
    return ImagePayload(mask.shape[1], mask.shape[0], PixelFormat.L8, mask.tobytes())


def inpaint_request(img: np.ndarray, mask: np.ndarray, **params) -> JobRequest:
    return JobRequest("classical", "inpaint", rgba_payload(img), mask_payload(mask), params=params)


def layer_pixels(layer) -> np.ndarray:
    return np.frombuffer(layer.image.data, np.uint8).reshape(layer.image.height, layer.image.width, -1)


def run_and_cancel(client: Client, request: JobRequest, stage: str, timeout: float = 120) -> list:
    """Run ``request`` and cancel it at its first progress event of ``stage``; returns every
    event (the run must end cancelled)."""
    events: list = []
    ids: dict = {}

    def on_event(e) -> None:
        events.append(e)
        if e.TYPE == "queued":
            ids["job"] = e.job
        if e.TYPE == "progress" and e.stage == stage and e.step >= 1 and "sent" not in ids:
            ids["sent"] = True
            client.cancel(ids["job"])

    try:
        client.run(request, on_event=on_event, timeout=timeout)
    except JobCancelled:
        return events
    raise AssertionError(f"the job was not cancelled; events: {[e.TYPE for e in events]}")


class RawConnection:
    """A websocket that sends arbitrary frames and decodes what comes back, for bad-input tests."""

    def __init__(self, url: str, hello: bool = True) -> None:
        self.ws = open_websocket(url, max_size=2**30, compression=None)
        if hello:
            self.ws.send(encode(Hello(client="raw-test")))
            assert self.recv().TYPE == "welcome"

    def send(self, frame: bytes | str) -> None:
        self.ws.send(frame)

    def recv(self, timeout: float = 30):
        return decode_server_message(self.ws.recv(timeout=timeout))

    def close(self) -> None:
        self.ws.close()

    def __enter__(self) -> "RawConnection":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def wait_for_running_job(http: str, running: bool = True, timeout: float = 60) -> None:
    """Return once the server's /info says a job (or live frame) is running (or, with
    ``running`` false, that none is); fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with urllib.request.urlopen(http + "/info", timeout=10) as response:
            if json.loads(response.read())["queue"]["running"] is running:
                return
        time.sleep(0.005)
    raise AssertionError(f"{'no' if running else 'a'} job was running for {timeout} s")
