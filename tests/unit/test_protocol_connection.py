"""The two sans-I/O state machines: ClientConnection and ServerConnection.

Frames are real bytes from the codec; a server's frames are made with
ServerConnection (or encode() where a test needs a frame that a correct server
would refuse to send), and fed to a ClientConnection, and the other way round.
"""

from __future__ import annotations

from typing import Any

import msgpack
import pytest

from paintwire.protocol.transfer import TransferOffer
from paintwire.protocol import (
    PROTOCOL_VERSION,
    Cancel,
    Cancelled,
    Capabilities,
    ClientConnection,
    ConnectionState,
    EngineInfo,
    Error,
    ErrorCode,
    Hello,
    ImagePayload,
    JobPhase,
    JobRequest,
    Layer,
    Limits,
    ModelInfo,
    ModeSpec,
    PixelFormat,
    Preview,
    Progress,
    ProtocolError,
    Queued,
    Result,
    ServerConnection,
    Started,
    Submit,
    Welcome,
    decode_client_message,
    decode_server_message,
    encode,
)

# accepts_mask and the model label are explicit so that the read-back equals the original
# (the wire always carries them; see test_capability_defaults_are_read_as_documented).
CAPS = Capabilities(
    engines=(EngineInfo("classical", "Classical", (ModeSpec("inpaint", "Inpaint", "", needs_image=True, needs_mask=True, accepts_mask=True),)),),
    models=(ModelInfo("opencv", "classical", "builtin", "OpenCV"),),
    limits=Limits(max_message_bytes=1 << 20, max_pixels=1 << 16, max_side=256, max_queued_per_client=4),
)
WELCOME = Welcome("paintwire/0.1.0", CAPS)
IMAGE = ImagePayload(2, 2, PixelFormat.RGBA8, bytes(16))
MASK = ImagePayload(2, 2, PixelFormat.L8, bytes(4))
JOB = JobRequest("classical", "inpaint", IMAGE, MASK)
PREVIEW_IMAGE = ImagePayload(1, 1, PixelFormat.RGBA8, bytes(4))
RESULT_LAYER = Layer(IMAGE, 0, 0, "Inpaint")


def pack(obj: Any) -> bytes:
    return msgpack.packb(obj, use_bin_type=True)


def ready_client() -> ClientConnection:
    client = ClientConnection()
    client.hello("test/1.0")
    assert isinstance(client.receive(encode(WELCOME)), Welcome)
    return client


def ready_server(max_pixels: int | None = None) -> ServerConnection:
    server = ServerConnection(max_pixels=max_pixels)
    server.receive(encode(Hello("test/1.0")))
    server.accept(WELCOME)
    return server


def client_with_job(job_id: str = "j1", position: int = 0) -> tuple[ClientConnection, int]:
    client = ready_client()
    ref, _ = client.submit(JOB)
    client.receive(encode(Queued(job_id, ref, position)))
    return client, ref


def violation(client: ClientConnection, message: Any, field: str | None = None) -> ProtocolError:
    with pytest.raises(ProtocolError) as info:
        client.receive(encode(message))
    assert info.value.code is ErrorCode.BAD_MESSAGE, info.value
    if field is not None:
        assert info.value.field == field
    assert client.state is ConnectionState.ERROR
    return info.value


# --- client: handshake -----------------------------------------------------------------------------


def test_client_handshake() -> None:
    client = ClientConnection()
    assert client.state is ConnectionState.START
    frame = client.hello("paintwire-krita/0.1.0", token="s3cret")
    assert client.state is ConnectionState.HELLO_SENT
    # A client of this version reads blob frames, and says so.
    assert decode_client_message(frame) == Hello("paintwire-krita/0.1.0", PROTOCOL_VERSION, "s3cret", transfer=TransferOffer(blobs=True))
    assert client.receive(encode(WELCOME)) == WELCOME
    assert client.state is ConnectionState.READY
    assert client.capabilities == CAPS
    assert client.server_name == "paintwire/0.1.0"
    assert client.jobs == {}


