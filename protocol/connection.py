"""The two ends of a Paintwire connection as sans-I/O state machines.

Like h11's Connection: bytes in, typed messages out; messages in, bytes out.
No sockets, threads or event loop: the server drives ServerConnection from
asyncio, the plug-ins and the blocking client drive ClientConnection from
whatever they have. One websocket binary message is one call.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from .codec import decode_client_message, decode_server_message, encode
from .controls import ControlInput, Preprocess, Preprocessed
from .errors import ErrorCode, ProtocolError
from .live import LIVE_SERVER_TYPES, LiveClientMessage
from .messages import (
    FINAL_EVENTS,
    PROTOCOL_VERSION,
    Cancel,
    Cancelled,
    Capabilities,
    CapabilitiesUpdate,
    Error,
    Hello,
    JobRequest,
    Preview,
    Progress,
    Queued,
    Recall,
    Rescan,
    Result,
    Started,
    Submit,
    Welcome,
)
from .transfer import NO_OFFER, OLD_SERVER, SegmentReader, SegmentWriter, TransferOffer, TransferTerms


class ConnectionState(enum.Enum):
    START = "start"  # client: nothing sent; server: waiting for hello
    HELLO_SENT = "hello_sent"  # client only: waiting for welcome
    READY = "ready"
    CLOSED = "closed"  # the peer rejected the connection, or it was closed
    ERROR = "error"  # the peer broke the protocol; the connection is unusable


class JobPhase(enum.Enum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"


# Which job event may follow which phase. Anything else from a server is a
# protocol violation; from our own server it is a bug.
_ALLOWED: dict[JobPhase, tuple[type, ...]] = {
    JobPhase.QUEUED: (Queued, Started, Cancelled, Error),
    JobPhase.RUNNING: (Progress, Preview, Result, Error, Cancelled),
    JobPhase.DONE: (),
}


@dataclass
class JobStatus:
    """What a client knows about one of its jobs."""

    id: str
    ref: int
    phase: JobPhase = JobPhase.QUEUED
    position: int = 0
    step: int = 0
    total: int = 0


def _advance(job: JobStatus, event: Any) -> None:
    if not isinstance(event, _ALLOWED[job.phase]):
        raise ProtocolError(ErrorCode.BAD_MESSAGE, f"A {event.TYPE} event is not allowed while job {job.id} is {job.phase.value}.", "type")
    if isinstance(event, Queued):
        job.position = event.position
    elif isinstance(event, Started):
        job.phase = JobPhase.RUNNING
    elif isinstance(event, Progress):
        job.step, job.total = event.step, event.total
    if isinstance(event, FINAL_EVENTS):
        job.phase = JobPhase.DONE


class ClientConnection:
    """The client's side: hello, submit and cancel out; welcome and job events in."""

    def __init__(self) -> None:
        self.state = ConnectionState.START
        self.capabilities: Capabilities | None = None
        self.server_name: str | None = None
        self.client_id: str | None = None  # this connection's id on the server (welcome), for /api/clients
        self.jobs: dict[str, JobStatus] = {}
        self._pending: set[int] = set()  # submit refs without a queued or error yet
        self._preprocessing: set[int] = set()  # preprocess refs without a preprocessed or error yet
        self._next_ref = 1
        self.transfer: TransferTerms = OLD_SERVER  # what the server's welcome agreed to

    # -- outgoing -----------------------------------------------------------------------

    def hello(self, client: str, token: str | None = None, updates: bool = False, transfer: TransferOffer = TransferOffer(),
              recall: bool = False) -> bytes:
        """``updates``: ask for a ``capabilities`` message whenever they change.
        ``transfer``: this side reads blob frames (and offers a shared-memory probe).
        ``recall``: this client takes ``recall`` messages."""
        self._expect(ConnectionState.START, "hello")
        self.state = ConnectionState.HELLO_SENT
        return encode(Hello(client=client, token=token, updates=updates, transfer=transfer, recall=recall))

    def submit(self, job: JobRequest, writer: SegmentWriter | None = None) -> tuple[int, bytes]:
        """Returns the ref that the job's first event will echo, and the frame to send:
        a blob frame when the server reads them, else plain msgpack. ``writer`` puts
        the pixels in a shared-memory segment (only when the welcome agreed to it).

        Raises ProtocolError(TOO_LARGE) when the frame is over the server's
        max_message_bytes; nothing is then pending."""
        self._expect(ConnectionState.READY, "submit")
        ref = self._next_ref
        frame = encode(Submit(ref=ref, job=job), blobs=self.transfer.blobs, writer=writer if self.transfer.shm else None)
        limit = self.capabilities.limits.max_message_bytes if self.capabilities is not None else None
        if limit is not None and len(frame) > limit:
            # The server would close the connection (websocket code 1009) without
            # reading the frame; say why here, before sending megabytes for nothing.
            raise ProtocolError(
                ErrorCode.TOO_LARGE,
                f"This job is {len(frame)} bytes on the wire; the server accepts at most {limit} per message. Send a smaller image or crop to the selection.",
                "job",
            )
        self._next_ref += 1
        self._pending.add(ref)
        return ref, frame

    def preprocess(self, engine: str, control: ControlInput) -> tuple[int, bytes]:
        """Ask for the image a model reads from one control layer; returns the ref
        that the ``preprocessed`` answer (or the ``error``) will echo, and the frame."""
        self._expect(ConnectionState.READY, "preprocess")
        ref = self._next_ref
        self._next_ref += 1
        self._preprocessing.add(ref)
        return ref, encode(Preprocess(ref=ref, engine=engine, control=control))

    def cancel(self, job_id: str) -> bytes:
        self._expect(ConnectionState.READY, "cancel")
        return encode(Cancel(job=job_id))

    def rescan(self) -> bytes:
        """Ask the server to rescan its model folders; ``capabilities`` follows."""
        self._expect(ConnectionState.READY, "rescan")
        return encode(Rescan())

    def live(self, message: LiveClientMessage) -> bytes:
        """A live stream message's frame. Raises ProtocolError(TOO_LARGE) for a state
        over the server's max_message_bytes (the server would close the connection)."""
        self._expect(ConnectionState.READY, message.TYPE)
        # A state's pixels go in a blob frame when the server reads them (no shared memory:
        # a segment is held until its message is answered, and states come faster than that).
        frame = encode(message, blobs=self.transfer.blobs)
        limit = self.capabilities.limits.max_message_bytes if self.capabilities is not None else None
        if limit is not None and len(frame) > limit:
            raise ProtocolError(ErrorCode.TOO_LARGE, f"This live state is {len(frame)} bytes; the server accepts at most {limit}. Use a smaller region.", "image")
        return frame

    def _expect(self, state: ConnectionState, action: str) -> None:
        if self.state is not state:
            raise RuntimeError(f"Cannot {action} while the connection is {self.state.value}.")

    # -- incoming -----------------------------------------------------------------------

    def receive(self, data: bytes) -> Any:
        """Read one frame from the server; returns the message it carried.

        A frame that breaks the protocol raises ProtocolError and puts the
        connection in ERROR. An Error message is returned, not raised.
        """
        try:
            message = decode_server_message(data)
            self._apply(message)
        except ProtocolError:
            self.state = ConnectionState.ERROR
            raise
        return message

    def _apply(self, message: Any) -> None:
        if self.state is ConnectionState.HELLO_SENT:
            if isinstance(message, Welcome):
                if message.protocol != PROTOCOL_VERSION:
                    raise ProtocolError(ErrorCode.UNSUPPORTED_VERSION, f"The server speaks protocol {message.protocol}; this client speaks {PROTOCOL_VERSION}.")
                self.capabilities = message.capabilities
                self.server_name = message.server
                self.client_id = message.client_id
                self.transfer = message.transfer
                self.state = ConnectionState.READY
                return
            if isinstance(message, Error) and message.job is None and message.ref is None:
                self.state = ConnectionState.CLOSED  # hello rejected: bad version or token
                return
            raise ProtocolError(ErrorCode.BAD_MESSAGE, f"Expected welcome, got {message.TYPE}.", "type")
        if self.state is not ConnectionState.READY:
            raise ProtocolError(ErrorCode.BAD_MESSAGE, f"Unexpected {message.TYPE} while the connection is {self.state.value}.", "type")
        if isinstance(message, Welcome):
            raise ProtocolError(ErrorCode.BAD_MESSAGE, "A second welcome.", "type")
        if isinstance(message, CapabilitiesUpdate):
            self.capabilities = message.capabilities
            return
        if isinstance(message, Recall):
            return  # belongs to no job
        if isinstance(message, LIVE_SERVER_TYPES):
            return  # live streams are the client's own bookkeeping (hostkit.live): no job state here
        if isinstance(message, Error) and message.job is None:
            if message.ref is not None:
                self._pending.discard(message.ref)  # a submit was rejected; no job exists
                self._preprocessing.discard(message.ref)
            return
        if isinstance(message, Preprocessed):
            if message.ref not in self._preprocessing:
                raise ProtocolError(ErrorCode.BAD_MESSAGE, f"preprocessed for ref {message.ref}, which this client never asked for.", "ref")
            self._preprocessing.discard(message.ref)
            return
        if isinstance(message, Queued) and message.job not in self.jobs:
            if message.ref not in self._pending:
                raise ProtocolError(ErrorCode.BAD_MESSAGE, f"Queued event for ref {message.ref}, which this client never submitted.", "ref")
            self._pending.discard(message.ref)
            self.jobs[message.job] = JobStatus(message.job, message.ref, position=message.position)
            return
        job = self.jobs.get(message.job)
        if job is None:
            raise ProtocolError(ErrorCode.BAD_MESSAGE, f"Event for unknown job {message.job!r}.", "job")
        _advance(job, message)
        if job.phase is JobPhase.DONE:
            del self.jobs[job.id]


