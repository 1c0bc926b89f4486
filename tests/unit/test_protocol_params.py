"""Parameter specs, validate_params and check_job: the one place where a job's
settings are judged against what the server offers."""

from __future__ import annotations

import math
from typing import Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from paintwire.protocol import (
    Capabilities,
    CheckedJob,
    EngineInfo,
    ErrorCode,
    ImagePayload,
    JobRequest,
    Limits,
    ModelInfo,
    ModeSpec,
    ParamSpec,
    ParamType,
    PixelFormat,
    ProtocolError,
    Submit,
    check_job,
    decode_client_message,
    encode,
    validate_params,
)
from paintwire.protocol.params import MAX_SEED, MAX_STRING

STEPS = ParamSpec("steps", ParamType.INT, 20, "Steps", "", minimum=1, maximum=150)
COUNT = ParamSpec("count", ParamType.INT, 0, "Count", "")  # no bounds
STRENGTH = ParamSpec("strength", ParamType.FLOAT, 0.75, "Strength", "", minimum=0.0, maximum=1.0)
GAIN = ParamSpec("gain", ParamType.FLOAT, 1.0, "Gain", "")  # no bounds
TILE = ParamSpec("tile", ParamType.BOOL, False, "Tile", "")
SEED = ParamSpec("seed", ParamType.SEED, -1, "Seed", "")
SAMPLER = ParamSpec("sampler", ParamType.CHOICE, "euler", "Sampler", "", choices=("euler", "ddim", "dpm++"))
PROMPT = ParamSpec("prompt", ParamType.STRING, "", "Prompt", "")
SPECS = (PROMPT, STEPS, STRENGTH, TILE, SEED, SAMPLER)


def invalid(spec: ParamSpec, value: Any) -> ProtocolError:
    with pytest.raises(ProtocolError) as info:
        spec.check(value, f"job.params.{spec.name}")
    assert info.value.code is ErrorCode.INVALID_PARAM
    assert info.value.field == f"job.params.{spec.name}"
    assert spec.name in info.value.message
    return info.value


# --- ParamSpec.check, type by type ------------------------------------------------------------------


@pytest.mark.parametrize("value", [1, 20, 150])
def test_int_in_range(value: int) -> None:
    assert STEPS.check(value, "p") == value


@pytest.mark.parametrize("value", [0, -5, 151, 2**63])
def test_int_out_of_range(value: int) -> None:
    error = invalid(STEPS, value)
    assert ("at least 1" in error.message) or ("at most 150" in error.message)


@pytest.mark.parametrize("value", [True, False, 3.0, 2.5, "3", None, [3], {"v": 3}, b"3"], ids=repr)
def test_int_wrong_type(value: Any) -> None:
    invalid(STEPS, value)


def test_int_without_bounds_takes_any_int() -> None:
    for value in (-(2**63), 0, 2**64 - 1):
        assert COUNT.check(value, "p") == value


@pytest.mark.parametrize("value, expected", [(0, 0.0), (1, 1.0), (0.5, 0.5), (0.0, 0.0), (1.0, 1.0)])
def test_float_in_range_and_ints_become_floats(value: Any, expected: float) -> None:
    out = STRENGTH.check(value, "p")
    assert out == expected and isinstance(out, float)


@pytest.mark.parametrize("value", [-0.01, 1.0000001, 2, -1])
def test_float_out_of_range(value: Any) -> None:
    invalid(STRENGTH, value)


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_float_must_be_finite(value: float) -> None:
    assert "finite" in invalid(GAIN, value).message
    invalid(STRENGTH, value)


@pytest.mark.parametrize("value", [True, False, "0.5", None, [0.5]], ids=repr)
def test_float_wrong_type(value: Any) -> None:
    invalid(STRENGTH, value)


def test_float_from_a_huge_int_is_invalid_not_a_crash() -> None:
    # Python callers (plug-in settings) can hold ints beyond float range.
    invalid(GAIN, 10**400)
    assert GAIN.check(2**64 - 1, "p") == float(2**64 - 1)


@pytest.mark.parametrize("value", [True, False])
def test_bool(value: bool) -> None:
    assert TILE.check(value, "p") is value


@pytest.mark.parametrize("value", [0, 1, "true", None, 1.0], ids=repr)
def test_bool_wrong_type(value: Any) -> None:
    invalid(TILE, value)


