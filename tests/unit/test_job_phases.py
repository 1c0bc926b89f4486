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
from paintwire.server.config import DeviceConfig, ModelsConfig  # noqa: E402
from paintwire.server.engines.base import EngineJob, JobCancelledError, JobContext, ProgressUpdate  # noqa: E402
from paintwire.server.engines.diffusion import DiffusersEngine  # noqa: E402
from paintwire.server.engines.diffusion.generate import PROMPT_STAGE  # noqa: E402
from paintwire.server.engines.diffusion.load_progress import LOAD_PARTS  # noqa: E402
from paintwire.server.engines.diffusion.phases import vae_tiles  # noqa: E402

SIDE = 136  # over 4x the tiny model's native 64x64 pixels: the VAE works in tiles
BLOCK_SLEEP = 0.01  # seconds per resnet block: a slow device


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("phase-models")
    tiny_models.build_tiny_sd15(root / "sd15")
    tiny_models.write_tiny_single_file(root / "single.safetensors")
    return root


@pytest.fixture
def engine(models):
    eng = DiffusersEngine(DeviceConfig(), ModelsConfig(model_dirs=[models]))
    yield eng
    eng.close()


def img2img(engine, steps: int = 2, prompt: str = "") -> EngineJob:
    spec = next(m for m in engine.modes() if m.name == "img2img")
    params = validate_params(spec.params, {"steps": steps, "seed": 3, "strength": 1.0, "prompt": prompt})
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
    loading = [(u.step, u.total, u.stage) for u in updates if u.phase is Phase.LOADING_MODEL]
    assert loading[0][:2] == (0, LOAD_PARTS) and loading[-1][:2] == (LOAD_PARTS, LOAD_PARTS)  # hundredths of its weights
    assert [s for s, _, _ in loading] == sorted(s for s, _, _ in loading)
    stages = [stage for _, _, stage in loading]
    assert {"loading text encoder", "loading vae", "loading unet"} <= set(stages)  # each part as it loads
    # diffusers' order of the parts varies from process to process (it comes through a set),
    # so the unet may load first or last: its own reports show its weights counted as they load.
    unet = [s for s, _, stage in loading if stage == "loading unet"]
    assert unet[-1] > unet[0]
    encoding = [(u.step, u.total, u.stage) for u in updates if u.phase is Phase.ENCODING]
    assert encoding[0] == (0, 1, PROMPT_STAGE)  # the prompt first, then the picture
    vae = engine.cache.get(engine.registry.get("sd15")).base.vae
    tiles = vae_tiles(vae, torch.Size((1, 3, SIDE, SIDE)), decode=False)
    assert tiles > 1 and [s for s, _, _ in encoding[1:]] == list(range(tiles + 1))
    assert [u.step for u in updates if u.phase is Phase.DENOISING] == [0, 1, 2]
    assert {u.total for u in updates if u.phase is Phase.DENOISING} == {2}
    decoded = [(u.step, u.total) for u in updates if u.phase is Phase.DECODING]
    assert decoded[-1][0] == decoded[-1][1] > 1  # decoded tile by tile
    fractions = [u.fraction for u in updates]
    assert fractions == sorted(fractions) and fractions[0] == 0.0 and fractions[-1] == pytest.approx(1.0)
    # Each phase has its share: loading is not most of a warm job's bar, denoising is the biggest part.
    at = {p: max(u.fraction for u in updates if u.phase is p) for p in order}
    assert 0 < at[Phase.LOADING_MODEL] < at[Phase.ENCODING] < at[Phase.DENOISING] < at[Phase.DECODING]

    # Warm: no "loading model" at all; the same prompt is not encoded again, a new one is.
    again: list[ProgressUpdate] = []
    engine.run(img2img(engine), JobContext(on_progress=again.append))
    assert Phase.LOADING_MODEL not in {u.phase for u in again}
    assert (again[0].phase, again[0].stage, again[0].fraction) == (Phase.ENCODING, "encoding", 0.0)
    new_prompt: list[ProgressUpdate] = []
    engine.run(img2img(engine, prompt="a red boat"), JobContext(on_progress=new_prompt.append))
    assert (new_prompt[0].phase, new_prompt[0].stage) == (Phase.ENCODING, PROMPT_STAGE)


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


