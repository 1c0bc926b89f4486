"""Crops, blob frames and shared memory through the real server and the real client:
results land where the whole canvas puts them, and every lie is refused with the
server still serving."""

from __future__ import annotations

import dataclasses
import os
import time

import numpy as np
import pytest
from helpers import RawConnection, layer_pixels, rect_mask, scene

from paintwire.hostkit.request import JobSettings, build_request
from paintwire.hostkit.snapshot import Snapshot
from paintwire.protocol import Client, Crop, Error, ErrorCode, Hello, ImagePayload, JobFailed, JobRequest, PixelFormat, Submit, encode, shm
from paintwire.protocol.transfer import TransferOffer, pack

SHM = pytest.mark.skipif(not shm.available(), reason="no /dev/shm on this machine (Linux only)")


def whole_and_cropped(client: Client, width: int, height: int, mask: np.ndarray, **params):
    img = scene(width, height)
    snap = Snapshot(width, height, img.tobytes(), PixelFormat.RGBA8, selection=mask.tobytes())
    cropped = build_request(snap, client.capabilities, JobSettings("inpaint", "classical", None, params))
    assert cropped.crop is not None
    whole = dataclasses.replace(cropped, image=snap.image(), mask=ImagePayload(width, height, PixelFormat.L8, mask.tobytes()), crop=None)
    return whole, cropped


@pytest.mark.parametrize("shared", [False, pytest.param(True, marks=SHM)])
@pytest.mark.parametrize("method", ["telea", "fill"])
def test_a_crop_gives_the_whole_canvas_result_at_the_same_place(live_server, shared: bool, method: str) -> None:
    with Client(live_server.url, name="test-wire", shared_memory=shared) as client:
        assert client.uses_shared_memory is shared
        mask = rect_mask(640, 480, 500, 30, 60, 50)  # near the right edge: the crop is clipped to the canvas there
        whole, cropped = whole_and_cropped(client, 640, 480, mask, method=method, mask_blur=5)
        assert cropped.image.width * cropped.image.height < 640 * 480 / 8
        a, b = client.run(whole), client.run(cropped)
    assert (a.width, a.height) == (b.width, b.height) == (640, 480)
    (la,), (lb,) = a.layers, b.layers
    assert (la.x, la.y, la.image.width, la.image.height) == (lb.x, lb.y, lb.image.width, lb.image.height) == (500, 30, 60, 50)
    assert np.array_equal(layer_pixels(la), layer_pixels(lb))


def test_crops_that_do_not_fit_are_refused_and_the_server_keeps_serving(live_server) -> None:
    with Client(live_server.url, name="test-wire") as client:
        mask = rect_mask(300, 200, 100, 80, 30, 30)
        _, cropped = whole_and_cropped(client, 300, 200, mask, padding=16)
        cases = [
            (dataclasses.replace(cropped, params={"padding": 64}), "does not cover"),  # needs more than was sent
            (dataclasses.replace(cropped, params={"padding": 16, "invert_mask": True}), "whole canvas"),
            (dataclasses.replace(cropped, mode="upscale", mask=None, params={}), "whole canvas"),
            # An empty mask reads the whole canvas (section 6.5, rule 1): refused at submit, not queued to fail.
            (dataclasses.replace(cropped, mask=ImagePayload(cropped.mask.width, cropped.mask.height, PixelFormat.L8,
                                                            bytes(cropped.mask.width * cropped.mask.height))), "selects nothing"),
        ]
        for job, words in cases:
            with pytest.raises(JobFailed) as info:
                client.run(job, timeout=30)
            assert info.value.error.code is ErrorCode.BAD_CROP and words in info.value.error.message
        assert client.run(cropped, timeout=30).layers[0].x == 100
    with RawConnection(live_server.url) as raw:
        outside = dataclasses.replace(cropped, crop=Crop(cropped.crop.x, cropped.crop.y, cropped.crop.x + 5, 200))
        raw.send(encode(Submit(9, outside), blobs=True))
        error = raw.recv()
        assert isinstance(error, Error) and (error.code, error.ref, error.field) == (ErrorCode.BAD_CROP, 9, "job.crop")