@pytest.mark.parametrize("value", [-1, 0, 42, MAX_SEED])
def test_seed_range(value: int) -> None:
    assert SEED.check(value, "p") == value


@pytest.mark.parametrize("value", [-2, MAX_SEED + 1, 2**63, True, 1.0, "42"], ids=repr)
def test_seed_invalid(value: Any) -> None:
    invalid(SEED, value)


def test_seed_range_is_fixed_by_the_protocol() -> None:
    """min and max do not apply to seeds: -1 always means "pick one"."""
    odd = ParamSpec("seed", ParamType.SEED, -1, "Seed", "", minimum=0, maximum=10)
    assert odd.check(-1, "p") == -1
    assert odd.check(MAX_SEED, "p") == MAX_SEED


@pytest.mark.parametrize("value", ["euler", "ddim", "dpm++"])
def test_choice(value: str) -> None:
    assert SAMPLER.check(value, "p") == value


@pytest.mark.parametrize("value", ["Euler", "euler ", "", "lms", 0, None, ["euler"]], ids=repr)
def test_choice_invalid(value: Any) -> None:
    error = invalid(SAMPLER, value)
    if isinstance(value, str):
        assert "euler, ddim, dpm++" in error.message


def test_string_lengths() -> None:
    assert PROMPT.check("", "p") == ""
    assert PROMPT.check("x" * MAX_STRING, "p") == "x" * MAX_STRING
    assert PROMPT.check("\u00e9" * MAX_STRING, "p") == "\u00e9" * MAX_STRING  # characters, not bytes
    assert str(MAX_STRING) in invalid(PROMPT, "x" * (MAX_STRING + 1)).message
    invalid(PROMPT, "x" * 1_000_000)


def test_long_choice_is_refused() -> None:
    wide = ParamSpec("style", ParamType.CHOICE, "a", "Style", "", choices=("a", "x" * (MAX_STRING + 1)))
    invalid(wide, "x" * (MAX_STRING + 1))


@pytest.mark.parametrize("value", [None, 5, True, b"bytes", ["a"]], ids=repr)
def test_string_wrong_type(value: Any) -> None:
    invalid(PROMPT, value)


@settings(max_examples=200, deadline=None)
@given(st.integers(-(2**64), 2**64))
def test_int_accepts_exactly_its_range(value: int) -> None:
    ok = 1 <= value <= 150
    try:
        STEPS.check(value, "p")
        assert ok
    except ProtocolError:
        assert not ok


@settings(max_examples=200, deadline=None)
@given(st.floats(allow_nan=True, allow_infinity=True))
def test_float_accepts_exactly_its_range(value: float) -> None:
    ok = math.isfinite(value) and 0.0 <= value <= 1.0
    try:
        assert STRENGTH.check(value, "p") == value
        assert ok
    except ProtocolError:
        assert not ok


# --- validate_params ----------------------------------------------------------------------------------


def test_defaults_are_filled() -> None:
    out = validate_params(SPECS, {"steps": 4})
    assert out == {"prompt": "", "steps": 4, "strength": 0.75, "tile": False, "seed": -1, "sampler": "euler"}
    assert list(out) == [s.name for s in SPECS]  # in spec order
    assert validate_params(SPECS, {}) == {s.name: s.default for s in SPECS}


def test_given_values_are_coerced() -> None:
    assert validate_params(SPECS, {"strength": 1})["strength"] == 1.0


def test_unknown_params_are_rejected() -> None:
    with pytest.raises(ProtocolError) as info:
        validate_params(SPECS, {"steps": 4, "stepz": 5})
    assert (info.value.code, info.value.field) == (ErrorCode.INVALID_PARAM, "job.params.stepz")
    assert "prompt, sampler, seed, steps, strength, tile" in info.value.message
    with pytest.raises(ProtocolError) as none:
        validate_params((), {"x": 1})
    assert "none" in none.value.message


def test_unknown_names_are_reported_before_bad_values() -> None:
    with pytest.raises(ProtocolError) as info:
        validate_params(SPECS, {"steps": 0, "zzz": 1})
    assert info.value.field == "job.params.zzz"


def test_field_path_is_configurable() -> None:
    with pytest.raises(ProtocolError) as info:
        validate_params(SPECS, {"steps": 0}, field_path="settings")
    assert info.value.field == "settings.steps"


def test_nil_is_not_a_value() -> None:
    """To get a default, leave the parameter out; nil is refused (documented)."""
    with pytest.raises(ProtocolError):
        validate_params(SPECS, {"prompt": None})