class ServerConnection:
    """The server's side of one connection: enforces hello first and the job
    event order, so a server bug cannot send a client an impossible sequence."""

    def __init__(self, max_pixels: int | None = None) -> None:
        self.state = ConnectionState.START
        self.client_name: str | None = None
        self.max_pixels = max_pixels
        self._jobs: dict[str, JobStatus] = {}
        self.offer: TransferOffer = NO_OFFER  # what the client's hello said it can take
        self.segment_reader: SegmentReader | None = None  # set once shared memory is agreed
        self.max_segment_bytes: int | None = None  # what one message may read from segments

    def receive(self, data: bytes) -> Hello | Submit | Cancel | Rescan | Preprocess:
        """Read one frame from the client. Raises ProtocolError for anything the
        server must reject; the connection stays usable unless it is a bad hello."""
        if self.state is ConnectionState.CLOSED:
            raise ProtocolError(ErrorCode.HELLO_REQUIRED, "The connection was rejected; open a new one.")
        message = decode_client_message(data, self.max_pixels, self.segment_reader, self.max_segment_bytes)
        if self.state is ConnectionState.START:
            if not isinstance(message, Hello):
                raise ProtocolError(ErrorCode.HELLO_REQUIRED, f"The first message must be hello, not {message.TYPE}.", "type")
            if message.protocol != PROTOCOL_VERSION:
                self.state = ConnectionState.CLOSED
                raise ProtocolError(
                    ErrorCode.UNSUPPORTED_VERSION,
                    f"This server speaks protocol version {PROTOCOL_VERSION}; the client asked for {message.protocol}. Update the client or the server.",
                    "protocol",
                )
            self.client_name = message.client
            self.offer = message.transfer
            return message
        if isinstance(message, Hello):
            raise ProtocolError(ErrorCode.HELLO_REQUIRED, "hello was already received on this connection.", "type")
        return message

    def accept(self, welcome: Welcome) -> bytes:
        """Answer the hello (after the server checked the token)."""
        if self.state is not ConnectionState.START or self.client_name is None:
            raise RuntimeError("accept() comes once, after a valid hello")
        self.state = ConnectionState.READY
        return encode(welcome)

    def reject(self, error: Error) -> bytes:
        """Refuse the connection (bad token); the caller closes it after sending."""
        self.state = ConnectionState.CLOSED
        return encode(error)

    def send(self, message: Any) -> bytes:
        """Encode a job event or an error, checking the job's event order."""
        job_id = getattr(message, "job", None)
        if isinstance(message, Queued) and job_id not in self._jobs:
            self._jobs[job_id] = JobStatus(job_id, message.ref)
        elif job_id is not None:
            job = self._jobs.get(job_id)
            if job is None:
                raise RuntimeError(f"server bug: {message.TYPE} for job {job_id} that this connection does not own")
            try:
                _advance(job, message)
            except ProtocolError as exc:
                raise RuntimeError(f"server bug: {exc}") from None
            if job.phase is JobPhase.DONE:
                del self._jobs[job_id]
        return encode(message, blobs=self.offer.blobs)

    def owns(self, job_id: str) -> bool:
        return job_id in self._jobs
