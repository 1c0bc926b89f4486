"""Configurations generated for real-size single files equal the published ones.

The checkpoints are header-only sparse files: a safetensors header describing
every full-size tensor, the file extended to its full length with no data on
disk. The expected values (fixtures/real_sizes.py) are those of the published
diffusers repositories' config.json files (stable-diffusion-v1-5,
stable-diffusion-inpainting, stable-diffusion-2-1, stable-diffusion-xl-base-1.0,
stable-diffusion-xl-1.0-inpainting-0.1).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fixtures.real_sizes import (  # noqa: E402
    CLIP_L, CLIP_L_SD, CLIP_L_XL, OPEN_CLIP_BIGG, OPEN_CLIP_H, OPEN_CLIP_SD2, OPEN_CLIP_XL, SCHEDULER, SD2_UNET, SD2_VAE,
    SD15_UNET, SD_VAE, SDXL_UNET, SDXL_VAE, checkpoint_shapes, text_shapes, unet_shapes, vae_shapes, write_header_only,
)
from paintwire.server.engines.diffusion.families import FAMILIES, family_of  # noqa: E402
from paintwire.server.engines.diffusion.models import ModelRegistry, read_header  # noqa: E402

# The OpenCLIP towers in the files are whole: SD2 uses all but the last of its 24 layers.
SD2_FILE_ENCODER = {**OPEN_CLIP_H, "num_hidden_layers": 24, "projection_dim": 1024}

MODELS = {
    # name: (kind, pipeline, unet, vae, [(where, published encoder config, encoder as in the file)], prediction)
    "sd15": ("sd15", "StableDiffusionPipeline", SD15_UNET, SD_VAE, [(CLIP_L_SD, CLIP_L, CLIP_L)], "epsilon"),
    "sd15-inpainting": ("sd15-inpaint", "StableDiffusionInpaintPipeline", {**SD15_UNET, "in_channels": 9}, SD_VAE,
                        [(CLIP_L_SD, CLIP_L, CLIP_L)], "epsilon"),
    "sd21-768": ("sd2", "StableDiffusionPipeline", SD2_UNET, SD2_VAE, [(OPEN_CLIP_SD2, OPEN_CLIP_H, SD2_FILE_ENCODER)], "v_prediction"),
    "sdxl-base": ("sdxl", "StableDiffusionXLPipeline", SDXL_UNET, SDXL_VAE,
                  [(CLIP_L_XL, CLIP_L, CLIP_L), (OPEN_CLIP_XL, OPEN_CLIP_BIGG, OPEN_CLIP_BIGG)], "epsilon"),
    "sdxl-inpainting": ("sdxl-inpaint", "StableDiffusionXLInpaintPipeline", {**SDXL_UNET, "in_channels": 9}, SDXL_VAE,
                        [(CLIP_L_XL, CLIP_L, CLIP_L), (OPEN_CLIP_XL, OPEN_CLIP_BIGG, OPEN_CLIP_BIGG)], "epsilon"),
}


@pytest.fixture(scope="module")
def sparse_files(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("real-size")
    files = {}
    for name, (_, _, unet, vae, encoders, _) in MODELS.items():
        shapes = checkpoint_shapes(unet, vae, [(where, in_file) for where, _, in_file in encoders])
        files[name] = write_header_only(root / f"{name}.safetensors", shapes)
    return files


def test_the_files_are_full_length_and_cost_no_disk(sparse_files):
    st = os.stat(sparse_files["sd15"])
    assert st.st_size > 2 * 10**9  # SD1.5 in fp16: about 2.1 GB
    if hasattr(st, "st_blocks"):
        assert st.st_blocks * 512 < 4 * 2**20
    assert os.stat(sparse_files["sdxl-base"]).st_size > 6 * 10**9


def test_the_registry_reads_each_kind_from_the_header(sparse_files):
    registry = ModelRegistry.scan([next(iter(sparse_files.values())).parent], include_hf_cache=False)
    assert {e.name: e.kind for e in registry.entries.values()} == {n: m[0] for n, m in MODELS.items()}


def test_exactly_one_family_recognises_each_file(sparse_files):
    for name, path in sparse_files.items():
        shapes = read_header(path)
        assert [f.name for f in FAMILIES if f.recognise_file(shapes)] == [family_of(MODELS[name][0]).name], name


@pytest.mark.parametrize("name", list(MODELS))
def test_the_generated_configuration_equals_the_published_one(sparse_files, tmp_path, name):
    from diffusers import AutoencoderKL, EulerDiscreteScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig

    kind, pipeline, unet, vae, encoders, prediction = MODELS[name]
    path = sparse_files[name]
    folder = family_of(kind).write_skeleton(tmp_path / "skel", read_header(path), kind, pipeline, lambda n, s: None)

    # As diffusers reads them (its defaults filled in), every published value holds.
    unet_cfg = UNet2DConditionModel.load_config(folder / "unet")
    vae_cfg = AutoencoderKL.load_config(folder / "vae")
    with torch.device("meta"):
        got_unet = dict(UNet2DConditionModel.from_config(unet_cfg).config)
        got_vae = dict(AutoencoderKL.from_config(vae_cfg).config)
    assert {k: _listed(got_unet[k]) for k in unet} == {k: _listed(v) for k, v in unet.items()}
    assert {k: _listed(got_vae[k]) for k in vae} == {k: _listed(v) for k, v in vae.items()}
    got_sched = dict(EulerDiscreteScheduler.from_config(EulerDiscreteScheduler.load_config(folder / "scheduler")).config)
    assert {k: got_sched[k] for k in SCHEDULER} == SCHEDULER and got_sched["prediction_type"] == prediction
    for i, (_, published, _) in enumerate(encoders):
        sub = "text_encoder" if i == 0 else "text_encoder_2"
        got = CLIPTextConfig.from_pretrained(folder / sub).to_dict()
        assert {k: got[k] for k in published} == published, sub
        assert len(json.loads((folder / sub.replace("text_encoder", "tokenizer") / "tokenizer.json").read_text())["model"]["vocab"]) == 49408

    # And built from the generated configuration, the models have exactly the file's tensors.
    shapes = read_header(path)
    assert unet_shapes(unet_cfg) == {k: v for k, v in shapes.items() if k.startswith("model.diffusion_model.")}
    assert vae_shapes(vae_cfg) == {k: v for k, v in shapes.items() if k.startswith("first_stage_model.")}
    for i, ((prefix, layout), _, _) in enumerate(encoders):
        sub = "text_encoder" if i == 0 else "text_encoder_2"
        generated = text_shapes(json.loads((folder / sub / "config.json").read_text()), prefix, layout)
        if "projection_dim" not in published:  # loaded as a CLIPTextModel: the file's projection is not used
            generated = {k: v for k, v in generated.items() if not k.endswith("text_projection")}
        assert all(shapes[k] == v for k, v in generated.items()), sub  # SD2 leaves its last layer unused


def _listed(value):
    return list(value) if isinstance(value, (list, tuple)) else value


V_YAML = 'model:\n  target: ldm.models.diffusion.ddpm.LatentDiffusion\n  params:\n    parameterization: "v"\n    linear_start: 0.00085\n'
EPS_YAML = "model:\n  target: ldm.models.diffusion.ddpm.LatentDiffusion\n  params:\n    linear_start: 0.00085\n"


@pytest.mark.parametrize("sidecar,prediction,sample", [
    (None, "v_prediction", 96),  # no file: SD2 means the common 768 px v-prediction kind
    (("yaml", V_YAML), "v_prediction", 96),
    (("yaml", EPS_YAML), "epsilon", 64),  # the WebUI's v2-inference.yaml: the 512 px base
    (("yml", "prediction_type: epsilon\n"), "epsilon", 64),
])
def test_a_file_beside_the_checkpoint_declares_v_prediction(sparse_files, tmp_path, sidecar, prediction, sample):
    import shutil

    from paintwire.server.engines.diffusion.loader import Loader
    from paintwire.server.engines.diffusion.models import ModelEntry

    path = tmp_path / "my-sd2.safetensors"
    shutil.copy(sparse_files["sd21-768"], path)  # sparse stays sparse where the copy supports it; small either way
    if sidecar:
        path.with_suffix("." + sidecar[0]).write_text(sidecar[1])
    loader = Loader(ModelRegistry(), torch.device("cpu"), torch.float32)
    try:
        folder = loader.skeleton(ModelEntry("my-sd2", "sd2", path, True, family_of("sd2")), "StableDiffusionPipeline")
        sched = json.loads((folder / "scheduler" / "scheduler_config.json").read_text())
        unet = json.loads((folder / "unet" / "config.json").read_text())
    finally:
        loader.close()
    assert sched["prediction_type"] == prediction and unet["sample_size"] == sample
    assert unet.get("upcast_attention", False) is (prediction == "v_prediction")


@pytest.mark.parametrize("text,message", [
    ("model: [unclosed", "not readable YAML"),
    ("- a list\n", "not a YAML mapping"),
    ("prediction_type: sample\n", "prediction_type must be epsilon or v_prediction"),
    ('model:\n  params:\n    parameterization: "x0"\n', 'parameterization must be "v" or "eps"'),
])
def test_a_bad_file_beside_the_checkpoint_says_what_to_fix(tmp_path, text, message):
    from paintwire.server.engines.diffusion.sidecar import SidecarError, declared_prediction

    (tmp_path / "m.yaml").write_text(text)
    with pytest.raises(SidecarError, match=message):
        declared_prediction(tmp_path / "m.safetensors")
