"""docs/protocol.md against the code: the reference must describe exactly what
paintwire.protocol sends and accepts.

Adding a message, a field, an object, an error code, a pixel format or a
parameter type without documenting it fails here, and so does documenting one
that the code does not have. The "Required" column is checked against the real
readers (a required field left out must be refused, an optional one must not),
the "Type" column against the msgpack type of what to_wire() writes, and the
byte-level hello example is decoded with the real codec.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import msgpack
import pytest

import paintwire.protocol as protocol
from paintwire.protocol import (
    PROTOCOL_VERSION,
    Cancel,
    Cancelled,
    Capabilities,
    CapabilitiesUpdate,
    ControlInput,
    ControlKindSpec,
    DeviceInfo,
    EngineInfo,
    Error,
    ErrorCode,
    Hello,
    ImagePayload,
    InputKind,
    InputSpec,
    JobRequest,
    Layer,
    Limits,
    ModelInfo,
    ModelKind,
    ModeSpec,
    ParamSpec,
    ParamType,
    PixelFormat,
    PlacementKind,
    Preprocess,
    Preprocessed,
    Preview,
    Progress,
    ProtocolError,
    Queued,
    Recall,
    Rescan,
    Result,
    Started,
    Submit,
    Welcome,
    Crop,
    CropRule,
    TransferOffer,
    TransferTerms,
    decode_client_message,
    decode_server_message,
    encode,
)
from paintwire.protocol.images import ABSOLUTE_MAX_SIDE, Encoding
from paintwire.protocol.live import LiveApply, LiveError, LiveFrame, LiveStart, LiveStarted, LiveState, LiveStop, LiveStopped
from paintwire.protocol.messages import CLIENT_MESSAGES, MAX_JOB_ID, MAX_NAME, SERVER_MESSAGES
from paintwire.protocol.params import MAX_SEED, MAX_STRING

DOC_PATH = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"
MESSAGE_HEADING = re.compile(r"^### `([a-z_]+)`\s*$")
OBJECT_HEADING = re.compile(r"^### Object `(\w+)`\s*$")
MSGPACK_TYPES = ("nil", "bool", "int", "float", "str", "bin", "map", "array")


# --- reading the document -------------------------------------------------------------------


def _sections(text: str, level: int) -> dict[str, str]:
    """Heading line -> body, for headings of exactly ``level`` (body runs to the next heading
    of the same or a higher level)."""
    out: dict[str, str] = {}
    current: str | None = None
    lines: list[str] = []
    in_fence = False
    for line in text.splitlines():
        if line.startswith("```"):
            in_fence = not in_fence
        heading = re.match(r"^(#+) ", line) if not in_fence else None
        if heading and len(heading.group(1)) <= level:
            if current is not None:
                out[current] = "\n".join(lines)
            current, lines = (line if len(heading.group(1)) == level else None), []
            continue
        lines.append(line)
    if current is not None:
        out[current] = "\n".join(lines)
    return out


def _rows(body: str) -> list[list[str]]:
    """The table rows of ``body`` whose first cell is a backticked name, as stripped cells."""
    rows = []
    for line in body.splitlines():
        if line.startswith("| `"):
            rows.append([cell.strip() for cell in line.strip().strip("|").split(" | ")])
    return rows


def _name(cell: str) -> str:
    m = re.fullmatch(r"`([^`]+)`", cell)
    assert m, f"the first cell of a table row must be one `name`, got {cell!r}"
    return m.group(1)


@pytest.fixture(scope="module")
def doc() -> str:
    return DOC_PATH.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def messages(doc: str) -> dict[str, str]:
    """Message type -> section body."""
    out = {}
    for heading, body in _sections(doc, 3).items():
        m = MESSAGE_HEADING.match(heading)
        if m:
            assert m.group(1) not in out, f"message {m.group(1)} is documented twice"
            out[m.group(1)] = body
    return out


@pytest.fixture(scope="module")
def objects(doc: str) -> dict[str, str]:
    out = {}
    for heading, body in _sections(doc, 3).items():
        m = OBJECT_HEADING.match(heading)
        if m:
            assert m.group(1) not in out, f"object {m.group(1)} is documented twice"
            out[m.group(1)] = body
    return out


def _section_named(doc: str, level: int, pattern: str) -> str:
    found = [body for heading, body in _sections(doc, level).items() if re.search(pattern, heading)]
    assert len(found) == 1, f"expected one level-{level} section matching {pattern!r}, found {len(found)}"
    return found[0]


def _field_table(body: str, where: str) -> dict[str, tuple[str, str]]:
    """Field name -> (type cell, required cell) of a message or object section."""
    table: dict[str, tuple[str, str]] = {}
    for row in _rows(body):
        assert len(row) == 4, f"{where}: a field row needs 4 cells (Field, Type, Required, Meaning): {row}"
        name = _name(row[0])
        assert name not in table, f"{where}: field {name} is listed twice"
        assert row[2] in ("yes", "no"), f"{where}.{name}: Required must be yes or no, got {row[2]!r}"
        assert row[3], f"{where}.{name}: the Meaning cell is empty"
        table[name] = (row[1], row[2])
    assert table, f"{where}: no field table"
    return table


# --- what the code writes: one instance of everything with every optional value set ----------

IMAGE = ImagePayload(2, 1, PixelFormat.RGBA8, bytes(8))
MASK = ImagePayload(2, 1, PixelFormat.L8, b"\x00\xff")
PARAM = ParamSpec("steps", ParamType.INT, 20, "Steps", "How many steps.", minimum=1, maximum=150, choices=("x",), group="advanced",
                  choice_labels=("Ex",))
CROP_RULE = CropRule(whole=False, whole_if=(("invert_mask", True),), ring=1, margin_params=(("mask_blur", 2.5),), padding_param="padding", min_side=64)
CROP = Crop(3, 4, 10, 10)
OFFER = TransferOffer(blobs=True, probe="paintwire-probe1234", token="00ff")
TERMS = TransferTerms(blobs=True, shm=False, note="Shared memory is for clients on the server's own machine.")
INPUT = InputSpec(InputKind.MASK, True, "Selection", "The selection is the mask.")
MODE = ModeSpec("inpaint", "Inpaint", "Fill the mask.", params=(PARAM,), inputs=(InputSpec(InputKind.IMAGE), INPUT),
                placement=PlacementKind.GROW, model_kinds=(ModelKind.BUILTIN,), order=30, crop=CROP_RULE)
DEVICE = DeviceInfo("CPU", "cpu", "bf16", 64 << 30, 40 << 30, "bf16 runs 180x slower than fp32 on this CPU (measured: ...); use precision = \"fp32\"")
CONTROL_KIND = ControlKindSpec("canny", "Canny edges", "Edges of the layer.", ("canny", "none"), (PARAM,),
                               "Put a canny ControlNet (.safetensors) into a model folder's controlnet/ subfolder.")
ENGINE = EngineInfo("classical", "Classical", (MODE,), device=DEVICE, controls=(CONTROL_KIND,))
MODEL = ModelInfo("opencv", "classical", "builtin", "OpenCV", "its tokenizer is missing", "sd15", "all on the device")
LIMITS = Limits(max_message_bytes=1 << 20, max_pixels=1 << 16, max_side=256, max_queued_per_client=4)
CAPS = Capabilities((ENGINE,), (MODEL,), LIMITS)
CONTROL = ControlInput("canny", IMAGE, "control-canny", 0.8, 0.1, 0.9, "canny", {"steps": 3})
JOB = JobRequest("classical", "inpaint", IMAGE, MASK, "opencv", {"steps": 3}, PixelFormat.BGRA8, CROP, (CONTROL,), parent=12)
LAYER = Layer(IMAGE, 1, 2, "Inpaint", 42, {"method": "telea"})

FULL_MESSAGES: dict[str, Any] = {
    "hello": Hello("demo/1.0", PROTOCOL_VERSION, "secret", updates=True, transfer=OFFER, recall=True),
    "submit": Submit(7, JOB),
    "cancel": Cancel("abc"),
    "rescan": Rescan(),
    "welcome": Welcome("paintwire/0.1.0", CAPS, transfer=TERMS, client_id="0123456789ab"),
    "capabilities": CapabilitiesUpdate(CAPS),
    "queued": Queued("abc", 7, 3),
    "started": Started("abc"),
    "progress": Progress("abc", 2, 10, "denoising", "denoising", 0.5),
    "preview": Preview("abc", IMAGE, 1, 2, 3, 4),
    "result": Result("abc", (LAYER,), 5, 6, 1, 2),
    "error": Error(ErrorCode.BAD_IMAGE, "Bad.", "job.image", "abc", 7),
    "cancelled": Cancelled("abc"),
    "recall": Recall(12, {"mode": "inpaint", "params": {"mask_blur": 4}}, "/api/history/12/image", 64, 48),
    "live_start": LiveStart(3, "classical", "inpaint", "opencv", {"steps": 3}, PixelFormat.BGRA8),
    "live_state": LiveState(3, 9, IMAGE, MASK, 10, 20, {"steps": 4}),
    "live_stop": LiveStop(3),
    "live_apply": LiveApply(3, 9),
    "live_started": LiveStarted(3, 42, 4),
    "live_frame": LiveFrame(3, 9, IMAGE, 10, 20, 5, 42, 12.5, 10.25),
    "live_error": LiveError(3, ErrorCode.BAD_IMAGE, "Bad.", 9, "image.data"),
    "live_stopped": LiveStopped(3, "requested"),
    "preprocess": Preprocess(8, "diffusers", CONTROL),
    "preprocessed": Preprocessed(8, MASK),
}

# Object name in the document -> (instance, the message that carries it, path to it there).
OBJECTS: dict[str, tuple[Any, str, tuple[Any, ...]]] = {
    "ImagePayload": (IMAGE, "submit", ("job", "image")),
    "JobRequest": (JOB, "submit", ("job",)),
    "Capabilities": (CAPS, "welcome", ("capabilities",)),
    "EngineInfo": (ENGINE, "welcome", ("capabilities", "engines", 0)),
    "DeviceInfo": (DEVICE, "welcome", ("capabilities", "engines", 0, "device")),
    "ModeSpec": (MODE, "welcome", ("capabilities", "engines", 0, "modes", 0)),
    "InputSpec": (INPUT, "welcome", ("capabilities", "engines", 0, "modes", 0, "inputs", 1)),
    "ParamSpec": (PARAM, "welcome", ("capabilities", "engines", 0, "modes", 0, "params", 0)),
    "ModelInfo": (MODEL, "welcome", ("capabilities", "models", 0)),
    "Limits": (LIMITS, "welcome", ("capabilities", "limits")),
    "Layer": (LAYER, "result", ("layers", 0)),
    "ControlKindSpec": (CONTROL_KIND, "welcome", ("capabilities", "engines", 0, "controls", 0)),
    "ControlInput": (CONTROL, "submit", ("job", "controls", 0)),
    "Crop": (CROP, "submit", ("job", "crop")),
    "CropRule": (CROP_RULE, "welcome", ("capabilities", "engines", 0, "modes", 0, "crop")),
    "FormSection": (MODE.form.sections[0], "welcome", ("capabilities", "engines", 0, "modes", 0, "form", 0)),
    "FormField": (MODE.form.sections[0].fields[0], "welcome", ("capabilities", "engines", 0, "modes", 0, "form", 0, "fields", 0)),
    "TransferOffer": (OFFER, "hello", ("transfer",)),
    "TransferTerms": (TERMS, "welcome", ("transfer",)),
}

# Where nil means the same as a missing key (section 1 of the document).
NIL_AS_ABSENT = {"JobRequest", "ImagePayload", "Layer", "ControlInput"} | set(FULL_MESSAGES)

# Fields that another field depends on: leaving out the first means leaving out the others too.
DEPENDENTS = {("JobRequest", "image"): ("mask", "crop")}


def _msgpack_type(value: Any) -> str:
    if value is None:
        return "nil"
    if isinstance(value, bool):
        return "bool"
    for kind, name in ((int, "int"), (float, "float"), (str, "str"), (bytes, "bin"), (dict, "map"), ((list, tuple), "array")):
        if isinstance(value, kind):
            return name
    raise AssertionError(f"{value!r} has no msgpack type")


def _documented_types(cell: str) -> set[str]:
    return set(re.findall(r"\b(" + "|".join(MSGPACK_TYPES) + r")\b", cell))


def _mismatch(documented: set[str], written: set[str]) -> tuple[set[str], set[str]]:
    """(written but not documented, documented but not written)."""
    return written - documented, documented - written


def _decode(message_type: str, wire: dict) -> Any:
    data = msgpack.packb(wire, use_bin_type=True)
    return decode_client_message(data) if message_type in CLIENT_MESSAGES else decode_server_message(data)


def _target(wire: dict, path: tuple[Any, ...]) -> dict:
    for key in path:
        wire = wire[key]
    return wire


# --- messages --------------------------------------------------------------------------------


def test_every_message_type_has_a_section_and_every_section_a_message(messages: dict[str, str]) -> None:
    code = set(CLIENT_MESSAGES) | set(SERVER_MESSAGES)
    assert set(FULL_MESSAGES) == code, "add the new message to FULL_MESSAGES in this test"
    undocumented, unknown = _mismatch(set(messages), code)
    assert not undocumented, f"message types without a '### `type`' section in docs/protocol.md: {sorted(undocumented)}"
    assert not unknown, f"docs/protocol.md documents message types the code does not have: {sorted(unknown)}"


@pytest.mark.parametrize("message_type", sorted(FULL_MESSAGES))
def test_message_direction_is_stated(messages: dict[str, str], message_type: str) -> None:
    first = messages[message_type].strip().splitlines()[0]
    expected = "Client to server" if message_type in CLIENT_MESSAGES else "Server to client"
    assert first.startswith(expected), f"`{message_type}` section should start with {expected!r}, starts {first!r}"


@pytest.mark.parametrize("message_type", sorted(FULL_MESSAGES))
def test_message_fields_match_to_wire(messages: dict[str, str], message_type: str) -> None:
    table = _field_table(messages[message_type], message_type)
    wire = FULL_MESSAGES[message_type].to_wire()
    undocumented, unknown = _mismatch(set(table), set(wire))
    assert not undocumented, f"{message_type}: fields written by to_wire() but missing from its table: {sorted(undocumented)}"
    assert not unknown, f"{message_type}: documented fields that to_wire() does not write: {sorted(unknown)}"
    assert wire["type"] == message_type


# --- objects ---------------------------------------------------------------------------------


def test_every_wire_object_has_a_section(objects: dict[str, str]) -> None:
    wire_classes = {
        name for name in protocol.__all__
        if isinstance(getattr(protocol, name), type) and hasattr(getattr(protocol, name), "to_wire")
        and not hasattr(getattr(protocol, name), "TYPE")
    }
    assert wire_classes == set(OBJECTS), "add the new wire object to OBJECTS in this test"
    undocumented, unknown = _mismatch(set(objects), set(OBJECTS))
    assert not undocumented, f"objects without a '### Object `Name`' section: {sorted(undocumented)}"
    assert not unknown, f"documented objects the code does not have: {sorted(unknown)}"


@pytest.mark.parametrize("name", sorted(OBJECTS))
def test_object_fields_match_to_wire(objects: dict[str, str], name: str) -> None:
    instance, message_type, path = OBJECTS[name]
    table = _field_table(objects[name], name)
    wire = instance.to_wire()
    assert wire == _target(FULL_MESSAGES[message_type].to_wire(), path), "the sample object must be the one its message carries"
    undocumented, unknown = _mismatch(set(table), set(wire))
    assert not undocumented, f"{name}: fields written by to_wire() but missing from its table: {sorted(undocumented)}"
    assert not unknown, f"{name}: documented fields that to_wire() does not write: {sorted(unknown)}"


def _all_tables(messages: dict[str, str], objects: dict[str, str]) -> list[tuple[str, str, dict, tuple[Any, ...]]]:
    """(section name, message type, full wire form of that message, path to the section's map)."""
    out = [(t, t, FULL_MESSAGES[t].to_wire(), ()) for t in sorted(FULL_MESSAGES)]
    out += [(n, OBJECTS[n][1], FULL_MESSAGES[OBJECTS[n][1]].to_wire(), OBJECTS[n][2]) for n in sorted(OBJECTS)]
    return out


def test_type_column_matches_what_is_written(messages: dict[str, str], objects: dict[str, str]) -> None:
    problems = []
    for section, _, wire, path in _all_tables(messages, objects):
        body = messages.get(section) or objects[section]
        target = _target(wire, path)
        for field, (type_cell, required) in _field_table(body, section).items():
            documented = _documented_types(type_cell)
            if not documented:
                problems.append(f"{section}.{field}: type {type_cell!r} names no msgpack type ({', '.join(MSGPACK_TYPES)})")
                continue
            actual = _msgpack_type(target[field])
            if actual not in documented and not (actual == "int" and "float" in documented):
                problems.append(f"{section}.{field}: documented as {type_cell!r} but written as {actual}")
    assert not problems, "\n".join(problems)


def test_required_column_matches_the_readers(messages: dict[str, str], objects: dict[str, str]) -> None:
    """A field documented as required must be refused when left out; an optional one must not
    (and, where the document says nil means absent, nil must be accepted too)."""
    problems = []
    for section, message_type, wire, path in _all_tables(messages, objects):
        body = messages.get(section) or objects[section]
        assert _decode(message_type, wire) == FULL_MESSAGES[message_type], f"{message_type} does not round-trip"
        for field, (_, required) in _field_table(body, section).items():
            variants = [("left out", None)]
            if required == "no" and section in NIL_AS_ABSENT:
                variants.append(("nil", "nil"))
            for label, how in variants:
                changed = msgpack.unpackb(msgpack.packb(wire, use_bin_type=True), raw=False)
                target = _target(changed, path)
                for name in (field,) + DEPENDENTS.get((section, field), ()):
                    if how == "nil":
                        target[name] = None
                    else:
                        target.pop(name)
                try:
                    decoded = _decode(message_type, changed)
                except ProtocolError:
                    refused = True
                else:
                    refused = False
                if (section, field) == ("error", "code"):
                    # Documented: a reader maps a missing or unknown code to internal.
                    assert not refused and decoded.code is ErrorCode.INTERNAL
                    continue
                if required == "yes" and not refused:
                    problems.append(f"{section}.{field} is documented as required but a message with it {label} is accepted")
                if required == "no" and refused:
                    problems.append(f"{section}.{field} is documented as optional but a message with it {label} is refused")
    assert not problems, "\n".join(problems)


# --- error codes, enums, constants ---------------------------------------------------------


def test_every_error_code_is_in_the_error_table_and_nothing_else(doc: str) -> None:
    table = _section_named(doc, 2, r"Error codes")
    rows = _rows(table)
    codes = [_name(row[0]) for row in rows]
    assert len(codes) == len(set(codes)), "an error code is listed twice"
    undocumented, unknown = _mismatch(set(codes), {c.value for c in ErrorCode})
    assert not undocumented, f"ErrorCode values missing from the error table: {sorted(undocumented)}"
    assert not unknown, f"the error table lists codes that ErrorCode does not have: {sorted(unknown)}"
    for row in rows:
        assert len(row) == 4 and all(row), f"error row needs code, when, scope and what to do: {row}"


def test_pixel_formats_and_encodings_are_documented(doc: str) -> None:
    formats = {_name(row[0]) for row in _rows(_section_named(doc, 3, r"Pixel formats"))}
    assert formats == {f.value for f in PixelFormat}
    image = _field_table(_section_named(doc, 3, r"Object `ImagePayload`"), "ImagePayload")
    for value in [f.value for f in PixelFormat] + [e.value for e in Encoding]:
        assert f"`{value}`" in doc
    assert all(f"`{f.value}`" in image["format"][0] or f"`{f.value}`" in _section_named(doc, 3, r"Object `ImagePayload`") for f in PixelFormat)


def test_param_types_are_documented(doc: str) -> None:
    documented = {_name(row[0]) for row in _rows(_section_named(doc, 3, r"Parameter types"))}
    assert documented == {t.value for t in ParamType}
    spec = _section_named(doc, 3, r"Object `ParamSpec`")
    for t in ParamType:
        assert f"`{t.value}`" in spec, f"the ParamSpec type row should list `{t.value}`"


def test_every_kind_of_the_vocabulary_is_documented(doc: str) -> None:
    mode = _section_named(doc, 3, r"Input and placement kinds")
    inputs = {_name(row[0]) for row in _rows(mode.split("Input kinds")[1].split("Placement kinds")[0])}
    placements = {_name(row[0]) for row in _rows(mode.split("Placement kinds")[1])}
    assert inputs == {k.value for k in InputKind}
    assert placements == {k.value for k in PlacementKind}
    models = _section_named(doc, 3, r"Object `ModelInfo`")
    assert set(re.findall(r"`([a-z0-9-]+)`", models.split("Model kinds:")[1])) == {k.value for k in ModelKind}


def test_the_version_rule_is_stated(doc: str) -> None:
    rule = _section_named(doc, 2, r"version rule")
    for thing in ("map key", "`type`", "`kind`", "`placement`", "`group`", "`code`"):
        assert thing in rule, f"the version rule should say what a client does with an unknown {thing}"


def test_protocol_version_is_stated(doc: str) -> None:
    m = re.search(r"\*\*Protocol version: (\d+)\*\*", doc)
    assert m and int(m.group(1)) == PROTOCOL_VERSION


def test_fixed_limits_are_stated(doc: str) -> None:
    limits = _section_named(doc, 2, r"Limits")
    for value in (ABSOLUTE_MAX_SIDE, MAX_NAME, MAX_JOB_ID, MAX_STRING):
        assert re.search(rf"\b{value}\b", limits), f"the limits table should state {value}"
    assert "2**32 - 1" in limits and MAX_SEED == 2**32 - 1
    assert "2**53" in limits


def test_server_default_limits_are_stated(doc: str) -> None:
    from paintwire.server.config import LimitsConfig  # standard library only; no engines load

    config = LimitsConfig()
    limits = _section_named(doc, 2, r"Limits")
    for value in (config.max_message_bytes, config.max_pixels, config.max_queued_per_client, config.max_queued_total):
        assert re.search(rf"\b{value}\b", limits), f"the limits table should state the default {value}"


# --- the worked example ----------------------------------------------------------------------


def _fenced(body: str, language: str) -> str:
    m = re.search(rf"```{language}\n(.*?)```", body, re.S)
    assert m, f"no ```{language} block"
    return m.group(1)


def test_hello_hex_example_decodes_to_the_documented_hello(doc: str) -> None:
    section = _section_named(doc, 3, r"Hello frame")
    documented = json.loads(_fenced(section, "json"))
    hex_bytes = []
    for line in _fenced(section, "hex").splitlines():
        first = re.split(r"\s{2,}", line.strip(), maxsplit=1)[0]
        hex_bytes += first.split()
    assert all(re.fullmatch(r"[0-9a-f]{2}", b) for b in hex_bytes)
    frame = bytes.fromhex("".join(hex_bytes))
    assert msgpack.unpackb(frame, raw=False) == documented
    assert decode_client_message(frame) == Hello(client=documented["client"], protocol=PROTOCOL_VERSION)
    assert documented["protocol"] == PROTOCOL_VERSION
    assert f"{len(frame)} bytes in all" in section
    # The reference client's own frame (with "token": nil) is described beside it.
    own = encode(Hello(client=documented["client"]))
    assert f"{len(own)} bytes in all" in section
    assert own == b"\x84" + frame[1:] + bytes.fromhex("a5746f6b656ec0")


# --- the checks above really catch drift -------------------------------------------------------


def test_drift_is_detected() -> None:
    """An added field or code shows up as undocumented; a removed one as unknown."""
    documented = set(Hello("x").to_wire())
    assert _mismatch(documented, documented | {"new_field"}) == ({"new_field"}, set())
    assert _mismatch(documented, documented - {"token"}) == (set(), {"token"})
    codes = {c.value for c in ErrorCode}
    assert _mismatch(codes, codes | {"new_code"})[0] == {"new_code"}


def test_control_kinds_and_preprocessors_are_documented(doc: str) -> None:
    from paintwire.protocol import ControlKind, Preprocessor

    section = _section_named(doc, 3, r"Control layers")
    for value in [k.value for k in ControlKind] + [p.value for p in Preprocessor]:
        assert f"`{value}`" in section, f"section 4 'Control layers' should name `{value}`"


# --- lists of messages in prose, and tables, against the vocabulary --------------------------


def _named(text: str) -> set[str]:
    return set(re.findall(r"`([a-z_]+)`", text))


def test_the_handshake_lists_every_message_a_ready_client_sends(doc: str) -> None:
    """Section 3.1, step 4: what a client may send after welcome is every client message but hello."""
    handshake = _section_named(doc, 3, r"3\.1 Handshake")
    step = re.search(r"^4\. (.*?)(?=^\S|\Z)", handshake, re.S | re.M)
    assert step, "section 3.1 should have a step 4"
    missing = set(CLIENT_MESSAGES) - {"hello"} - _named(step.group(1))
    assert not missing, f"section 3.1 step 4 should name the client messages {sorted(missing)}"


def test_the_message_overview_names_every_message(doc: str) -> None:
    overview = _section_named(doc, 2, r"5\. Messages").split("\n### ")[0]
    client, server = overview.split("Server to client:")
    assert not set(CLIENT_MESSAGES) - _named(client), f"section 5 should list {sorted(set(CLIENT_MESSAGES) - _named(client))}"
    assert not set(SERVER_MESSAGES) - _named(server), f"section 5 should list {sorted(set(SERVER_MESSAGES) - _named(server))}"


def test_unknown_type_tells_a_client_every_message_it_may_send(doc: str) -> None:
    row = next(r for r in _rows(_section_named(doc, 2, r"Error codes")) if _name(r[0]) == ErrorCode.UNKNOWN_TYPE.value)
    missing = set(CLIENT_MESSAGES) - _named(row[3])
    assert not missing, f"the unknown_type row should name the client messages {sorted(missing)}"


def _tables(doc: str) -> list[list[list[str]]]:
    """Every table of the document (outside code blocks), as rows of cells without the header."""
    tables: list[list[list[str]]] = []
    current: list[list[str]] = []
    in_fence = False
    for line in doc.splitlines() + [""]:
        if line.startswith("```"):
            in_fence = not in_fence
        if line.startswith("|") and not in_fence:
            current.append([cell.strip() for cell in line.strip().strip("|").split(" | ")])
        elif current:
            tables.append(current[2:])  # the header row and its rule
            current = []
    return tables


def test_no_table_has_a_row_twice(doc: str) -> None:
    tables = _tables(doc)
    assert len(tables) > 40
    twice = [row[0] for table in tables for i, row in enumerate(table) if row[0] in [r[0] for r in table[:i]]]
    assert not twice, f"rows listed twice in one table: {twice}"


def test_the_version_rule_covers_every_optional_welcome_field(doc: str) -> None:
    """A welcome field newer than version 1's first servers must say what a client does without it."""
    rule = _section_named(doc, 2, r"version rule")
    for field in ("transfer", "client_id"):
        assert f"A `welcome` without `{field}`" in rule