@SHM
def test_lying_segments_are_refused_and_the_server_keeps_serving(live_server) -> None:
    mask = rect_mask(300, 200, 100, 80, 30, 30)
    with Client(live_server.url, name="test-wire") as client:
        _, job = whole_and_cropped(client, 300, 200, mask)
    probe = shm.probe()
    assert probe is not None
    raw = RawConnection(live_server.url, hello=False)
    raw.send(encode(Hello("liar", transfer=TransferOffer(probe=probe[0], token=probe[1]))))
    welcome = raw.recv()
    assert welcome.transfer.shm and not os.path.exists(os.path.join(shm.SHM_DIR, probe[0]))  # read once and removed
    arena = shm.Arena()
    try:
        def send(rename=None, offset=0, shrink=None) -> Error:
            def writer(parts):
                name, offsets = arena.write(parts)
                if shrink is not None:
                    os.truncate(os.path.join(shm.SHM_DIR, name), shrink)
                return (rename or name), [o + offset for o in offsets]
            raw.send(pack(Submit(4, job).to_wire(), writer))
            answer = raw.recv()
            assert isinstance(answer, Error) and answer.ref == 4, answer
            return answer

        for kwargs, words in (({"rename": shm.new_name()}, "No segment"), ({"rename": "paintwire-../../etc/passwd"}, "names are"),
                              ({"rename": "other-abcdefghijkl"}, "names are"), ({"offset": 10}, "holds"), ({"shrink": 100}, "holds")):
            error = send(**kwargs)
            assert error.code is ErrorCode.BAD_SEGMENT and words in error.message, error
        # The same connection still works: a good segment job is accepted.
        raw.send(pack(Submit(5, job).to_wire(), arena.write))
        assert raw.recv().TYPE == "queued"
    finally:
        raw.close()
        arena.close()


@SHM
def test_a_probe_that_lies_gets_no_shared_memory(live_server) -> None:
    probe = shm.probe()
    assert probe is not None
    with RawConnection(live_server.url, hello=False) as raw:
        raw.send(encode(Hello("liar", transfer=TransferOffer(probe=probe[0], token="00" * 16))))
        welcome = raw.recv()
        assert not welcome.transfer.shm and "does not hold the token" in welcome.transfer.note
        segment = {"width": 2, "height": 2, "format": "l8", "shm": {"name": probe[0], "offset": 0}}
        wire = Submit(1, dataclasses.replace(build_tiny_job(), mask=None)).to_wire()
        wire["job"]["image"] = dict(segment, format="rgba8")
        raw.send(pack(wire))
        error = raw.recv()
        assert error.code is ErrorCode.BAD_SEGMENT and "did not agree on shared memory" in error.message
    shm.remove(probe[0])


def build_tiny_job():
    from paintwire.protocol import JobRequest, raw_image
    return JobRequest("classical", "upscale", raw_image(2, 2, "rgba8", bytes(16)))


@SHM
def test_the_server_removes_a_vanished_clients_segments(live_server) -> None:
    client = Client(live_server.url, name="test-wire")
    client.connect()
    mask = rect_mask(300, 200, 100, 80, 30, 30)
    _, job = whole_and_cropped(client, 300, 200, mask)
    client.run(job, timeout=30)
    name = client._arena.name
    assert name is not None and os.path.exists(os.path.join(shm.SHM_DIR, name))
    client._ws.close()  # the connection drops without the client cleaning up, as after a crash
    deadline = time.monotonic() + 10
    while os.path.exists(os.path.join(shm.SHM_DIR, name)):
        assert time.monotonic() < deadline, "the server left the segment behind"
        time.sleep(0.05)


@SHM
@pytest.mark.skipif(os.geteuid() != 0, reason="giving the client's segment to another user needs root")
def test_a_client_falls_back_to_the_frame_when_its_segment_is_refused(live_server) -> None:
    with Client(live_server.url, name="test-wire") as client:
        mask = rect_mask(300, 200, 100, 80, 30, 30)
        _, job = whole_and_cropped(client, 300, 200, mask)
        client.run(job, timeout=30)
        os.chown(os.path.join(shm.SHM_DIR, client._arena.name), 4321, 4321)  # another user's segment now
        with pytest.raises(JobFailed) as info:
            client.run(job, timeout=30)
        assert info.value.error.code is ErrorCode.BAD_SEGMENT and "another user" in info.value.error.message
        # From then on the pixels go in the frame.
        assert not client.uses_shared_memory
        assert client.run(job, timeout=30).layers[0].x == 100


def shm_connection(url: str) -> RawConnection:
    """A raw connection whose hello proved shared memory."""
    probe = shm.probe()
    assert probe is not None
    raw = RawConnection(url, hello=False)
    raw.send(encode(Hello("segments", transfer=TransferOffer(probe=probe[0], token=probe[1]))))
    assert raw.recv().transfer.shm
    return raw


