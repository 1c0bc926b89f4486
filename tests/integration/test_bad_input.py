"""Bad input of every kind gets the documented error, and the server keeps serving."""

from __future__ import annotations

import msgpack
import pytest
from helpers import RawConnection, mask_payload, rect_mask, rgba_payload, scene

from paintwire.protocol import Client, ClientError, ErrorCode, Hello, JobFailed, JobRequest, encode
from paintwire.protocol.transfer import pack


def submit_frame(job: dict, ref: int = 7) -> bytes:
    return msgpack.packb({"type": "submit", "ref": ref, "job": job}, use_bin_type=True)


def good_job() -> dict:
    img = scene()
    return JobRequest("classical", "inpaint", rgba_payload(img), mask_payload(rect_mask(160, 120, 10, 10, 20, 20))).to_wire()


def with_changes(**changes) -> dict:
    job = good_job()
    for path, value in changes.items():
        target = job
        *parents, last = path.split("__")
        for key in parents:
            target = target[key]
        if value is DELETE:
            del target[last]
        else:
            target[last] = value
    return job


DELETE = object()

BAD_FRAMES = {
    "malformed msgpack": (b"\xc1\xff\x00garbage", ErrorCode.BAD_FRAME, None),
    "not a map": (msgpack.packb([1, 2, 3]), ErrorCode.BAD_FRAME, None),
    "no type": (msgpack.packb({"ref": 1}), ErrorCode.BAD_MESSAGE, "type"),
    "unknown type": (msgpack.packb({"type": "explode"}), ErrorCode.UNKNOWN_TYPE, "type"),
    "second hello": (encode(Hello(client="again")), ErrorCode.HELLO_REQUIRED, "type"),
    "cancel without job": (msgpack.packb({"type": "cancel"}), ErrorCode.BAD_MESSAGE, "job"),
}

BAD_JOBS = {
    "bytes do not match the size": (with_changes(image__data=b"\x00" * 100), ErrorCode.BAD_IMAGE, "job.image.data"),
    "zero width": (with_changes(image__width=0), ErrorCode.BAD_IMAGE, "job.image.width"),
    "giant height": (with_changes(image__height=10**9), ErrorCode.TOO_LARGE, "job.image.height"),
    "string width": (with_changes(image__width="160"), ErrorCode.BAD_IMAGE, "job.image.width"),
    "unknown pixel format": (with_changes(image__format="cmyk16"), ErrorCode.BAD_IMAGE, "job.image.format"),
    "data as text": (with_changes(image__data="abc"), ErrorCode.BAD_IMAGE, "job.image.data"),
    "mask of another size": (with_changes(mask=mask_payload(rect_mask(80, 60, 0, 0, 5, 5)).to_wire()), ErrorCode.BAD_MASK, "job.mask"),
    "mask in rgba": (with_changes(mask=rgba_payload(scene()).to_wire()), ErrorCode.BAD_MASK, "job.mask.format"),
    "no mask for inpaint": (with_changes(mask=DELETE), ErrorCode.BAD_MASK, "job.mask"),
    "unknown engine": (with_changes(engine="dalle"), ErrorCode.UNKNOWN_ENGINE, "job.engine"),
    "unknown mode": (with_changes(mode="paint-my-fence"), ErrorCode.UNKNOWN_MODE, "job.mode"),
    "unknown model": (with_changes(model="sd-9000"), ErrorCode.UNKNOWN_MODEL, "job.model"),
    "model name climbing out": (with_changes(model="../../etc/passwd"), ErrorCode.UNKNOWN_MODEL, "job.model"),
    "model name as an absolute path": (with_changes(model="/etc/passwd"), ErrorCode.UNKNOWN_MODEL, "job.model"),
    "parameter out of range": (with_changes(params={"radius": 0}), ErrorCode.INVALID_PARAM, "job.params.radius"),
    "parameter of the wrong type": (with_changes(params={"mask_blur": "lots"}), ErrorCode.INVALID_PARAM, "job.params.mask_blur"),
    "unknown parameter": (with_changes(params={"strenght": 0.5}), ErrorCode.INVALID_PARAM, "job.params.strenght"),
    "bad choice": (with_changes(params={"method": "magic"}), ErrorCode.INVALID_PARAM, "job.params.method"),
    "job not a map": ("nope", ErrorCode.BAD_MESSAGE, "job"),
    "pixels in data and in a blob": (with_changes(image__blob=0), ErrorCode.BAD_IMAGE, "job.image"),
    "a blob in a frame without blobs": (with_changes(image__data=DELETE, image__blob=0), ErrorCode.BAD_FRAME, "job.image.blob"),
    "a segment without shared memory": (with_changes(image__data=DELETE, image__shm={"name": "paintwire-abcdefgh", "offset": 0}),
                                        ErrorCode.BAD_SEGMENT, "job.image.shm"),
}