class SlowLoader:
    """Slows down every tensor read from a weight file and every tensor placed into a
    network, as a big model on a slow disk and CPU is slow, and counts them."""

    def __init__(self, monkeypatch) -> None:
        import safetensors
        from diffusers.models import model_loading_utils

        self.read = 0
        self.placed = 0
        real_open, real_place = safetensors.safe_open, model_loading_utils.set_module_tensor_to_device
        loader = self

        class SlowOpen:
            def __init__(self, *args, **kwargs) -> None:
                self._file = real_open(*args, **kwargs)

            def __enter__(self):
                self._file.__enter__()
                return self

            def __exit__(self, *exc):
                return self._file.__exit__(*exc)

            def __getattr__(self, name):
                return getattr(self._file, name)

            def get_tensor(self, key):
                threading.Event().wait(TENSOR_SLEEP)
                loader.read += 1
                return self._file.get_tensor(key)

        def slow_place(*args, **kwargs):
            threading.Event().wait(TENSOR_SLEEP)
            loader.placed += 1
            return real_place(*args, **kwargs)

        monkeypatch.setattr(safetensors, "safe_open", SlowOpen)
        monkeypatch.setattr(model_loading_utils, "set_module_tensor_to_device", slow_place)


TENSOR_SLEEP = 0.002  # seconds per tensor read or placed
GROUP = 16 * 1024  # bytes per group of tensors: many groups in a tiny model


def largest_group(path: Path) -> int:
    """The most tensors of ``path`` (in file order) that one group can hold wherever the
    groups begin: tensors up to and including the one that reaches GROUP bytes."""
    from paintwire.server.engines.diffusion.load_progress import read_weights

    sizes = [t.nbytes for t in read_weights(path).values()]
    most = 0
    for start in range(len(sizes)):
        total, count = 0, 0
        for size in sizes[start:]:
            total, count = total + size, count + 1
            if total >= GROUP:
                break
        most = max(most, count)
    return most


@pytest.mark.parametrize("model,stage,count", [("single", "loading model", "read"), ("sd15", "loading unet", "placed")])
def test_a_cancel_while_loading_stops_within_a_group_of_tensors(engine, models, monkeypatch, model, stage, count):
    """Reading a single file's tensors (before any component exists), or placing the
    UNet's: a cancel from another thread stops the load within the group in flight,
    no later part begins, and the next job loads the model from scratch."""
    from paintwire.server.engines.diffusion import load_progress

    monkeypatch.setattr(load_progress, "GROUP_BYTES", GROUP)
    load_progress.prepare()  # the watch's own functions in place first: the slow ones wrap them
    slow = SlowLoader(monkeypatch)
    cancel = threading.Event()
    loading: list[ProgressUpdate] = []
    at_cancel: list[int] = []

    def on_progress(u: ProgressUpdate) -> None:
        loading.append(u)
        done = getattr(slow, count)
        if u.phase is Phase.LOADING_MODEL and u.stage == stage and done >= 10 and not cancel.is_set():
            # The owner cancels while the next group loads (as a click would, at any moment).
            threading.Timer(TENSOR_SLEEP * 2, lambda: (at_cancel.append(getattr(slow, count)), cancel.set())).start()

    job = img2img(engine)
    job.model = model
    with pytest.raises(JobCancelledError):
        engine.run(job, JobContext(cancel, on_progress))
    assert at_cancel, f"the load never reached {stage!r} with a cancel in flight"
    source = models / "single.safetensors" if model == "single" else models / "sd15" / "unet" / "diffusion_pytorch_model.safetensors"
    assert getattr(slow, count) - at_cancel[0] < largest_group(source) < getattr(slow, count)  # stopped within one group
    assert loading[-1].phase is Phase.LOADING_MODEL and loading[-1].stage == stage  # no later part began
    assert loading[-1].step < LOAD_PARTS
    assert not engine.cache.holds(engine.registry.get(model))
    monkeypatch.undo()
    assert engine.run(job, JobContext()).layers  # the next job loads it cleanly


def test_the_load_watch_replaces_each_of_diffusers_loading_functions():
    """diffusers reads and places weights through functions each loading module imports by
    name (transformers through its bar factory): a version that moves one would lose the
    cancel points silently; this says so."""
    from paintwire.server.engines.diffusion import load_progress

    load_progress.prepare()
    assert sorted(load_progress.watched_functions()) == sorted(
        [f"{m}.load_state_dict" for m in load_progress._READERS]
        + ["diffusers.models.model_loading_utils.set_module_tensor_to_device", "transformers.core_model_loading.tqdm"])


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
