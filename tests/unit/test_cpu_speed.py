"""Half precision on the CPU: timed at start, never chosen by auto, and a slow one asked for
explicitly is said in a WARNING, the start-up summary and the capabilities."""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from paintwire.protocol import DeviceInfo  # noqa: E402
from paintwire.server import logs  # noqa: E402
from paintwire.server.config import DeviceConfig, ModelsConfig  # noqa: E402
from paintwire.server.model_watch import ModelWatch  # noqa: E402
from paintwire.server.engines.diffusion import DiffusersEngine, cpu_speed, device  # noqa: E402
from paintwire.server.engines.diffusion.cpu_speed import CpuSpeed  # noqa: E402

# An AVX2 EPYC's figures (bf16 and fp16 without native instructions), and an AMX Xeon's.
SLOW = CpuSpeed({"fp32": 0.00023, "bf16": 0.0414, "fp16": 0.052}, frozenset())
FAST = CpuSpeed({"fp32": 0.00023, "bf16": 0.00011, "fp16": 0.00030}, frozenset({"amx_bf16", "avx512_bf16"}))


def fixed(speed: CpuSpeed, asked: list | None = None):
    def probe(precisions):
        if asked is not None:
            asked.append(list(precisions))
        return speed
    return probe


def test_an_explicit_bf16_on_a_slow_cpu_starts_with_a_warning_that_names_the_slowdown(caplog):
    asked: list = []
    with caplog.at_level(logging.WARNING):
        choice = device.choose_device("cpu", precision="bf16", probe_cpu=fixed(SLOW, asked))
    assert asked == [["bf16"]]
    assert choice.dtype == torch.bfloat16  # kept, as asked
    sentence = ('bf16 runs 180x slower than fp32 on this CPU (measured: a 256x256 matmul takes 41.40 ms in bf16, 0.23 ms in fp32; '
                'the CPU has no avx512_bf16 or amx_bf16); use precision = "fp32"')
    assert choice.warning == sentence
    assert [(r.levelname, r.getMessage()) for r in caplog.records if r.name.endswith("device")] == [("WARNING", sentence)]
    info = choice.info()
    assert info.warning == sentence and info.summary().startswith("CPU, bf16, ") and info.summary().endswith(f" GiB free (warning: {sentence})")
    assert DeviceInfo.from_wire(info.to_wire()) == info


def test_fp16_slow_with_the_flags_present_says_so_and_a_fast_one_says_nothing(caplog):
    odd = CpuSpeed({"fp32": 0.001, "fp16": 0.0035}, frozenset({"avx512_fp16"}))
    assert odd.warning("fp16").startswith("fp16 runs 4x slower than fp32") and "the CPU has avx512_fp16)" in odd.warning("fp16")
    with caplog.at_level(logging.INFO):
        choice = device.choose_device("cpu", precision="bf16", probe_cpu=fixed(FAST))
    assert choice.dtype == torch.bfloat16 and choice.warning == "" and choice.info().warning == ""
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert any("bf16 on this CPU: a 256x256 matmul takes 0.11 ms, 0.23 ms in fp32" in r.getMessage() for r in caplog.records)
    assert "warning" not in choice.info().to_wire() and "(warning" not in choice.info().summary()


@pytest.mark.parametrize("speed", [SLOW, FAST])
def test_auto_never_picks_half_precision_on_the_cpu(speed):
    asked: list = []
    choice = device.choose_device("cpu", precision="auto", probe_cpu=fixed(speed, asked))
    assert choice.dtype == torch.float32 and choice.warning == ""
    assert asked == []  # fp32 needs no probe: nothing is spent at start
    assert device.choose_device("cpu", precision="fp32", probe_cpu=fixed(speed, asked)).warning == "" and asked == []


def test_the_slowdown_rule():
    assert SLOW.is_slow("bf16") and SLOW.is_slow("fp16") and not SLOW.is_slow("fp32")
    assert not FAST.is_slow("bf16") and not FAST.is_slow("fp16")  # 1.3x: within the noise of a busy machine
    assert math.isclose(SLOW.slowdown("bf16"), 180, rel_tol=0.01)


def test_the_start_up_summary_and_the_capabilities_carry_the_warning(monkeypatch, tmp_path):
    monkeypatch.setattr(cpu_speed, "probe", fixed(SLOW))
    engine = DiffusersEngine(DeviceConfig(name="cpu", precision="bf16"), ModelsConfig(model_dirs=[tmp_path]))
    try:
        server = SimpleNamespace(engines=[engine], model_watch=ModelWatch([engine], 5.0, lambda: None), generated_token=False)
        line = next(x for x in logs.ready(server, "the terminal", 1.0) if x.startswith("  device:"))
        assert line.startswith("  device: CPU, bf16, ") and line.endswith(f"(warning: {SLOW.warning('bf16')})")
        # What `paintwire info` prints: the device as it crossed the wire.
        assert DeviceInfo.from_wire(engine.device().to_wire()).summary() == engine.device_label()
    finally:
        engine.close()


def test_cpu_flags_are_read_from_cpuinfo(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512_bf16 amx_tile amx_bf16\n\nprocessor\t: 1\n")
    assert cpu_speed.cpu_flags(info) == frozenset({"avx512_bf16", "amx_bf16"})
    assert cpu_speed.cpu_flags(tmp_path / "absent") == frozenset()


def test_the_real_probe_is_quick_and_its_numbers_are_sane():
    start = time.perf_counter()
    speed = cpu_speed.probe(["bf16", "fp16"])
    took = time.perf_counter() - start
    assert set(speed.seconds) == {"fp32", "bf16", "fp16"}
    for name, seconds in speed.seconds.items():
        # 2 * 256^3 flops: at most 1 TFLOP/s on any CPU, and at least 1 MFLOP/s (the slowest path is about 300).
        assert 2 * 256**3 / 1e12 < seconds < 2 * 256**3 / 1e6, (name, seconds)
    # A few milliseconds where half precision is fast; where it is slow, about half a second.
    assert took < 5.0, took
    assert speed.flags <= {"avx512_bf16", "amx_bf16", "avx512_fp16", "amx_fp16"}
