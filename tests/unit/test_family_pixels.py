"""The SD families give the same pixels as they did before the engine asked family objects.

tests/vectors/sd_family_pixels.json holds a digest of every result of a fixed set of
jobs (each SD family, folder and single file, each mode), recorded on the engine as it
was before the family seam. Exact pixels are only comparable on the CPU kind that
recorded them (torch picks its kernels by instruction set), so on another kind the
results are compared with a tolerance of 2 levels against the stored thumbnails instead.

Record anew (only for a deliberate change of pixels): PAINTWIRE_RECORD_PIXELS=1.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fixtures import tiny_models  # noqa: E402
from paintwire.protocol import validate_params  # noqa: E402
from paintwire.server.config import DeviceConfig, ModelsConfig  # noqa: E402
from paintwire.server.engines.base import EngineJob, JobContext  # noqa: E402
from paintwire.server.engines.diffusion import DiffusersEngine  # noqa: E402

VECTORS = Path(__file__).resolve().parents[1] / "vectors" / "sd_family_pixels.json"
RECORD = os.environ.get("PAINTWIRE_RECORD_PIXELS") == "1"


def picture(width: int = 64, height: int = 64) -> np.ndarray:
    img = np.zeros((height, width, 4), np.uint8)
    img[..., 0] = np.linspace(20, 220, width, dtype=np.uint8)[None, :]
    img[..., 1] = np.linspace(200, 40, height, dtype=np.uint8)[:, None]
    img[..., 2] = 120
    img[16:32, 16:32, :3] = (250, 250, 40)
    img[..., 3] = 255
    return img


def selection() -> np.ndarray:
    mask = np.zeros((64, 64), np.uint8)
    mask[20:44, 12:40] = 255
    return mask


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    root = tmp_path_factory.mktemp("family-pixels")
    tiny_models.build_tiny_sd15(root / "sd15")
    tiny_models.build_tiny_sd15(root / "sd15-inpainting", inpaint=True)
    tiny_models.build_tiny_sdxl(root / "sdxl")
    tiny_models.write_tiny_single_file(root / "sd15-single.safetensors")
    tiny_models.write_tiny_sd2_single_file(root / "sd2-single.safetensors")
    tiny_models.write_tiny_sdxl_single_file(root / "sdxl-single.safetensors")
    eng = DiffusersEngine(DeviceConfig(), ModelsConfig(model_dirs=[root]))
    yield eng
    eng.close()


MODELS = ("sd15", "sd15-inpainting", "sdxl", "sd15-single", "sd2-single", "sdxl-single")
JOBS = {
    "txt2img": ({"prompt": "a (red:1.2) cat", "negative_prompt": "blurry", "width": 64, "height": 64}, False, False),
    "img2img": ({"prompt": "a cat", "strength": 0.6, "scheduler": "euler"}, True, False),
    "inpaint": ({"prompt": "a cat", "mask_blur": 4, "inpaint_area": "only_masked"}, True, True),
    "outpaint": ({"prompt": "a cat", "right": 16}, True, False),
}


def run(engine: DiffusersEngine, model: str, mode: str) -> list[np.ndarray]:
    params, with_image, with_mask = JOBS[mode]
    spec = next(m for m in engine.modes() if m.name == mode)
    p = validate_params(spec.params, {"steps": 3, "seed": 7, **params})
    job = EngineJob("pixels", mode, p, image=picture() if with_image else None, mask=selection() if with_mask else None, model=model)
    return [layer.pixels for layer in engine.run(job, JobContext()).layers]


def digest(pixels: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(pixels).tobytes() + str(pixels.shape).encode()).hexdigest()


def thumbnail(pixels: np.ndarray) -> str:
    return base64.b64encode(zlib.compress(np.ascontiguousarray(pixels).tobytes(), 9)).decode()


def unthumbnail(text: str, shape: list[int]) -> np.ndarray:
    return np.frombuffer(zlib.decompress(base64.b64decode(text)), np.uint8).reshape(shape)


def cpu_kind() -> str:
    return f"{torch.__version__} {torch.backends.cpu.get_cpu_capability()}"


def test_sd_families_make_the_recorded_pixels(engine):
    results = {f"{model} {mode}": run(engine, model, mode) for model in MODELS for mode in JOBS}
    if RECORD:
        VECTORS.write_text(json.dumps({
            "cpu": cpu_kind(),
            "results": {key: [{"sha256": digest(p), "shape": list(p.shape), "pixels": thumbnail(p)} for p in layers]
                        for key, layers in results.items()},
        }, indent=1) + "\n")
        pytest.skip("recorded anew")
    recorded = json.loads(VECTORS.read_text())
    assert set(results) == set(recorded["results"])
    exact = recorded["cpu"] == cpu_kind()
    for key, layers in results.items():
        stored = recorded["results"][key]
        assert len(layers) == len(stored), key
        for pixels, want in zip(layers, stored):
            assert list(pixels.shape) == want["shape"], key
            if exact:
                assert digest(pixels) == want["sha256"], f"{key}: the pixels changed"
            else:
                diff = np.abs(pixels.astype(int) - unthumbnail(want["pixels"], want["shape"]).astype(int)).max()
                assert diff <= 2, f"{key}: the pixels differ by {diff} levels"