@pytest.fixture(scope="module")
def conn(live_server):
    with RawConnection(live_server.url) as c:
        yield c


def assert_still_serving(conn: RawConnection) -> None:
    conn.send(submit_frame(good_job(), ref=999))
    while True:
        msg = conn.recv()
        if msg.TYPE == "result":
            return
        assert msg.TYPE in ("queued", "started", "progress"), msg


@pytest.mark.parametrize("name", list(BAD_FRAMES))
def test_bad_frame(conn, name):
    frame, code, field = BAD_FRAMES[name]
    conn.send(frame)
    err = conn.recv()
    assert (err.TYPE, err.code, err.field, err.job) == ("error", code, field, None)
    assert err.message.endswith(".")
    assert_still_serving(conn)


@pytest.mark.parametrize("name", list(BAD_JOBS))
def test_bad_job(conn, name):
    job, code, field = BAD_JOBS[name]
    conn.send(submit_frame(job, ref=42))
    err = conn.recv()
    assert (err.TYPE, err.code, err.field, err.ref, err.job) == ("error", code, field, 42, None), err.message
    assert_still_serving(conn)


def test_a_lying_blob_frame_is_answered_with_its_submits_ref(conn):
    """Section 6.6: once the message map can be read, a blob frame's fault is the submit's, so
    the submit still gets its one answer (section 5)."""
    frame = pack({"type": "submit", "ref": 43, "job": good_job()})  # image and mask go as blobs
    for lying in (frame + b"x", frame[:-1]):  # the blob lengths do not add up to what follows
        conn.send(lying)
        err = conn.recv()
        assert (err.TYPE, err.code, err.ref, err.job) == ("error", ErrorCode.BAD_FRAME, 43, None), err
    assert_still_serving(conn)


def test_an_empty_mask_fails_the_job_with_a_clear_error(conn):
    # Only the engine can tell (with invert_mask an empty mask selects everything),
    # so the job is queued and then ends with the error.
    conn.send(submit_frame(with_changes(mask=mask_payload(rect_mask(160, 120, 0, 0, 0, 0)).to_wire())))
    queued = conn.recv()
    assert queued.TYPE == "queued"
    while (msg := conn.recv()).TYPE != "error":
        assert msg.TYPE in ("queued", "started", "progress")
    assert (msg.code, msg.field, msg.job) == (ErrorCode.BAD_MASK, "job.mask", queued.job)
    assert_still_serving(conn)


def test_text_frames_are_refused(conn):
    conn.send("hello?")
    err = conn.recv()
    assert (err.TYPE, err.code) == ("error", ErrorCode.BAD_FRAME)
    assert_still_serving(conn)


def test_anything_before_hello_is_refused(live_server):
    with RawConnection(live_server.url, hello=False) as raw:
        raw.send(submit_frame(good_job()))
        err = raw.recv()
        assert (err.code, err.field) == (ErrorCode.HELLO_REQUIRED, "type")
        raw.send(encode(Hello(client="late")))
        assert raw.recv().TYPE == "welcome"


def test_an_unsupported_protocol_version_is_refused_clearly(live_server):
    with RawConnection(live_server.url, hello=False) as raw:
        raw.send(encode(Hello(client="future", protocol=2)))
        err = raw.recv()
        assert err.code is ErrorCode.UNSUPPORTED_VERSION and "version 1" in err.message


def test_the_client_library_reports_rejections(live_server):
    with Client(live_server.url) as client:
        with pytest.raises(JobFailed) as info:
            client.run(JobRequest("classical", "upscale", rgba_payload(scene()), params={"scale": 9.0}))
        assert info.value.error.code is ErrorCode.INVALID_PARAM and info.value.error.field == "job.params.scale"
        assert client.run(JobRequest("classical", "upscale", rgba_payload(scene()), params={"scale": 1.5})).width == 240


def test_an_output_over_the_pixel_limit_is_refused(start_server):
    server = start_server(max_pixels=200 * 200)
    with Client(server.url) as client:
        with pytest.raises(JobFailed) as info:
            client.run(JobRequest("classical", "upscale", rgba_payload(scene()), params={"scale": 4.0}))
        assert info.value.error.code is ErrorCode.INVALID_PARAM
        with pytest.raises(JobFailed) as info:
            client.run(JobRequest("classical", "upscale", rgba_payload(scene(300, 300))))
        assert info.value.error.code is ErrorCode.TOO_LARGE


def test_a_wrong_token_is_refused_and_the_right_one_accepted(start_server):
    server = start_server(token="s3cret")
    with pytest.raises(JobFailed) as info:
        Client(server.url, token="wrong").connect()
    assert info.value.error.code is ErrorCode.UNAUTHORIZED
    with Client(server.url, token="s3cret") as client:
        assert client.capabilities.engines


def test_cannot_connect_is_a_client_error():
    with pytest.raises(ClientError, match="Is the server running"):
        Client("ws://127.0.0.1:9/ws", timeout=2).connect()