# --- ParamSpec and ModeSpec wire forms --------------------------------------------------------------------


@pytest.mark.parametrize("spec", SPECS + (COUNT, GAIN), ids=lambda s: s.name)
def test_param_spec_round_trip(spec: ParamSpec) -> None:
    wire = msgpack.unpackb(msgpack.packb(spec.to_wire(), use_bin_type=True), raw=False)
    assert ParamSpec.from_wire(wire) == spec
    assert ("min" in wire) == (spec.minimum is not None)
    assert ("max" in wire) == (spec.maximum is not None)
    assert ("choices" in wire) == bool(spec.choices)
    assert wire["type"] == spec.type.value


def test_param_types_are_the_documented_six() -> None:
    assert {t.value for t in ParamType} == {"int", "float", "bool", "string", "choice", "seed"}


def test_mode_spec_round_trip_and_mask_rules() -> None:
    inpaint = ModeSpec("inpaint", "Inpaint", "h", needs_image=True, needs_mask=True, params=SPECS)
    img2img = ModeSpec("img2img", "Refine", "h", needs_image=True, needs_mask=False, accepts_mask=True)
    txt2img = ModeSpec("txt2img", "Generate", "h", needs_image=False, needs_mask=False)
    assert (inpaint.mask_allowed, img2img.mask_allowed, txt2img.mask_allowed) == (True, True, False)
    for mode in (inpaint, img2img, txt2img):
        back = ModeSpec.from_wire(mode.to_wire())
        assert back.to_wire() == mode.to_wire()
        assert back.mask_allowed == mode.mask_allowed
        assert back.params == mode.params


# --- check_job -------------------------------------------------------------------------------------------

INPAINT = ModeSpec("inpaint", "Inpaint", "", needs_image=True, needs_mask=True, params=(STEPS, SEED))
IMG2IMG = ModeSpec("img2img", "Refine", "", needs_image=True, needs_mask=False, params=(STRENGTH,), accepts_mask=True)
UPSCALE = ModeSpec("upscale", "Upscale", "", needs_image=True, needs_mask=False, params=(GAIN,))
TXT2IMG = ModeSpec("txt2img", "Generate", "", needs_image=False, needs_mask=False, params=(PROMPT, SEED))
CAPS = Capabilities(
    engines=(EngineInfo("diffusers", "Diffusers", (INPAINT, IMG2IMG, TXT2IMG)), EngineInfo("classical", "Classical", (UPSCALE,))),
    models=(ModelInfo("sd15", "diffusers", "sd15"), ModelInfo("sdxl", "diffusers", "sdxl"), ModelInfo("opencv", "classical", "builtin")),
    limits=Limits(max_message_bytes=1 << 20, max_pixels=1 << 20, max_side=64, max_queued_per_client=4),
)


def image(width: int = 4, height: int = 4) -> ImagePayload:
    return ImagePayload(width, height, PixelFormat.RGBA8, bytes(width * height * 4))


def mask(width: int = 4, height: int = 4) -> ImagePayload:
    return ImagePayload(width, height, PixelFormat.L8, bytes(width * height))


def rejected(request: JobRequest, code: ErrorCode, field: str) -> ProtocolError:
    with pytest.raises(ProtocolError) as info:
        check_job(request, CAPS)
    assert (info.value.code, info.value.field) == (code, field), info.value
    return info.value


def test_check_job_accepts_and_fills_defaults() -> None:
    checked = check_job(JobRequest("diffusers", "inpaint", image(), mask(), "sd15", {"steps": 8}), CAPS)
    assert isinstance(checked, CheckedJob)
    assert checked.mode is INPAINT
    assert checked.params == {"steps": 8, "seed": -1}
    assert check_job(JobRequest("diffusers", "txt2img"), CAPS).params == {"prompt": "", "seed": -1}


def test_check_job_after_the_wire() -> None:
    """What a submit carries is what check_job judges."""
    request = JobRequest("diffusers", "img2img", image(), mask(), params={"strength": 1})
    decoded = decode_client_message(encode(Submit(1, request))).job
    assert check_job(decoded, CAPS).params == {"strength": 1.0}


def test_unknown_engine() -> None:
    error = rejected(JobRequest("comfy", "inpaint", image(), mask()), ErrorCode.UNKNOWN_ENGINE, "job.engine")
    assert "diffusers, classical" in error.message