@SHM
def test_every_segment_a_refused_message_named_is_removed_with_the_connection(live_server, tmp_path) -> None:
    """Section 6.7: a segment named in a message refused with too_large, a link and a directory
    given as segments all go when the connection ends; what the link points at stays."""
    too_large = shm.write_segment([bytes(64)])[0]
    target = tmp_path / "not-a-segment"
    target.write_bytes(b"keep me")
    link, directory = shm.new_name(), shm.new_name()
    os.symlink(target, os.path.join(shm.SHM_DIR, link))
    os.mkdir(os.path.join(shm.SHM_DIR, directory))
    names = (too_large, link, directory)
    raw = shm_connection(live_server.url)
    try:
        for ref, (name, side, code) in enumerate(((too_large, 16384, ErrorCode.TOO_LARGE), (link, 2, ErrorCode.BAD_SEGMENT),
                                                  (directory, 2, ErrorCode.BAD_SEGMENT)), start=1):
            wire = Submit(ref, build_tiny_job()).to_wire()
            wire["job"]["image"] = {"width": side, "height": side, "format": "rgba8", "shm": {"name": name, "offset": 0}}
            raw.send(pack(wire))
            error = raw.recv()
            assert isinstance(error, Error) and (error.code, error.ref) == (code, ref), error
        assert all(os.path.lexists(os.path.join(shm.SHM_DIR, n)) for n in names)  # kept while the connection lives
    finally:
        raw.close()
    deadline = time.monotonic() + 10
    while any(os.path.lexists(os.path.join(shm.SHM_DIR, n)) for n in names):
        assert time.monotonic() < deadline, [n for n in names if os.path.lexists(os.path.join(shm.SHM_DIR, n))]
        time.sleep(0.05)
    assert target.read_bytes() == b"keep me"


@SHM
def test_a_segment_reference_in_a_plain_frame_is_read_like_one_in_a_blob_frame(live_server) -> None:
    import msgpack

    image = scene(8, 8)
    name = shm.write_segment([image.tobytes()])[0]
    try:
        with RawConnection(live_server.url) as plain:  # no shared memory agreed: bad_segment, not bad_image
            wire = Submit(1, build_tiny_job()).to_wire()
            wire["job"]["image"] = {"width": 8, "height": 8, "format": "rgba8", "shm": {"name": name, "offset": 0}}
            plain.send(msgpack.packb(wire, use_bin_type=True))
            error = plain.recv()
            assert (error.code, error.ref, error.field) == (ErrorCode.BAD_SEGMENT, 1, "job.image.shm")
        raw = shm_connection(live_server.url)
        try:
            raw.send(msgpack.packb(wire, use_bin_type=True))
            assert raw.recv().TYPE == "queued"
        finally:
            raw.close()
    finally:
        shm.remove(name)

@SHM
def test_large_bgra_layers_through_shared_memory_arrive_exact(live_server) -> None:
    """Layers over shm.LARGE_READ are read into the server's own huge-page memory and Krita's
    BGRA is swapped to RGBA by OpenCV: the pixels are the same as through the frame, job after
    job, while the client's segment grows and is reused."""
    rng = np.random.default_rng(7)
    small = rng.integers(0, 256, (48, 64, 4), dtype=np.uint8)
    big = rng.integers(0, 256, (768, 1024, 4), dtype=np.uint8)
    big[..., 3] = 255
    assert big.nbytes > shm.LARGE_READ

    def same_size(img: np.ndarray) -> JobRequest:
        height, width = img.shape[:2]
        return JobRequest("classical", "upscale", ImagePayload(width, height, PixelFormat.BGRA8, img.tobytes()),
                          params={"width": width, "height": height}, output_format=PixelFormat.BGRA8)

    with Client(live_server.url, name="test-wire") as shared, Client(live_server.url, name="test-wire", shared_memory=False) as framed:
        assert shared.uses_shared_memory and not framed.uses_shared_memory
        for img in (small, big, small, big):
            a, b = shared.run(same_size(img), timeout=60), framed.run(same_size(img), timeout=60)
            assert np.array_equal(layer_pixels(a.layers[0]), layer_pixels(b.layers[0]))
        assert shared.uses_shared_memory  # no job fell back to the frame
        assert np.array_equal(layer_pixels(a.layers[0]), big)  # opaque, same size: the layer comes back as it went