def test_client_hello_without_token_sends_nil() -> None:
    frame = ClientConnection().hello("x")
    assert msgpack.unpackb(frame, raw=False)["token"] is None


@pytest.mark.parametrize("action", ["submit", "cancel"])
def test_client_cannot_act_before_welcome(action: str) -> None:
    client = ClientConnection()
    act = (lambda: client.submit(JOB)) if action == "submit" else (lambda: client.cancel("j1"))
    with pytest.raises(RuntimeError):
        act()  # nothing sent yet
    client.hello("x")
    with pytest.raises(RuntimeError):
        act()  # hello sent, no welcome yet


def test_client_hello_only_once() -> None:
    client = ClientConnection()
    client.hello("x")
    with pytest.raises(RuntimeError):
        client.hello("x")
    client = ready_client()
    with pytest.raises(RuntimeError):
        client.hello("x")


@pytest.mark.parametrize("version", [0, 2, PROTOCOL_VERSION + 1, -1])
def test_client_refuses_a_welcome_of_another_version(version: int) -> None:
    client = ClientConnection()
    client.hello("x")
    with pytest.raises(ProtocolError) as info:
        client.receive(encode(Welcome("paintwire/9", CAPS, protocol=version)))
    assert info.value.code is ErrorCode.UNSUPPORTED_VERSION
    assert client.state is ConnectionState.ERROR
    assert client.capabilities is None


@pytest.mark.parametrize("code", [ErrorCode.UNSUPPORTED_VERSION, ErrorCode.UNAUTHORIZED, ErrorCode.BAD_MESSAGE])
def test_client_error_before_welcome_closes(code: ErrorCode) -> None:
    client = ClientConnection()
    client.hello("x")
    error = Error(code, "No.", "token")
    assert client.receive(encode(error)) == error  # returned, not raised
    assert client.state is ConnectionState.CLOSED
    with pytest.raises(RuntimeError):
        client.submit(JOB)
    with pytest.raises(ProtocolError):
        client.receive(encode(WELCOME))  # nothing more may come on a rejected connection


@pytest.mark.parametrize(
    "message",
    [Queued("j1", 1, 0), Started("j1"), Error(ErrorCode.ENGINE_FAILED, "m", job="j1"), Error(ErrorCode.QUEUE_FULL, "m", ref=1), Cancelled("j1")],
    ids=lambda m: m.TYPE,
)
def test_client_anything_but_welcome_or_error_before_welcome_is_a_violation(message: Any) -> None:
    client = ClientConnection()
    client.hello("x")
    violation(client, message, "type")


def test_client_message_before_hello_is_a_violation() -> None:
    client = ClientConnection()
    violation(client, WELCOME, "type")


def test_client_second_welcome_is_a_violation() -> None:
    violation(ready_client(), WELCOME, "type")


def test_client_garbage_from_the_server_puts_it_in_error() -> None:
    client = ready_client()
    with pytest.raises(ProtocolError) as info:
        client.receive(b"\xc1")
    assert info.value.code is ErrorCode.BAD_FRAME
    assert client.state is ConnectionState.ERROR
    with pytest.raises(ProtocolError):
        client.receive(encode(Error(ErrorCode.INTERNAL, "m")))  # an ERROR connection is unusable
    with pytest.raises(RuntimeError):
        client.submit(JOB)


def test_client_refuses_client_messages_from_the_server() -> None:
    client = ready_client()
    with pytest.raises(ProtocolError) as info:
        client.receive(encode(Hello("x")))
    assert info.value.code is ErrorCode.UNKNOWN_TYPE


# --- client: submits, refs and queued --------------------------------------------------------------------


def test_submit_refs_count_up_and_are_in_the_frame() -> None:
    client = ready_client()
    refs = []
    for _ in range(3):
        ref, frame = client.submit(JOB)
        refs.append(ref)
        assert decode_client_message(frame) == Submit(ref, JOB)
    assert refs == [1, 2, 3]


