"""Wire cost: a canvas layer plus its selection mask, from the client's bytes to
numpy arrays in the server, over a real loopback websocket.

Measured in the same run on the same pixels:
  paintwire  raw RGBA + L8 three ways: inside one msgpack map (clients before blob
             frames), as blobs after a small msgpack header (the plain path), and in a
             shared-memory segment (clients on the server's machine), decoded by
             Paintwire's own code in a separate server process
  webui      PNG + base64 inside JSON (what WebUI-style HTTP APIs take), same
             socket and server process, decoded with PIL as those servers do
  memcpy     copying the same bytes once into a buffer in memory: the floor
and the websocket alone (the same bytes, not decoded), to show where the time goes,
and the real `paintwire serve` from submit to its answer (the job is refused
after the pixels were decoded and checked, so the figure is transport and
validation only). A last table splits a shared-memory submit through the
server into stages, from time stamps taken in the client and in a stamped
server (bench/_wire_stamps.py).

    ./run bench wire                 # 2048 and 4096, a few repeats (under 2 minutes)
    ./run bench wire --sizes 2048 --repeat 9
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import socket
import statistics
import subprocess
import sys
import time

import numpy as np
from PIL import Image
from websockets.sync.client import connect

from _common import ROOT, machine, median_of, ms, ratio, start_server_process, table
from paintwire.protocol import ClientConnection, Error, JobRequest, Submit, encode, raw_image, shm
from paintwire.protocol.transfer import TransferOffer


def painting(side: int) -> tuple[np.ndarray, np.ndarray]:
    """A canvas that compresses like a painting does (smooth areas, shapes, some
    grain), not like noise (which no PNG compresses) nor flat colour (which all do)."""
    rng = np.random.default_rng(1)
    y, x = np.mgrid[0:side, 0:side].astype(np.float32) / side
    rgb = np.stack([200 * x + 30, 180 * y + 40, 120 * (1 - x) * y + 60], axis=-1)
    for _ in range(12):
        cx, cy, r = rng.uniform(0, 1, 2).tolist() + [rng.uniform(0.03, 0.2)]
        inside = (x - cx) ** 2 + (y - cy) ** 2 < r * r
        rgb[inside] = rng.uniform(0, 255, 3)
    rgb += rng.normal(0, 3, rgb.shape)
    rgba = np.dstack([np.clip(rgb, 0, 255), np.full((side, side), 255, np.float32)]).astype(np.uint8)
    d = np.sqrt((x - 0.5) ** 2 + (y - 0.5) ** 2)
    mask = (np.clip((0.25 - d) / 0.02, 0, 1) * 255).astype(np.uint8)  # a feathered disc
    return rgba, mask


def breakdown(image_bytes: bytes, mask_bytes: bytes, side: int, repeat: int) -> list[tuple]:
    """Where the time goes, each piece alone in this process: the copies and
    transforms a frame goes through on its way from the client's bytes to the
    server's arrays."""
    import os
    import socket
    import threading

    from aiohttp._websocket.helpers import websocket_mask  # aiohttp's (C) unmasking, as its reader runs it
    from websockets.speedups import apply_mask  # the websockets client's (C) masking

    from paintwire.protocol import decode_client_message
    from paintwire.server.imaging import payload_to_array

    job = JobRequest("classical", "inpaint", raw_image(side, side, "rgba8", image_bytes), raw_image(side, side, "l8", mask_bytes))
    inline, blobs = encode(Submit(1, job)), encode(Submit(1, job), blobs=True)
    key = os.urandom(4)
    total = len(image_bytes) + len(mask_bytes)
    scratch = bytearray(total)

    def floor() -> None:
        scratch[:len(image_bytes)] = image_bytes
        scratch[len(image_bytes):] = mask_bytes

    def kernel() -> None:
        a, b = socket.socketpair()
        got = bytearray(len(blobs))

        def read() -> None:
            view, done = memoryview(got), 0
            while done < len(got):
                done += b.recv_into(view[done:])

        reader = threading.Thread(target=read)
        reader.start()
        a.sendall(blobs)
        reader.join()
        a.close()
        b.close()

    bgra = raw_image(side, side, "bgra8", image_bytes)  # as Krita hands its layers over
    bgra_array = np.frombuffer(bgra.data, np.uint8).reshape(side, side, 4)
    arena = shm.Arena()
    name, _ = arena.write([image_bytes, mask_bytes])
    pieces = [
        ("memcpy into a buffer that exists (the floor)", floor),
        ("client: websocket masking of the frame (websockets, C)", lambda: apply_mask(blobs, key)),
        ("server: websocket unmasking (aiohttp, C), into a new buffer", lambda: websocket_mask(key, bytearray(blobs))),
        ("kernel: the frame through a local socket (send + receive)", kernel),
        ("client: msgpack frame, pixels inside (before)", lambda: encode(Submit(1, job))),
        ("server: msgpack frame decoded, pixels to arrays (before)", lambda: [payload_to_array(i) for i in (decode_client_message(inline).job.image, decode_client_message(inline).job.mask)]),
        ("client: blob frame (header + pixels joined)", lambda: encode(Submit(1, job), blobs=True)),
        ("server: blob frame decoded, pixels to arrays", lambda: [payload_to_array(i) for i in (decode_client_message(blobs).job.image, decode_client_message(blobs).job.mask)]),
        ("client: pixels into its shared segment (reused)", lambda: arena.write([image_bytes, mask_bytes])),
        ("server: pixels read from the segment into new memory", lambda: [shm.read_segment(name, 0, len(image_bytes)), shm.read_segment(name, len(image_bytes), len(mask_bytes))]),
        ("server: Krita's BGRA layer to RGBA, numpy fancy index (before)", lambda: bgra_array[..., [2, 1, 0, 3]]),
        ("server: Krita's BGRA layer to RGBA (payload_to_array)", lambda: payload_to_array(bgra)),
    ]
    layer_only = {label for label, _ in pieces if "BGRA" in label}  # the layer without its mask
    try:
        times = [(label, median_of(fn, repeat * 3), len(image_bytes) if label in layer_only else total) for label, fn in pieces]
    finally:
        arena.close()
    base = times[0][1] / total  # memcpy seconds per byte
    return [(f"{side}x{side}", label, f"{n / 1e6:.0f} MB", ms(t), ratio(t, base * n)) for label, t, n in times]


