"""Memory peak of heavy classical jobs against the documented bound (docs/security.md).

Each case runs on a fresh `paintwire serve` (so the process's peak, VmHWM, is
that job's), with one client that sends the job and reads the result. It
prints the server's peak over its idle baseline next to the bound

    peak <= M + 4 W H (decoded input) + 12 w h (output, its frame, the socket's copy) + 48 MiB

where M is the job's message size, W x H the input and w x h the output, and
the baseline's ratio to it. The issue's cases: a 261 KB PNG of 8192x8192 zeros
sent for an x1 upscale, and a 4096x4096 picture upscaled to 8192x8192.

    ./run bench memory_peak
    ./run bench memory_peak --side 2048     # smaller cases for a small machine
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from _common import machine, rss_kib, start_server_process, table, timed
from paintwire.protocol import Client, ImagePayload, JobRequest, PixelFormat, raw_image
from paintwire.protocol.images import Encoding

MIB = 1 << 20
TILE_WORK = 48 * MIB


def png_zeros(side: int) -> ImagePayload:
    import cv2

    ok, buf = cv2.imencode(".png", np.zeros((side, side, 4), np.uint8))
    assert ok
    return ImagePayload(side, side, PixelFormat.RGBA8, buf.tobytes(), Encoding.PNG)


def run_case(name: str, image: ImagePayload, scale: float) -> list[object]:
    w, h = image.width, image.height
    out_w, out_h = round(w * scale), round(h * scale)
    server = start_server_process(max_message_bytes=8192 * 8192 * 5 + MIB)
    try:
        time.sleep(0.5)
        base = rss_kib(server.process.pid)["VmRSS"] * 1024
        with Client(server.url, name="bench-memory") as client:
            seconds, result = timed(lambda: client.run(JobRequest("classical", "upscale", image, params={"scale": scale})))
            assert (result.width, result.height) == (out_w, out_h)
            del result
        peak = rss_kib(server.process.pid)["VmHWM"] * 1024 - base
    finally:
        server.stop()
    bound = len(image.data) + 4 * w * h + 12 * out_w * out_h + TILE_WORK
    return [name, f"{len(image.data) / MIB:.1f}", f"{w}x{h} -> {out_w}x{out_h}", f"{peak / MIB:.0f}", f"{bound / MIB:.0f}", f"{peak / bound:.2f}", f"{seconds:.1f} s"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--side", type=int, default=8192, help="side of the big picture (default 8192)")
    args = parser.parse_args()
    side = args.side
    rows = [
        run_case("PNG of zeros, x1 upscale", png_zeros(side), 1.0),
        run_case("raw picture, x2 upscale", raw_image(side // 2, side // 2, "rgba8", np.full((side // 2, side // 2, 4), 77, np.uint8).tobytes()), 2.0),
    ]
    print(machine())
    table(
        "Server memory peak of one classical upscale over its idle RSS, against the documented bound",
        ["case", "message MiB", "pixels", "peak MiB", "bound MiB", "peak / bound", "job time"],
        rows,
    )


if __name__ == "__main__":
    main()