def test_submit_over_the_message_limit_is_refused_before_sending() -> None:
    """The server would close the connection (1009) on a frame over max_message_bytes;
    the client says why instead, and the ref stays unused."""
    size = len(encode(Submit(1, JOB), blobs=True))  # a server of this version reads blob frames
    for limit, fits in ((size, True), (size - 1, False)):  # the limit is inclusive
        caps = Capabilities(CAPS.engines, CAPS.models, Limits(limit, 1 << 16, 256, 4))
        client = ClientConnection()
        client.hello("x")
        client.receive(encode(Welcome("paintwire/0.1.0", caps)))
        if fits:
            assert client.submit(JOB)[0] == 1
            continue
        with pytest.raises(ProtocolError) as info:
            client.submit(JOB)
        assert (info.value.code, info.value.field) == (ErrorCode.TOO_LARGE, "job")
        assert client.state is ConnectionState.READY
        small = JobRequest("classical", "inpaint")
        assert client.submit(small)[0] == 1  # the refused job took no ref
        violation(client, Queued("j9", 2, 0), "ref")  # and left nothing pending


def test_queued_maps_ref_to_job() -> None:
    client = ready_client()
    ref1, _ = client.submit(JOB)
    ref2, _ = client.submit(JOB)
    client.receive(encode(Queued("b", ref2, 1)))  # answers may name refs in any order the server chose
    client.receive(encode(Queued("a", ref1, 0)))
    assert (client.jobs["a"].ref, client.jobs["a"].position, client.jobs["a"].phase) == (ref1, 0, JobPhase.QUEUED)
    assert (client.jobs["b"].ref, client.jobs["b"].position) == (ref2, 1)


def test_queued_for_a_ref_never_sent_is_a_violation() -> None:
    client = ready_client()
    violation(client, Queued("j1", 99, 0), "ref")


def test_a_ref_answers_only_once() -> None:
    client, ref = client_with_job("j1")
    violation(client, Queued("j2", ref, 0), "ref")


def test_submit_error_clears_the_ref() -> None:
    client = ready_client()
    ref, _ = client.submit(JOB)
    error = Error(ErrorCode.UNKNOWN_ENGINE, "No engine.", "job.engine", ref=ref)
    assert client.receive(encode(error)) == error
    assert client.state is ConnectionState.READY and client.jobs == {}
    violation(client, Queued("j1", ref, 0), "ref")  # a refused submit never becomes a job


def test_connection_level_errors_keep_the_connection_ready() -> None:
    client, _ = client_with_job("j1")
    for code in (ErrorCode.BAD_FRAME, ErrorCode.UNKNOWN_JOB, ErrorCode.HELLO_REQUIRED, ErrorCode.INTERNAL):
        client.receive(encode(Error(code, "m")))
        assert client.state is ConnectionState.READY
    assert client.jobs["j1"].phase is JobPhase.QUEUED


def test_position_updates() -> None:
    client, ref = client_with_job("j1", position=3)
    for position in (2, 1, 0):
        client.receive(encode(Queued("j1", ref, position)))
        assert client.jobs["j1"].position == position
    client.receive(encode(Started("j1")))
    assert client.jobs["j1"].phase is JobPhase.RUNNING


def test_cancel_frame() -> None:
    client, _ = client_with_job("j1")
    assert decode_client_message(client.cancel("j1")) == Cancel("j1")


# --- client: job event order -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "final",
    [Result("j1", (RESULT_LAYER,), 2, 2), Error(ErrorCode.ENGINE_FAILED, "m", job="j1"), Cancelled("j1")],
    ids=lambda m: m.TYPE,
)
def test_full_job_lifecycle(final: Any) -> None:
    client, _ = client_with_job("j1", position=1)
    for event in (Queued("j1", 1, 0), Started("j1"), Progress("j1", 0, 4), Preview("j1", PREVIEW_IMAGE), Progress("j1", 4, 4, "decoding")):
        assert client.receive(encode(event)) == event
    assert (client.jobs["j1"].step, client.jobs["j1"].total) == (4, 4)
    assert client.receive(encode(final)) == final
    assert "j1" not in client.jobs and client.state is ConnectionState.READY


