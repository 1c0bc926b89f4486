"""Blob frames (protocol/transfer.py): round trips, and every way a peer can lie
about them, answered with a ProtocolError before a pixel is read."""

from __future__ import annotations

import struct

import msgpack
import pytest

from paintwire.protocol import (
    ClientConnection, ConnectionState, ErrorCode, Hello, JobRequest, ProtocolError, ServerConnection, Submit, Welcome, decode_client_message,
    decode_server_message, encode, raw_image,
)
from paintwire.protocol import Encoding, ImagePayload, PixelFormat
from paintwire.protocol.messages import Capabilities, Layer, Limits, Result
from paintwire.protocol.transfer import MAGIC, MAX_BLOBS, OLD_SERVER, TransferOffer, TransferTerms, is_blob_frame, pack, unpack

W, H = 64, 64  # the mask too is big enough (MIN_BLOB) to travel as a blob
PIXELS = bytes(range(256)) * (W * H * 4 // 256)
MASK = bytes([0, 255]) * (W * H // 2)
PNG_BYTES = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + W.to_bytes(4, "big") + H.to_bytes(4, "big") + bytes(5000)  # a PNG header; never decoded here
JOB = JobRequest("classical", "inpaint", raw_image(W, H, "rgba8", PIXELS), raw_image(W, H, "l8", MASK), params={"radius": 3})


def frame(message: dict, blobs: list[bytes]) -> bytes:
    header = msgpack.packb([message, [len(b) for b in blobs]], use_bin_type=True)
    return MAGIC + struct.pack(">I", len(header)) + header + b"".join(blobs)


def submit_map(image: dict | None = None, mask: dict | None = None) -> dict:
    wire = Submit(5, JOB).to_wire()
    if image is not None:
        wire["job"]["image"] = image
    if mask is not None:
        wire["job"]["mask"] = mask
    return wire


def blob_image(index: int, width: int = W, height: int = H, fmt: str = "rgba8") -> dict:
    return {"width": width, "height": height, "format": fmt, "encoding": "raw", "blob": index}


class Segments:
    """A segment reader over a dict of named byte strings, remembering what it was told."""

    def __init__(self, store: dict[str, bytes] | None = None) -> None:
        self.store = store if store is not None else {}
        self.names: list[str] = []  # every segment a message named
        self.reads: list[int] = []  # the size of each read

    def named(self, name: str) -> None:
        self.names.append(name)

    def __call__(self, name: str, offset: int, size: int, field: str) -> bytes:
        self.reads.append(size)
        return self.store[name][offset:offset + size] if name in self.store else bytes(size)


def refused(data: bytes, code: ErrorCode = ErrorCode.BAD_FRAME, **kwargs) -> ProtocolError:
    with pytest.raises(ProtocolError) as info:
        decode_client_message(data, **kwargs)
    assert info.value.code is code, info.value
    return info.value


def test_a_submit_round_trips_as_a_blob_frame_with_its_pixels_after_the_header() -> None:
    data = encode(Submit(5, JOB), blobs=True)
    assert is_blob_frame(data) and data.endswith(PIXELS + MASK)  # the pixels travel as they are, after the header
    (size,) = struct.unpack(">I", data[4:8])
    assert size < 400  # the header is small: no pixels in it
    message = decode_client_message(data, max_pixels=W * H)
    assert message == Submit(5, JOB)
    assert isinstance(message.job.image.data, memoryview)  # a view of the frame: not copied out of it


def test_small_images_stay_inline_and_plain_msgpack_is_still_read() -> None:
    tiny = JobRequest("classical", "inpaint", raw_image(2, 1, "rgba8", bytes(8)), raw_image(2, 1, "l8", b"\x00\xff"))
    data = encode(Submit(1, tiny), blobs=True)
    assert is_blob_frame(data) and decode_client_message(data) == Submit(1, tiny)
    assert decode_client_message(encode(Submit(5, JOB))) == Submit(5, JOB)  # a client before blob frames


def test_server_messages_come_as_blob_frames_only_to_clients_that_read_them() -> None:
    layer = Layer(raw_image(W, H, "rgba8", PIXELS), 1, 2, "x")
    result = Result("j1", (layer,), W, H)
    for offer, blob in ((TransferOffer(), True), (TransferOffer(blobs=False), False)):
        server = ServerConnection()
        server.receive(encode(Hello("c", transfer=offer)))
        server.accept(Welcome("paintwire/0", Capabilities((), (), Limits(1 << 20, 1 << 20, 256, 4))))
        from paintwire.protocol import Queued, Started
        server.send(Queued("j1", 1, 0))
        server.send(Started("j1"))
        data = server.send(result)
        assert is_blob_frame(data) is blob
        assert decode_server_message(data) == result


def test_the_client_sends_blob_frames_only_to_a_server_that_reads_them() -> None:
    caps = Capabilities((), (), Limits(1 << 30, 1 << 20, 256, 4))
    for welcome, blob in ((Welcome("paintwire/0", caps), True), (Welcome("paintwire/0", caps, transfer=OLD_SERVER), False)):
        client = ClientConnection()
        client.hello("c")
        wire = welcome.to_wire()
        if welcome.transfer == OLD_SERVER:
            del wire["transfer"]  # what a server before blob frames sends
        client.receive(msgpack.packb(wire, use_bin_type=True))
        assert client.state is ConnectionState.READY and client.transfer.blobs is blob
        assert is_blob_frame(client.submit(JOB)[1]) is blob


@pytest.mark.parametrize("cut", [0, 3, 7, 8, 20, -1, -100])
def test_a_truncated_blob_frame_is_bad_frame(cut: int) -> None:
    data = encode(Submit(5, JOB), blobs=True)
    refused(data[:cut] if cut >= 0 else data[:cut])


def test_every_prefix_of_a_blob_frame_is_refused_cleanly() -> None:
    data = encode(Submit(5, JOB), blobs=True)
    for cut in range(4, 300):
        with pytest.raises(ProtocolError):
            decode_client_message(data[:cut])


def test_lying_headers_are_refused_before_any_pixel_is_read() -> None:
    good = [PIXELS, MASK]
    message = submit_map(blob_image(0), blob_image(1, fmt="l8"))
    header = msgpack.packb([message, [len(PIXELS), len(MASK)]], use_bin_type=True)
    # The header length reaches beyond the frame.
    refused(MAGIC + struct.pack(">I", 1 << 30) + header + b"".join(good))
    # Lengths that do not add up to what follows (too many bytes, too few).
    refused(frame(message, good) + b"x")
    refused(MAGIC + struct.pack(">I", len(header)) + header + PIXELS)
    # A header that is not [map, [int...]].
    for bad in ([message], {"a": 1}, [message, ["1"]], [message, [-1]], [message, [True]], [[], []], [message, [0] * (MAX_BLOBS + 1)]):
        h = msgpack.packb(bad, use_bin_type=True)
        refused(MAGIC + struct.pack(">I", len(h)) + h)
    refused(MAGIC + struct.pack(">I", 3) + b"\xc1\xc1\xc1")  # not msgpack


def test_blob_indexes_that_lie_are_refused_with_the_submits_ref() -> None:
    for image, mask in ((blob_image(2), blob_image(1, fmt="l8")), (blob_image(0), blob_image(0, fmt="l8")), (blob_image(-1), blob_image(1, fmt="l8"))):
        error = refused(frame(submit_map(image, mask), [PIXELS, MASK]))
        assert error.ref == 5 and error.field is not None and error.field.endswith(".blob")
    bad_index = dict(blob_image(0), blob="0")
    assert refused(frame(submit_map(bad_index, blob_image(1, fmt="l8")), [PIXELS, MASK])).ref == 5


def test_a_blob_of_the_wrong_size_is_bad_image_with_the_ref() -> None:
    error = refused(frame(submit_map(blob_image(0), blob_image(1, fmt="l8")), [PIXELS[:-4], MASK]), ErrorCode.BAD_IMAGE)
    assert error.ref == 5 and error.field == "job.image.data"


def test_segment_references_without_shared_memory_are_bad_segment() -> None:
    image = {"width": W, "height": H, "format": "rgba8", "shm": {"name": "paintwire-abcdefgh1234", "offset": 0}}
    error = refused(frame(submit_map(image, blob_image(0, fmt="l8")), [MASK]), ErrorCode.BAD_SEGMENT)
    assert error.ref == 5 and error.field == "job.image.shm"


def test_segment_sizes_are_checked_against_the_limits_before_reading() -> None:
    reader = Segments()
    big = {"width": 16000, "height": 16000, "format": "rgba8", "shm": {"name": "paintwire-abcdefgh1234", "offset": 0}}
    refused(frame(submit_map(big, None), []), ErrorCode.TOO_LARGE, max_pixels=1 << 20, reader=reader)
    huge = {"width": 20000, "height": 1, "format": "rgba8", "shm": {"name": "paintwire-abcdefgh1234", "offset": 0}}
    refused(frame(submit_map(huge, None), []), ErrorCode.BAD_IMAGE, reader=reader)
    png = {"width": W, "height": H, "format": "rgba8", "encoding": "png", "shm": {"name": "paintwire-abcdefgh1234", "offset": 0}}
    refused(frame(submit_map(png, None), []), ErrorCode.BAD_SEGMENT, reader=reader)
    for ref in ({"name": 3, "offset": 0}, {"name": "paintwire-abcdefgh1234", "offset": -1}, "x", {"name": "paintwire-abcdefgh1234"}):
        bad = {"width": W, "height": H, "format": "rgba8", "shm": ref}
        refused(frame(submit_map(bad, None), []), ErrorCode.BAD_SEGMENT, reader=reader)
    # Two images within max_pixels each, but over the message budget together.
    both = submit_map({"width": W, "height": H, "format": "rgba8", "shm": {"name": "paintwire-abcdefgh1234", "offset": 0}},
                      {"width": W, "height": H, "format": "l8", "shm": {"name": "paintwire-abcdefgh1234", "offset": 0}})
    refused(frame(both, []), ErrorCode.TOO_LARGE, reader=reader, max_segment_bytes=W * H * 4)
    assert reader.reads == [W * H * 4]  # only the first image, within the budget, was read
    # Every refused message still named its segment: the connection removes it when it ends.
    assert reader.names == ["paintwire-abcdefgh1234"] * 7  # all but the two references without a name (3, "x")


def test_pack_writes_segments_through_the_writer() -> None:
    store: dict[str, bytes] = {}

    def writer(parts: list) -> tuple[str, list[int]]:
        blob = b"".join(bytes(p) for p in parts)
        store["paintwire-abcdefgh1234"] = blob
        return "paintwire-abcdefgh1234", [0, len(parts[0])]

    data = pack(Submit(5, JOB).to_wire(), writer)
    assert len(data) < 500  # only the header crosses the socket
    reader = Segments(store)
    assert unpack(data, reader=reader)["job"]["image"]["data"] == PIXELS
    assert decode_client_message(data, reader=reader) == Submit(5, JOB)


def test_transfer_maps_are_read_leniently() -> None:
    assert TransferOffer.from_wire("x") == TransferOffer(blobs=False)
    assert TransferOffer.from_wire({"blobs": 1}) == TransferOffer(blobs=False)  # only true is true
    assert TransferOffer.from_wire({"blobs": True, "shm": {"name": "a", "token": "x" * 500}}).probe is None  # an over-long token
    assert TransferTerms.from_wire(None) == OLD_SERVER
    assert Hello.from_wire({"type": "hello", "client": "c", "protocol": 1}).transfer == TransferOffer(blobs=False)


def test_parameters_are_never_taken_for_images() -> None:
    """A job's params may have width and height (txt2img); they are never looked at as pixels."""
    job = JobRequest("diffusers", "txt2img", params={"width": 64, "height": 64, "format": "rgba8", "blob": 0, "data": b"x" * 5000})
    data = encode(Submit(2, job), blobs=True)
    assert decode_client_message(data).job.params["data"] == b"x" * 5000


def test_png_images_travel_as_blobs_even_with_shared_memory() -> None:
    """A segment carries raw pixels only (its size comes from the image's shape)."""
    png = ImagePayload(W, H, PixelFormat.RGBA8, PNG_BYTES, Encoding.PNG)
    job = JobRequest("classical", "inpaint", png, raw_image(W, H, "l8", MASK))
    written: list = []

    def writer(parts: list) -> tuple[str, list[int]]:
        written.extend(bytes(p) for p in parts)
        return "paintwire-abcdefgh1234", [0]

    data = pack(Submit(5, job).to_wire(), writer)
    assert written == [MASK]  # the mask went to the segment, the PNG stayed in the frame
    message = unpack(data, reader=Segments({"paintwire-abcdefgh1234": written[0]}))
    assert bytes(message["job"]["image"]["data"]) == PNG_BYTES and message["job"]["image"]["encoding"] == "png"


# --- who hears about a fault: section 6.6, "Who is answered" ---------------------------------


def lying_frames(message: dict) -> list[bytes]:
    """Blob frames of ``message`` whose map can be read but whose blob list or lengths lie."""
    blobs = [PIXELS, MASK]
    def with_lengths(lengths: object, tail: bytes = b"".join(blobs)) -> bytes:
        header = msgpack.packb([message, lengths], use_bin_type=True)
        return MAGIC + struct.pack(">I", len(header)) + header + tail
    return [
        with_lengths([len(PIXELS), len(MASK)], b"".join(blobs) + b"x"),  # bytes after the last blob
        with_lengths([len(PIXELS), len(MASK)], PIXELS),  # blobs missing
        with_lengths([len(PIXELS), -1]),
        with_lengths([len(PIXELS), True]),
        with_lengths("not a list"),
        with_lengths([0] * (MAX_BLOBS + 1)),
    ]


def test_a_lying_blob_frame_that_carries_a_submit_is_answered_with_its_ref() -> None:
    for data in lying_frames(submit_map(blob_image(0), blob_image(1, fmt="l8"))):
        assert refused(data).ref == 5  # the submit gets its one answer (section 5)


def test_a_blob_frame_whose_map_cannot_be_read_is_about_the_connection() -> None:
    header = msgpack.packb([submit_map(blob_image(0), blob_image(1, fmt="l8")), [len(PIXELS), len(MASK)]], use_bin_type=True)
    bare_map = msgpack.packb({"type": "submit", "ref": 5})
    for data in (MAGIC + struct.pack(">I", len(header) + 1) + header,  # N beyond the frame
                 MAGIC + struct.pack(">I", len(header) - 1) + header,  # a header cut short: not msgpack
                 MAGIC + struct.pack(">I", len(bare_map)) + bare_map):  # not [map, lengths]
        assert refused(data).ref is None


def test_a_lying_blob_frame_that_carries_a_preprocess_or_a_live_state_is_answered_to_it() -> None:
    from paintwire.protocol import ControlInput, Preprocess
    from paintwire.protocol.live import LiveState, LiveStateError

    control = ControlInput("canny", raw_image(W, H, "rgba8", PIXELS))
    preprocess = pack(Preprocess(9, "classical", control).to_wire())
    assert refused(preprocess + b"x").ref == 9
    state = pack(LiveState(4, 17, raw_image(W, H, "rgba8", PIXELS), raw_image(W, H, "l8", MASK)).to_wire())
    for data in (state + b"x", state[:-1]):
        error = refused(data)
        assert isinstance(error, LiveStateError) and (error.stream, error.seq) == (4, 17)
    # A bad blob index in a live state: bad_frame, field image.blob, to its stream (section 17).
    wire = LiveState(4, 17, raw_image(W, H, "rgba8", PIXELS)).to_wire()
    wire["image"] = blob_image(3)
    error = refused(frame(wire, [PIXELS]))
    assert isinstance(error, LiveStateError) and (error.field, error.stream, error.seq) == ("image.blob", 4, 17)


def test_a_blob_that_no_image_names_is_refused() -> None:
    error = refused(frame(submit_map(blob_image(0), blob_image(1, fmt="l8")), [PIXELS, MASK, b"spare"]))
    assert error.ref == 5 and "Blob 2" in error.message
    error = refused(frame(submit_map(blob_image(1), {"width": W, "height": H, "format": "l8", "data": MASK}), [MASK, PIXELS]))
    assert error.ref == 5 and "Blob 0" in error.message


@pytest.mark.parametrize("extra", [{"data": PIXELS}, {"shm": {"name": "paintwire-abcdefgh1234", "offset": 0}}])
def test_an_image_with_two_sources_of_pixels_is_refused(extra: dict) -> None:
    error = refused(frame(submit_map({**blob_image(0), **extra}, blob_image(1, fmt="l8")), [PIXELS, MASK]), ErrorCode.BAD_IMAGE,
                    reader=Segments())
    assert error.ref == 5 and error.field == "job.image" and "blob" in error.message
    plain = msgpack.packb(submit_map({**JOB.image.to_wire(), "shm": {"name": "paintwire-abcdefgh1234", "offset": 0}}), use_bin_type=True)
    error = refused(plain, ErrorCode.BAD_IMAGE, reader=Segments())
    assert error.ref == 5 and "data and shm" in error.message
    nil_is_absent = {**blob_image(0), "data": None, "shm": None}
    assert decode_client_message(frame(submit_map(nil_is_absent, blob_image(1, fmt="l8")), [PIXELS, MASK])) == Submit(5, JOB)


def test_a_plain_frame_is_a_blob_frame_without_blobs() -> None:
    ref = {"name": "paintwire-abcdefgh1234", "offset": 0}
    segment_image = {"width": W, "height": H, "format": "rgba8", "shm": ref}
    plain = msgpack.packb(submit_map(segment_image), use_bin_type=True)
    error = refused(plain, ErrorCode.BAD_SEGMENT)  # no shared memory agreed: bad_segment, as in a blob frame
    assert error.ref == 5 and error.field == "job.image.shm"
    reader = Segments({"paintwire-abcdefgh1234": PIXELS})
    assert decode_client_message(plain, reader=reader) == Submit(5, JOB)  # agreed: read as in a blob frame
    error = refused(msgpack.packb(submit_map(blob_image(0)), use_bin_type=True))
    assert error.ref == 5 and error.field == "job.image.blob" and "none" in error.message
