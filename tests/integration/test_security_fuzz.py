"""Random frames at a live server: it answers each with a documented error (or
the right message), never with an internal one, and keeps serving.

Frames are drawn from a seeded generator, so a failure reproduces. For a
longer run: PAINTWIRE_FUZZ_FRAMES=20000 (and PAINTWIRE_FUZZ_SEED to vary it).
"""

from __future__ import annotations

import os
import random
from typing import Any

import msgpack
import numpy as np
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from paintwire.protocol import (
    Client,
    ClientConnection,
    Error,
    ErrorCode,
    JobRequest,
    Result,
    Submit,
    Welcome,
    decode_server_message,
    encode,
    raw_image,
)

# Popped, not read: the server takes every PAINTWIRE_* variable as a setting.
FRAMES = int(os.environ.pop("PAINTWIRE_FUZZ_FRAMES", "300"))
SEED = int(os.environ.pop("PAINTWIRE_FUZZ_SEED", "20261123"))
WAIT = 30.0
TYPES = ["hello", "submit", "cancel", "welcome", "result", "", "HELLO"]
KEYS = ["type", "client", "protocol", "token", "ref", "job", "engine", "mode", "image", "mask", "params", "width", "height", "format", "data", "encoding"]


def small_job() -> JobRequest:
    image = raw_image(16, 16, "rgba8", np.full((16, 16, 4), 90, np.uint8).tobytes())
    mask = np.zeros((16, 16), np.uint8)
    mask[4:8, 4:8] = 255
    return JobRequest("classical", "inpaint", image, raw_image(16, 16, "l8", mask.tobytes()), params={"method": "telea"})


class FrameMaker:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.valid = encode(Submit(7, small_job()))

    def value(self, depth: int = 0) -> Any:
        r = self.rng
        kinds = ["none", "bool", "int", "bigint", "float", "str", "bin"] + (["list", "map", "map"] if depth < 3 else [])
        kind = r.choice(kinds)
        if kind == "none":
            return None
        if kind == "bool":
            return r.random() < 0.5
        if kind == "int":
            return r.randint(-3, 70)
        if kind == "bigint":
            return r.choice([2**31, 2**53, 2**63 - 1, 2**64 - 1, -(2**63), 16385])
        if kind == "float":
            return r.choice([0.5, -1.0, float("nan"), float("inf"), 1e308])
        if kind == "str":
            return r.choice(TYPES + KEYS + ["classical", "inpaint", "upscale", "rgba8", "l8", "png", "../x", "é" * 5, "x" * 300])
        if kind == "bin":
            return r.randbytes(r.randint(0, 40))
        if kind == "list":
            return [self.value(depth + 1) for _ in range(r.randint(0, 4))]
        return {r.choice(KEYS): self.value(depth + 1) for _ in range(r.randint(0, 6))}

    def frame(self) -> bytes | str:
        r = self.rng
        kind = r.choice(["bytes", "value", "map", "map", "mutant", "mutant", "text"])
        if kind == "bytes":
            return r.randbytes(r.randint(0, 200))
        if kind == "value":
            return msgpack.packb(self.value(), use_bin_type=True)
        if kind == "text":
            return r.choice(["", "{}", '{"type": "hello"}', "\x00" * 10])
        if kind == "map":
            obj = {k: self.value(1) for k in r.sample(KEYS, r.randint(0, 6))}
            obj["type"] = r.choice(TYPES)
            if r.random() < 0.5:
                obj["job"] = {k: self.value(1) for k in r.sample(KEYS, r.randint(0, 8))}
            return msgpack.packb(obj, use_bin_type=True)
        frame = bytearray(self.valid)
        for _ in range(r.randint(1, 5)):
            pos = r.randrange(len(frame))
            op = r.choice(["flip", "cut", "insert"])
            if op == "flip":
                frame[pos] ^= 1 << r.randrange(8)
            elif op == "cut":
                del frame[pos:pos + r.randint(1, 12)]
            else:
                frame[pos:pos] = r.randbytes(r.randint(1, 6))
            if not frame:
                frame = bytearray(b"\xc1")
        return bytes(frame)


def check(message: Any) -> None:
    if isinstance(message, Error):
        assert isinstance(message.code, ErrorCode)
        assert message.code is not ErrorCode.INTERNAL, message  # the server broke, or sent a code outside the set
        assert message.message


class Link:
    """A raw connection: frames out, every reply decoded and checked."""

    def __init__(self, url: str, hello: bool) -> None:
        self.ws = connect(url, legacy=True, compression=None, proxy=None, max_size=None)
        self.conn = ClientConnection()
        self.marker = 0
        if hello:
            self.ws.send(self.conn.hello("fuzz/1"))
            assert isinstance(self.conn.receive(self.ws.recv(timeout=WAIT)), Welcome)

    def reply(self) -> Any:
        message = decode_server_message(self.ws.recv(timeout=WAIT))
        check(message)
        return message

    def sync(self) -> None:
        """Send a cancel of a made-up job and read up to its refusal: every reply
        to what came before has then been read and checked."""
        self.marker += 1
        name = f"marker-{self.marker}"
        self.ws.send(encode_cancel(name))
        while True:
            message = self.reply()
            if isinstance(message, Error) and message.code is ErrorCode.UNKNOWN_JOB and name in message.message:
                return


def encode_cancel(job: str) -> bytes:
    return msgpack.packb({"type": "cancel", "job": job}, use_bin_type=True)


def test_random_frames_at_a_live_server(start_server):
    server = start_server()
    maker = FrameMaker(SEED)
    closes = 0
    before_hello = max(1, FRAMES // 5)

    # Before hello every frame gets exactly one answer: an error, or welcome for a valid hello.
    link = Link(server.url, hello=False)
    for _ in range(before_hello):
        try:
            link.ws.send(maker.frame())
            answer = link.reply()
            if isinstance(answer, Welcome):
                link.ws.close()
                link = Link(server.url, hello=False)
        except ConnectionClosed:
            closes += 1  # a hello with another protocol version ends the connection, by design
            link = Link(server.url, hello=False)
    link.ws.close()

    link = Link(server.url, hello=True)
    for _ in range(FRAMES - before_hello):
        try:
            link.ws.send(maker.frame())
            link.sync()
        except ConnectionClosed:
            closes += 1
            link = Link(server.url, hello=True)
    # The fuzzed connection still runs a job.
    link.ws.send(link.conn.submit(small_job())[1])
    while True:
        message = link.reply()
        if isinstance(message, Result) or (isinstance(message, Error) and message.job):
            break
    assert isinstance(message, Result), message
    link.ws.close()

    assert closes <= FRAMES // 10, f"the server closed {closes} connections"
    with Client(server.url) as client:
        assert isinstance(client.run(small_job(), timeout=WAIT), Result)
    assert server.process.poll() is None
    assert "Traceback" not in server.log(), server.log()