@pytest.mark.parametrize("final", [Cancelled("j1"), Error(ErrorCode.SHUTTING_DOWN, "m", job="j1")], ids=lambda m: m.TYPE)
def test_a_queued_job_may_end_without_starting(final: Any) -> None:
    client, _ = client_with_job("j1")
    client.receive(encode(final))
    assert client.jobs == {}


@pytest.mark.parametrize(
    "event",
    [Progress("j1", 1, 2), Preview("j1", PREVIEW_IMAGE), Result("j1", (), 1, 1)],
    ids=lambda m: m.TYPE,
)
def test_running_events_before_started_are_violations(event: Any) -> None:
    client, _ = client_with_job("j1")
    violation(client, event, "type")


@pytest.mark.parametrize("event", [Started("j1"), Queued("j1", 1, 0)], ids=lambda m: m.TYPE)
def test_queue_events_after_started_are_violations(event: Any) -> None:
    client, _ = client_with_job("j1")
    client.receive(encode(Started("j1")))
    violation(client, event, "type")


@pytest.mark.parametrize(
    "final",
    [Result("j1", (), 1, 1), Error(ErrorCode.ENGINE_FAILED, "m", job="j1"), Cancelled("j1")],
    ids=lambda m: m.TYPE,
)
@pytest.mark.parametrize(
    "after",
    [Started("j1"), Progress("j1", 1, 1), Preview("j1", PREVIEW_IMAGE), Result("j1", (), 1, 1), Cancelled("j1"), Error(ErrorCode.INTERNAL, "m", job="j1")],
    ids=lambda m: m.TYPE,
)
def test_events_after_the_final_one_are_violations(final: Any, after: Any) -> None:
    client, _ = client_with_job("j1")
    client.receive(encode(Started("j1")))
    client.receive(encode(final))
    violation(client, after, "job")


@pytest.mark.parametrize(
    "event",
    [Started("zz"), Progress("zz", 1, 2), Preview("zz", PREVIEW_IMAGE), Result("zz", (), 1, 1), Cancelled("zz"), Error(ErrorCode.ENGINE_FAILED, "m", job="zz")],
    ids=lambda m: m.TYPE,
)
def test_events_for_unknown_jobs_are_violations(event: Any) -> None:
    client, _ = client_with_job("j1")
    violation(client, event, "job")


def test_jobs_interleave() -> None:
    client = ready_client()
    r1, _ = client.submit(JOB)
    r2, _ = client.submit(JOB)
    frames = [Queued("a", r1, 0), Queued("b", r2, 1), Started("a"), Progress("a", 1, 2), Queued("b", r2, 0),
              Result("a", (), 2, 2), Started("b"), Cancelled("b")]
    for message in frames:
        client.receive(encode(message))
    assert client.jobs == {} and client.state is ConnectionState.READY


# --- server: hello ------------------------------------------------------------------------------------


def test_server_handshake() -> None:
    server = ServerConnection()
    assert server.state is ConnectionState.START
    hello = server.receive(encode(Hello("paintwire-gimp/0.1.0", token="t")))
    assert hello == Hello("paintwire-gimp/0.1.0", PROTOCOL_VERSION, "t")
    assert server.client_name == "paintwire-gimp/0.1.0"
    assert server.state is ConnectionState.START  # until the server accepts (after checking the token)
    assert decode_server_message(server.accept(WELCOME)) == WELCOME
    assert server.state is ConnectionState.READY


@pytest.mark.parametrize("message", [Submit(1, JOB), Cancel("j1")], ids=lambda m: m.TYPE)
def test_server_hello_required_first(message: Any) -> None:
    server = ServerConnection()
    with pytest.raises(ProtocolError) as info:
        server.receive(encode(message))
    assert (info.value.code, info.value.field) == (ErrorCode.HELLO_REQUIRED, "type")
    assert server.state is ConnectionState.START  # the client may still say hello
    assert server.receive(encode(Hello("x"))).client == "x"