# The stages of a shared-memory submit through `paintwire serve`, between stamps taken in
# the client and in the server (bench/_wire_stamps.py): (label, from, to). A stamp that
# comes several times in a round (one segment read per image) adds up its intervals.
STAGES = [
    ("client: request built and packed (no pixels)", "start", "write>"),
    ("client: pixels into its segment (a copy into its mapping)", "write>", "write<"),
    ("client: header frame finished", "write<", "packed"),
    ("client send, kernel, server wakes with the frame", "packed", "data_received"),
    ("server: aiohttp reads the frame, session gets it", "data_received", "handle>"),
    ("server: blob header parsed", "split>", "split<"),
    ("server: segment opened and checked (name, type, owner, size)", "read_segment>", "new_buffer>"),
    ("server: memory for the pixels", "new_buffer>", "new_buffer<"),
    ("server: preadv from the segment", "new_buffer<", "read_segment<"),
    ("server: message read and validated (from_wire)", "from_wire>", "from_wire<"),
    ("server: job checked (check_job)", "check_job>", "check_job<"),
    ("server: answer encoded and queued", "emit>", "emit<"),
    ("server: the refused job's pixels freed", "emit<", "handle<"),
    ("server: writer task wakes to send the answer", "handle<", "send>"),
    ("answer through the socket back to the client", "send>", "recv"),
    ("client: answer read", "recv", "end"),
]


