"""Phases, the overall fraction and cancel points, on the diffusers engine driven directly.

The model is a tiny real pipeline slowed down by forward hooks that sleep in
every resnet block, as a big model on a slow device is slow. A cancel that
arrives (from another thread) while a block runs must stop the job before any
further block of any network completes, in each phase: encoding, denoising,
decoding, and loading between the model's parts. The tests assert on phases
and on the work done after the cancel, never on wall-clock times.
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fixtures import tiny_models  # noqa: E402
from paintwire.protocol import Phase, validate_params  # noqa: E402
from paintwire.server.config import ServerConfig  # noqa: E402
from paintwire.server.engines.base import EngineJob, JobCancelledError, JobContext, ProgressUpdate  # noqa: E402
from paintwire.server.engines.diffusion import DiffusersEngine  # noqa: E402
from paintwire.server.engines.diffusion.phases import vae_tiles  # noqa: E402

SIDE = 136  # over 4x the tiny model's native 64x64 pixels: the VAE works in tiles
BLOCK_SLEEP = 0.01  # seconds per resnet block: a slow device


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("phase-models")
    tiny_models.build_tiny_sd15(root / "sd15")
    return root


@pytest.fixture
def engine(models):
    eng = DiffusersEngine(ServerConfig(model_dirs=[models]))
    yield eng
    eng.close()


def img2img(engine, steps: int = 2) -> EngineJob:
    spec = next(m for m in engine.modes() if m.name == "img2img")
    params = validate_params(spec.params, {"steps": steps, "seed": 3, "strength": 1.0})
    rgba = np.full((SIDE, SIDE, 4), 255, np.uint8)
    rgba[..., :3] = np.random.default_rng(0).integers(0, 255, (SIDE, SIDE, 3), dtype=np.uint8)
    return EngineJob("j", "img2img", params, rgba, model="sd15")


class SlowModel:
    """Sleeps after every resnet block of every network and counts the blocks done,
    and which network they were in."""

    def __init__(self, pipe) -> None:
        from diffusers.models.resnet import ResnetBlock2D

        self.done: list[str] = []
        self.handles = []
        for network in ("unet", "vae"):
            for module in getattr(pipe, network).modules():
                if isinstance(module, ResnetBlock2D):
                    self.handles.append(module.register_forward_hook(self._slow(network)))

    def _slow(self, network: str):
        def hook(*_):
            threading.Event().wait(BLOCK_SLEEP)
            self.done.append(network)
        return hook

    def remove(self) -> None:
        for h in self.handles:
            h.remove()


def test_phases_come_in_order_with_a_fraction_that_never_goes_back(engine):
    updates: list[ProgressUpdate] = []
    engine.run(img2img(engine), JobContext(on_progress=updates.append))  # cold: the model loads first
    phases = [u.phase for u in updates]
    order = [p for i, p in enumerate(phases) if i == 0 or phases[i - 1] is not p]
    assert order == [Phase.LOADING_MODEL, Phase.ENCODING, Phase.DENOISING, Phase.DECODING]
    loading = [(u.step, u.total) for u in updates if u.phase is Phase.LOADING_MODEL]
    assert loading[-1][0] == loading[-1][1] > 1  # the model's parts, counted
    vae = engine.cache.get(engine.registry.get("sd15")).base.vae
    tiles = vae_tiles(vae, torch.Size((1, 3, SIDE, SIDE)), decode=False)
    assert tiles > 1 and [u.step for u in updates if u.phase is Phase.ENCODING] == list(range(tiles + 1))
    assert [u.step for u in updates if u.phase is Phase.DENOISING] == [0, 1, 2]
    assert {u.total for u in updates if u.phase is Phase.DENOISING} == {2}
    decoded = [(u.step, u.total) for u in updates if u.phase is Phase.DECODING]
    assert decoded[-1][0] == decoded[-1][1] > 1  # decoded tile by tile
    fractions = [u.fraction for u in updates]
    assert fractions == sorted(fractions) and fractions[0] == 0.0 and fractions[-1] == pytest.approx(1.0)
    # Each phase has its share: loading is not most of a warm job's bar, denoising is the biggest part.
    at = {p: max(u.fraction for u in updates if u.phase is p) for p in order}
    assert 0 < at[Phase.LOADING_MODEL] < at[Phase.ENCODING] < at[Phase.DENOISING] < at[Phase.DECODING]

    # Warm: no "loading model" at all.
    again: list[ProgressUpdate] = []
    engine.run(img2img(engine), JobContext(on_progress=again.append))
    assert Phase.LOADING_MODEL not in {u.phase for u in again}
    assert again[0].phase is Phase.ENCODING and again[0].fraction == 0.0


@pytest.mark.parametrize("phase", [Phase.ENCODING, Phase.DENOISING, Phase.DECODING])
def test_a_cancel_during_a_phase_stops_the_work_at_the_next_block(engine, phase):
    pipe = engine.cache.get(engine.registry.get("sd15")).base
    slow = SlowModel(pipe)
    cancel = threading.Event()
    seen: list[Phase] = []
    at_cancel: list[int] = []

    def cancel_from_another_thread(*_):
        # The owner cancels while this block is running (as a click would, at any moment).
        if seen and seen[-1] is phase and not cancel.is_set() and slow.done:
            t = threading.Thread(target=cancel.set)
            t.start()
            t.join()
            at_cancel.append(len(slow.done) + 1)  # this block still completes

    leaves = [m for network in (pipe.vae, pipe.unet) for m in network.modules() if not list(m.children())]
    hooks = [m.register_forward_hook(cancel_from_another_thread) for m in leaves]
    try:
        with pytest.raises(JobCancelledError):
            engine.run(img2img(engine, steps=3), JobContext(cancel, lambda u: seen.append(u.phase)))
    finally:
        for h in hooks:
            h.remove()
        slow.remove()
    assert at_cancel, f"the job never reached {phase.value}"
    assert len(slow.done) <= at_cancel[0]  # no block completed after the one in flight
    assert seen[-1] is phase  # no later phase began
    # The engine is usable at once.
    assert engine.run(img2img(engine, steps=1), JobContext()).layers


def test_a_cancel_while_loading_stops_between_parts_and_the_next_job_loads(engine):
    cancel = threading.Event()
    parts: list[tuple[int, int]] = []

    def on_progress(u: ProgressUpdate) -> None:
        if u.phase is Phase.LOADING_MODEL:
            parts.append((u.step, u.total))
            if u.step == 2:
                cancel.set()

    with pytest.raises(JobCancelledError):
        engine.run(img2img(engine), JobContext(cancel, on_progress))
    assert parts[-1][0] == 2 < parts[-1][1]  # stopped after the second part
    assert not engine.cache.holds(engine.registry.get("sd15"))
    assert engine.run(img2img(engine, steps=1), JobContext()).layers


def test_the_fraction_follows_the_plan():
    updates: list[ProgressUpdate] = []
    ctx = JobContext(on_progress=updates.append)
    ctx.phase(Phase.PREPARING)
    ctx.plan({Phase.ENCODING: 1, Phase.DENOISING: 6, Phase.DECODING: 3}, {Phase.DENOISING: 6})
    ctx.phase(Phase.ENCODING, 1, 2)
    ctx.resume(Phase.DENOISING)  # not begun yet: 0 of its planned total
    ctx.phase(Phase.DENOISING, 3, 6)
    ctx.phase(Phase.UPSCALING, 0, 1)  # outside the plan: holds
    ctx.phase(Phase.ENCODING, 0, 1)  # a second encode: never back
    ctx.phase(Phase.DECODING, 3, 3)
    assert [(u.phase, u.step, u.total) for u in updates][2] == (Phase.DENOISING, 0, 6)
    assert [u.fraction for u in updates] == pytest.approx([0, 0.05, 0.1, 0.4, 0.4, 0.4, 1.0])
    assert [u.stage for u in updates][:2] == ["preparing", "encoding"]


def test_an_engine_without_a_plan_reports_its_stage_and_its_own_share():
    updates: list[ProgressUpdate] = []
    ctx = JobContext(on_progress=updates.append)
    ctx.progress(1, 4, "filling")
    ctx.progress(1, 1, "upscaling")
    assert [(u.phase, u.stage, u.fraction) for u in updates] == [(Phase.WORKING, "filling", 0.25), (Phase.UPSCALING, "upscaling", 1.0)]


# -- region first ------------------------------------------------------------------------------


def test_the_default_inpaint_costs_the_selection_not_the_canvas(engine):
    """The mode's defaults (what the plug-ins send) generate the selection's region at the
    model's native size on any canvas; whole_picture grows with the canvas."""
    spec = next(m for m in engine.modes() if m.name == "inpaint")
    assert next(p for p in spec.params if p.name == "inpaint_area").default == "only_masked"
    outpaint = next(m for m in engine.modes() if m.name == "outpaint")
    assert next(p for p in outpaint.params if p.name == "inpaint_area").default == "only_masked"
    pipe = engine.cache.get(engine.registry.get("sd15")).base
    shapes: list[tuple[int, int]] = []
    handle = pipe.unet.register_forward_pre_hook(lambda m, args: shapes.append(tuple(args[0].shape[-2:])))

    def latent_side(side: int, **extra) -> tuple[int, int]:
        shapes.clear()
        image = np.full((side, side, 4), 200, np.uint8)
        mask = np.zeros((side, side), np.uint8)
        mask[side // 2: side // 2 + 16, side // 2: side // 2 + 16] = 255
        params = validate_params(spec.params, {"steps": 1, "seed": 1, "strength": 1.0, **extra})
        out = engine.run(EngineJob("r", "inpaint", params, image, mask, model="sd15"), JobContext())
        assert out.layers[0].pixels.shape[:2] == (16, 16)  # the selection only (its feather stays inside it)
        return shapes[0]

    try:
        native = 64 // 2  # the tiny model: 64 px native, latents a half of that
        assert latent_side(128) == latent_side(512) == (native, native)
        assert latent_side(128, inpaint_area="whole_picture") == (64, 64)
        assert latent_side(256, inpaint_area="whole_picture") == (128, 128)
    finally:
        handle.remove()