def test_server_second_hello_is_rejected() -> None:
    server = ready_server()
    with pytest.raises(ProtocolError) as info:
        server.receive(encode(Hello("again")))
    assert (info.value.code, info.value.field) == (ErrorCode.HELLO_REQUIRED, "type")
    assert server.state is ConnectionState.READY
    assert server.client_name == "test/1.0"
    assert isinstance(server.receive(encode(Cancel("j1"))), Cancel)


@pytest.mark.parametrize("version", [0, 2, 999])
def test_server_unsupported_version_closes(version: int) -> None:
    server = ServerConnection()
    with pytest.raises(ProtocolError) as info:
        server.receive(encode(Hello("x", protocol=version)))
    assert (info.value.code, info.value.field) == (ErrorCode.UNSUPPORTED_VERSION, "protocol")
    assert str(PROTOCOL_VERSION) in info.value.message and str(version) in info.value.message
    assert server.state is ConnectionState.CLOSED
    with pytest.raises(ProtocolError) as again:
        server.receive(encode(Hello("x")))
    assert again.value.code is ErrorCode.HELLO_REQUIRED
    with pytest.raises(RuntimeError):
        server.accept(WELCOME)


def test_server_reject_closes() -> None:
    server = ServerConnection()
    server.receive(encode(Hello("x")))
    frame = server.reject(Error(ErrorCode.UNAUTHORIZED, "Token needed.", "token"))
    assert decode_server_message(frame) == Error(ErrorCode.UNAUTHORIZED, "Token needed.", "token")
    assert server.state is ConnectionState.CLOSED
    with pytest.raises(ProtocolError):
        server.receive(encode(Submit(1, JOB)))


def test_server_accept_only_once_and_only_after_hello() -> None:
    with pytest.raises(RuntimeError):
        ServerConnection().accept(WELCOME)
    server = ready_server()
    with pytest.raises(RuntimeError):
        server.accept(WELCOME)


def test_server_bad_frames_keep_the_connection() -> None:
    server = ready_server()
    for data, code in ((b"\xc1", ErrorCode.BAD_FRAME), (pack({"type": "welcome"}), ErrorCode.UNKNOWN_TYPE), (pack({"type": "cancel"}), ErrorCode.BAD_MESSAGE)):
        with pytest.raises(ProtocolError) as info:
            server.receive(data)
        assert info.value.code is code
        assert server.state is ConnectionState.READY
    assert server.receive(encode(Submit(3, JOB))) == Submit(3, JOB)


def test_server_applies_its_pixel_limit() -> None:
    server = ready_server(max_pixels=3)
    with pytest.raises(ProtocolError) as info:
        server.receive(encode(Submit(8, JOB)))
    assert (info.value.code, info.value.field, info.value.ref) == (ErrorCode.TOO_LARGE, "job.image", 8)


# --- server: send() guards the event order --------------------------------------------------------------


def test_server_send_tracks_ownership() -> None:
    server = ready_server()
    assert not server.owns("j1")
    assert decode_server_message(server.send(Queued("j1", 1, 2))) == Queued("j1", 1, 2)
    assert server.owns("j1")
    for event in (Queued("j1", 1, 1), Started("j1"), Progress("j1", 1, 3), Preview("j1", PREVIEW_IMAGE)):
        assert decode_server_message(server.send(event)) == event
    server.send(Result("j1", (RESULT_LAYER,), 2, 2))
    assert not server.owns("j1")