def stages(side: int, image_bytes: bytes, mask_bytes: bytes, rounds: int, floor: float) -> list[tuple]:
    """Where a shared-memory submit's time goes through `paintwire serve`: a server whose
    submit path is stamped (bench/_wire_stamps.py), the client stamping its own steps."""
    import os
    import tempfile

    fd, path = tempfile.mkstemp(prefix="paintwire-stamps-")
    os.close(fd)
    server = start_server_process(launcher=[sys.executable, str(ROOT / "bench" / "_wire_stamps.py"), path], max_pixels=8192 * 8192)
    arena = shm.Arena()
    runs: list[dict[str, float]] = []
    try:
        ws = open_ws(server.url)
        conn = ClientConnection()
        probe = shm.probe()
        assert probe is not None
        ws.send(conn.hello("bench-wire-stages/1", transfer=TransferOffer(probe=probe[0], token=probe[1])))
        conn.receive(ws.recv())
        assert conn.transfer.shm, conn.transfer
        for _ in range(rounds + 1):  # the first round warms up
            st: dict[str, float] = {}

            def writer(parts: list) -> tuple[str, list[int]]:
                st["write>"] = time.perf_counter()
                out = arena.write(parts)
                st["write<"] = time.perf_counter()
                return out

            st["start"] = time.perf_counter()
            job = JobRequest("classical", "inpaint", raw_image(side, side, "rgba8", image_bytes), raw_image(side, side, "l8", mask_bytes), params={"radius": 0})
            _, frame = conn.submit(job, writer=writer)
            st["packed"] = time.perf_counter()
            ws.send(frame)
            data = ws.recv()
            st["recv"] = time.perf_counter()
            assert isinstance(conn.receive(data), Error)
            st["end"] = time.perf_counter()
            runs.append(st)
        ws.close()
    finally:
        arena.close()
        server.stop()
    with open(path, encoding="ascii") as f:
        stamps = [(name, float(t)) for name, t in (line.split() for line in f)]
    os.unlink(path)
    per_stage: dict[str, list[float]] = {label: [] for label, _, _ in STAGES}
    totals, rest = [], []
    for st in runs[1:]:
        events = sorted([(t, name) for name, t in st.items()] + [(t, name) for name, t in stamps if st["start"] <= t <= st["end"]])
        total = st["end"] - st["start"]
        covered = 0.0
        for label, begin, end in STAGES:
            spent, opened = 0.0, None
            for t, name in events:
                if name == begin:
                    opened = t
                elif name == end and opened is not None:
                    spent += t - opened
                    opened = None
            per_stage[label].append(spent)
            covered += spent
        totals.append(total)
        rest.append(total - covered)
    name = f"{side}x{side}"
    total = statistics.median(totals)
    rows = [(name, label, ms(statistics.median(v)), f"{statistics.median(v) / total * 100:.0f}%", ratio(statistics.median(v), floor))
            for label, v in per_stage.items()]
    rows.append((name, "between the stages above", ms(statistics.median(rest)), f"{statistics.median(rest) / total * 100:.0f}%", ratio(statistics.median(rest), floor)))
    rows.append((name, f"submit to answer (median of {len(totals)}; min {ms(min(totals))})", ms(total), "100%", ratio(total, floor)))
    return rows


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def open_ws(url: str):
    return connect(url, legacy=True, compression=None, proxy=None, max_size=None, open_timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="2048,4096", help="canvas sides, comma-separated")
    parser.add_argument("--repeat", type=int, default=0, help="timed runs per case (default 5 at 2048, 3 above)")
    parser.add_argument("--stage-rounds", type=int, default=15, help="shared-memory submits timed stage by stage, per canvas")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]

    print(f"machine: {machine()}")
    port = free_port()
    receiver = subprocess.Popen([sys.executable, str(ROOT / "bench" / "_wire_server.py"), str(port)], stdout=subprocess.PIPE, text=True)
    server = start_server_process(max_pixels=8192 * 8192)
    try:
        assert receiver.stdout is not None and receiver.stdout.readline().strip() == "ready"
        time.sleep(0.2)
        pw_ws = open_ws(f"ws://127.0.0.1:{port}/paintwire")
        webui_ws = open_ws(f"ws://127.0.0.1:{port}/webui")
        bytes_ws = open_ws(f"ws://127.0.0.1:{port}/bytes")
        reals = {}
        for how in ("msgpack", "blobs", "shm"):
            real_ws = open_ws(server.url)
            real = ClientConnection()
            probe = shm.probe() if how == "shm" else None
            offer = TransferOffer(blobs=how != "msgpack", probe=probe[0] if probe else None, token=probe[1] if probe else None)
            real_ws.send(real.hello("bench-wire/1", transfer=offer))
            real.receive(real_ws.recv())
            if how == "msgpack":
                real.transfer = type(real.transfer)(blobs=False)  # as a client before blob frames sends
            assert real.transfer.shm == (how == "shm"), real.transfer
            reals[how] = (real_ws, real)
        shm_ok = shm.available()
        arenas = {"decoder": shm.Arena(), "serve": shm.Arena()}  # one segment per connection, reused, as the client does
        rows = []
        goals: list[tuple] = []
        floors: dict[int, float] = {}  # memcpy per canvas side, for the stage table
        for side in sizes:
            repeat = args.repeat or (5 if side <= 2048 else 3)
            rgba, mask = painting(side)
            image_bytes, mask_bytes = rgba.tobytes(), mask.tobytes()  # what a host hands over
            total = len(image_bytes) + len(mask_bytes)

            scratch = bytearray(total)

            def floor() -> None:
                view = memoryview(scratch)
                view[: len(image_bytes)] = image_bytes
                view[len(image_bytes):] = mask_bytes

            def transport() -> None:
                bytes_ws.send(image_bytes + mask_bytes)
                assert bytes_ws.recv().startswith(b"ok")

            def paintwire(blobs: bool = False, shared: bool = False) -> None:
                job = JobRequest("classical", "inpaint", raw_image(side, side, "rgba8", image_bytes), raw_image(side, side, "l8", mask_bytes))
                frame = encode(Submit(1, job), blobs=blobs, writer=arenas["decoder"].write if shared else None)
                pw_ws.send(frame)
                assert pw_ws.recv().startswith(b"ok")

            png_sizes: list[int] = []

            def webui(level: int | None = None) -> None:
                def b64png(array: np.ndarray) -> str:
                    buf = io.BytesIO()
                    # PIL's default (level 6) is what WebUI clients send; level 1 is the fastest PNG there is.
                    Image.fromarray(array).save(buf, format="PNG", **({} if level is None else {"compress_level": level}))
                    png_sizes.append(buf.tell())
                    return base64.b64encode(buf.getvalue()).decode("ascii")

                body = json.dumps({"init_images": [b64png(rgba)], "mask": b64png(mask), "denoising_strength": 0.5})
                webui_ws.send(body)
                assert webui_ws.recv().startswith(b"ok")

            def real_server(how: str) -> None:
                # radius 0 is out of range: refused after the frame was read, decoded and its images checked.
                real_ws, real = reals[how]
                ref, frame = real.submit(JobRequest("classical", "inpaint", raw_image(side, side, "rgba8", image_bytes),
                                                    raw_image(side, side, "l8", mask_bytes), params={"radius": 0}),
                                         writer=arenas["serve"].write if how == "shm" else None)
                real_ws.send(frame)
                answer = real.receive(real_ws.recv())
                assert isinstance(answer, Error) and answer.ref == ref, answer

            slow_repeat = 3 if side <= 2048 else 1  # a PNG round at 4096 takes half a minute here
            t_floor = median_of(floor, repeat * 3)
            t_transport = median_of(transport, repeat)
            t_pw = median_of(paintwire, repeat)
            t_blobs = median_of(lambda: paintwire(blobs=True), repeat)
            t_shm = median_of(lambda: paintwire(shared=True), repeat * 3) if shm_ok else float("nan")
            t_real = median_of(lambda: real_server("msgpack"), repeat)
            t_real_blobs = median_of(lambda: real_server("blobs"), repeat)
            t_real_shm = median_of(lambda: real_server("shm"), repeat * 3) if shm_ok else float("nan")
            t_fast = median_of(lambda: webui(1), slow_repeat, warmup=0)
            fast_mb = (png_sizes[-1] + png_sizes[-2]) / 1e6 * 4 / 3
            t_webui = median_of(webui, slow_repeat, warmup=0)
            webui_mb = (png_sizes[-1] + png_sizes[-2]) / 1e6 * 4 / 3
            mb = total / 1e6
            name = f"{side}x{side}"
            rows += [
                (name, "memcpy (floor)", f"{mb:.0f} MB", ms(t_floor), "1.00x", "-", f"{mb / t_floor:.0f} MB/s"),
                (name, "websocket only, bytes not decoded", f"{mb:.0f} MB", ms(t_transport), ratio(t_transport, t_floor), "1.00x", f"{mb / t_transport:.0f} MB/s"),
                (name, "paintwire: raw pixels in msgpack (before)", f"{mb:.0f} MB", ms(t_pw), ratio(t_pw, t_floor), ratio(t_pw, t_transport), f"{mb / t_pw:.0f} MB/s"),
                (name, "paintwire: blob frame (plain path)", f"{mb:.0f} MB", ms(t_blobs), ratio(t_blobs, t_floor), ratio(t_blobs, t_transport), f"{mb / t_blobs:.0f} MB/s"),
                (name, "paintwire: shared memory", "0 MB", ms(t_shm), ratio(t_shm, t_floor), ratio(t_shm, t_transport), f"{mb / t_shm:.0f} MB/s"),
                (name, "paintwire serve, msgpack, submit to answer", f"{mb:.0f} MB", ms(t_real), ratio(t_real, t_floor), ratio(t_real, t_transport), f"{mb / t_real:.0f} MB/s"),
                (name, "paintwire serve, blob frame, submit to answer", f"{mb:.0f} MB", ms(t_real_blobs), ratio(t_real_blobs, t_floor), ratio(t_real_blobs, t_transport), f"{mb / t_real_blobs:.0f} MB/s"),
                (name, "paintwire serve, shared memory, submit to answer", "0 MB", ms(t_real_shm), ratio(t_real_shm, t_floor), ratio(t_real_shm, t_transport), f"{mb / t_real_shm:.0f} MB/s"),
                (name, "webui: PNG (level 1) + base64 + JSON", f"{fast_mb:.0f} MB", ms(t_fast), ratio(t_fast, t_floor), ratio(t_fast, t_transport), f"{mb / t_fast:.0f} MB/s"),
                (name, "webui: PNG (PIL default) + base64 + JSON", f"{webui_mb:.0f} MB", ms(t_webui), ratio(t_webui, t_floor), ratio(t_webui, t_transport), f"{mb / t_webui:.0f} MB/s"),
            ]
            floors[side] = t_floor
            goals.append((name, t_floor, t_transport, t_blobs, t_shm, t_real_blobs, t_real_shm, t_webui))
            print(f"{side}: webui / paintwire blob frame = {t_webui / t_blobs:.1f}x", flush=True)
        table("Wire: RGBA layer + L8 mask, client bytes to server numpy (median)",
              ["canvas", "path", "on the wire", "time", "vs memcpy", "vs bare websocket", "pixel MB/s"], rows)
        goal_rows = []
        for name, t_floor, t_transport, t_blobs, t_shm, t_real_blobs, t_real_shm, t_webui in goals:
            goal_rows += [
                (name, "shared memory within 3x of memcpy", ratio(t_shm, t_floor), ratio(t_real_shm, t_floor)),
                (name, "plain path within 1.5x of the bare websocket", ratio(t_blobs, t_transport), ratio(t_real_blobs, t_transport)),
                (name, "50x faster than PNG (PIL default) + base64", ratio(t_webui, t_blobs), ratio(t_webui, t_real_blobs)),
            ]
        table("Wire goals (same run): decoder alone, and paintwire serve", ["canvas", "goal", "decoder", "paintwire serve"], goal_rows)
        stage_rows = [row for side, t_floor in floors.items()
                      for row in stages(side, *(lambda a: (a[0].tobytes(), a[1].tobytes()))(painting(side)), args.stage_rounds, t_floor)] if shm_ok else []
        if stage_rows:
            table("Shared memory through paintwire serve, stage by stage (stamped server; median per stage)",
                  ["canvas", "stage", "time", "share", "vs memcpy"], stage_rows)
        pieces = [row for side in sizes for row in breakdown(*(lambda a: (a[0].tobytes(), a[1].tobytes()))(painting(side)), side, args.repeat or 3)]
        table("Where the time goes: each piece alone, in one process (median)", ["canvas", "piece", "bytes", "time", "vs memcpy"], pieces)
        for ws in (pw_ws, webui_ws, bytes_ws, *(w for w, _ in reals.values())):
            ws.close()
        for arena in arenas.values():
            arena.close()
    finally:
        receiver.terminate()
        receiver.wait()
        server.stop()


if __name__ == "__main__":
    main()