def test_unknown_mode() -> None:
    error = rejected(JobRequest("diffusers", "upscale", image()), ErrorCode.UNKNOWN_MODE, "job.mode")
    assert "inpaint, img2img, txt2img" in error.message


def test_unknown_model() -> None:
    rejected(JobRequest("diffusers", "txt2img", model="flux"), ErrorCode.UNKNOWN_MODEL, "job.model")
    # A model of another engine is as unknown as a missing one.
    error = rejected(JobRequest("diffusers", "txt2img", model="opencv"), ErrorCode.UNKNOWN_MODEL, "job.model")
    assert "sd15, sdxl" in error.message
    bare = Capabilities(CAPS.engines, (), CAPS.limits)
    with pytest.raises(ProtocolError) as info:
        check_job(JobRequest("diffusers", "txt2img", model="sd15"), bare)
    assert "no models installed" in info.value.message


def test_no_model_means_the_default() -> None:
    assert check_job(JobRequest("classical", "upscale", image()), CAPS).request.model is None


def test_missing_image() -> None:
    rejected(JobRequest("classical", "upscale"), ErrorCode.BAD_IMAGE, "job.image")


def test_missing_mask() -> None:
    rejected(JobRequest("diffusers", "inpaint", image()), ErrorCode.BAD_MASK, "job.mask")


def test_mask_not_accepted() -> None:
    rejected(JobRequest("classical", "upscale", image(), mask()), ErrorCode.BAD_MASK, "job.mask")


def test_optional_mask() -> None:
    assert check_job(JobRequest("diffusers", "img2img", image(), mask()), CAPS).request.mask is not None
    assert check_job(JobRequest("diffusers", "img2img", image()), CAPS).request.mask is None


@pytest.mark.parametrize("width, height", [(65, 4), (4, 65), (100, 100)])
def test_max_side(width: int, height: int) -> None:
    error = rejected(JobRequest("classical", "upscale", image(width, height)), ErrorCode.TOO_LARGE, "job.image")
    assert "64" in error.message
    rejected(JobRequest("diffusers", "inpaint", image(width, height), mask(width, height)), ErrorCode.TOO_LARGE, "job.image")


def test_max_side_is_inclusive() -> None:
    check_job(JobRequest("diffusers", "inpaint", image(64, 64), mask(64, 64)), CAPS)


def test_mask_side_is_checked_too() -> None:
    # check_job does not assume the codec ran: a mask larger than the image is still caught.
    rejected(JobRequest("diffusers", "inpaint", image(4, 4), mask(65, 4)), ErrorCode.TOO_LARGE, "job.mask")


def test_invalid_params() -> None:
    rejected(JobRequest("diffusers", "inpaint", image(), mask(), params={"steps": 0}), ErrorCode.INVALID_PARAM, "job.params.steps")
    rejected(JobRequest("diffusers", "inpaint", image(), mask(), params={"strength": 0.5}), ErrorCode.INVALID_PARAM, "job.params.strength")
    rejected(JobRequest("diffusers", "txt2img", params={"seed": True}), ErrorCode.INVALID_PARAM, "job.params.seed")


def test_check_order_is_as_documented() -> None:
    """engine, mode, model, image, mask, mask allowed, max_side, then parameters."""
    rejected(JobRequest("nope", "nope", model="nope", params={"x": 1}), ErrorCode.UNKNOWN_ENGINE, "job.engine")
    rejected(JobRequest("diffusers", "nope", model="nope", params={"x": 1}), ErrorCode.UNKNOWN_MODE, "job.mode")
    rejected(JobRequest("diffusers", "inpaint", model="nope", params={"x": 1}), ErrorCode.UNKNOWN_MODEL, "job.model")
    rejected(JobRequest("diffusers", "inpaint", params={"x": 1}), ErrorCode.BAD_IMAGE, "job.image")
    rejected(JobRequest("diffusers", "inpaint", image(100, 100), params={"x": 1}), ErrorCode.BAD_MASK, "job.mask")
    rejected(JobRequest("classical", "upscale", image(100, 100), mask(100, 100), params={"x": 1}), ErrorCode.BAD_MASK, "job.mask")
    rejected(JobRequest("classical", "upscale", image(100, 100), params={"x": 1}), ErrorCode.TOO_LARGE, "job.image")
    rejected(JobRequest("classical", "upscale", image(), params={"x": 1}), ErrorCode.INVALID_PARAM, "job.params.x")