@pytest.mark.parametrize(
    "prefix, event",
    [
        ([], Started("j1")),
        ([], Progress("j1", 1, 2)),
        ([], Cancelled("j1")),
        ([Queued("j1", 1, 0)], Progress("j1", 1, 2)),
        ([Queued("j1", 1, 0)], Preview("j1", PREVIEW_IMAGE)),
        ([Queued("j1", 1, 0)], Result("j1", (), 1, 1)),
        ([Queued("j1", 1, 0), Started("j1")], Started("j1")),
        ([Queued("j1", 1, 0), Started("j1")], Queued("j1", 1, 0)),
        ([Queued("j1", 1, 0), Cancelled("j1")], Cancelled("j1")),
        ([Queued("j1", 1, 0), Started("j1"), Result("j1", (), 1, 1)], Progress("j1", 1, 1)),
        ([Queued("j1", 1, 0), Started("j1"), Error(ErrorCode.ENGINE_FAILED, "m", job="j1")], Result("j1", (), 1, 1)),
    ],
    ids=lambda v: "-".join(m.TYPE for m in v) if isinstance(v, list) else v.TYPE,
)
def test_server_send_refuses_out_of_order_events(prefix: list, event: Any) -> None:
    server = ready_server()
    for message in prefix:
        server.send(message)
    with pytest.raises(RuntimeError, match="server bug"):
        server.send(event)


def test_server_send_connection_errors_any_time() -> None:
    server = ServerConnection()
    assert decode_server_message(server.send(Error(ErrorCode.HELLO_REQUIRED, "Hello first."))).code is ErrorCode.HELLO_REQUIRED
    server = ready_server()
    server.send(Error(ErrorCode.QUEUE_FULL, "Full.", ref=4))
    server.send(Error(ErrorCode.UNKNOWN_JOB, "No such job.", "job"))


# --- both ends together -----------------------------------------------------------------------------


def test_client_and_server_talk() -> None:
    client, server = ClientConnection(), ServerConnection(max_pixels=1 << 16)
    hello = server.receive(client.hello("demo/1.0"))
    assert hello.client == "demo/1.0"
    client.receive(server.accept(WELCOME))
    ref, frame = client.submit(JOB)
    submit = server.receive(frame)
    assert submit == Submit(ref, JOB)
    events = [Queued("j1", ref, 1), Queued("j1", ref, 0), Started("j1"), Progress("j1", 0, 2, "inpainting"),
              Preview("j1", PREVIEW_IMAGE, 0, 0, 2, 2), Progress("j1", 2, 2, "inpainting"), Result("j1", (RESULT_LAYER,), 2, 2)]
    for event in events:
        assert client.receive(server.send(event)) == event
    assert client.jobs == {} and not server.owns("j1")
    cancel = server.receive(client.cancel("j1"))
    assert cancel == Cancel("j1")
    error = Error(ErrorCode.UNKNOWN_JOB, "No job 'j1' of yours is queued or running.", "job")
    assert client.receive(server.send(error)) == error and client.state is ConnectionState.READY


ALL_EVENTS = [
    Queued("j1", 1, 0), Started("j1"), Progress("j1", 1, 2), Preview("j1", PREVIEW_IMAGE),
    Result("j1", (), 1, 1), Error(ErrorCode.ENGINE_FAILED, "m", job="j1"), Cancelled("j1"),
]
PREFIXES = [
    [Queued("j1", 1, 0)],
    [Queued("j1", 1, 0), Queued("j1", 1, 0)],
    [Queued("j1", 1, 0), Started("j1")],
    [Queued("j1", 1, 0), Started("j1"), Progress("j1", 1, 2), Preview("j1", PREVIEW_IMAGE)],
]


@pytest.mark.parametrize("prefix", PREFIXES, ids=lambda p: "-".join(m.TYPE for m in p))
@pytest.mark.parametrize("event", ALL_EVENTS, ids=lambda m: m.TYPE)
def test_client_and_server_agree_on_what_may_follow(prefix: list, event: Any) -> None:
    """What the server refuses to send is exactly what the client refuses to receive."""
    client = ready_client()
    client.submit(JOB)
    server = ready_server()
    for message in prefix:
        client.receive(server.send(message))
    try:
        server.send(event)
        server_ok = True
    except RuntimeError:
        server_ok = False
    try:
        client.receive(encode(event))
        client_ok = True
    except ProtocolError:
        client_ok = False
    assert server_ok == client_ok
