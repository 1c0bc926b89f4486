"""ControlNets, IP-Adapters and image encoders in the model folders: detection from
tensors, configs built from shapes (at real sizes, on the meta device, and tiny for
real), the original layout, and picking a model that fits the checkpoint."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fixtures import control_models as cm  # noqa: E402
from fixtures.tiny_models import build_tiny_sd15, build_tiny_sdxl  # noqa: E402
from paintwire.protocol import ErrorCode, ProtocolError  # noqa: E402
from paintwire.server.engines.diffusion.families import SD15, SDXL  # noqa: E402
from paintwire.server.engines.diffusion.control.catalog import control_kinds, pick_adapter, pick_controlnet  # noqa: E402
from paintwire.server.engines.diffusion.control.configs import controlnet_config, image_encoder_config  # noqa: E402
from paintwire.server.engines.diffusion.control.detect import classify_addon, describe  # noqa: E402
from paintwire.server.engines.diffusion.control.loading import AddonLoader  # noqa: E402
from paintwire.server.engines.diffusion.models import ModelRegistry, read_header  # noqa: E402

# Published configs of real ControlNets (lllyasviel's SD 1.5 v1.1, diffusers' SDXL canny) and their checkpoints' UNets.
SD15_UNET = {"block_out_channels": [320, 640, 1280, 1280], "attention_head_dim": 8, "cross_attention_dim": 768}
SD15_CONTROLNET = dict(block_out_channels=(320, 640, 1280, 1280), attention_head_dim=8, cross_attention_dim=768,
                       conditioning_embedding_out_channels=(16, 32, 96, 256))
SDXL_UNET = {"block_out_channels": [320, 640, 1280], "attention_head_dim": [5, 10, 20], "cross_attention_dim": 2048,
             "addition_time_embed_dim": 256}
SDXL_CONTROLNET = dict(block_out_channels=(320, 640, 1280), attention_head_dim=[5, 10, 20], cross_attention_dim=2048,
                       down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
                       transformer_layers_per_block=[1, 2, 10], use_linear_projection=True, addition_embed_type="text_time",
                       addition_time_embed_dim=256, projection_class_embeddings_input_dim=2816,
                       conditioning_embedding_out_channels=(16, 32, 96, 256))


def meta_shapes(**config) -> tuple[dict, dict]:
    """The tensor shapes and full config of a real-size ControlNet, made without memory."""
    from diffusers import ControlNetModel

    with torch.device("meta"):
        net = ControlNetModel(**config)
    return {k: tuple(v.shape) for k, v in net.state_dict().items()}, dict(net.config)


@pytest.mark.parametrize("config, unet", [(SD15_CONTROLNET, SD15_UNET), (SDXL_CONTROLNET, SDXL_UNET)], ids=["sd15", "sdxl"])
def test_a_real_size_controlnet_config_comes_back_from_its_shapes(config, unet):
    shapes, full = meta_shapes(**config)
    assert classify_addon(shapes) == "controlnet"
    built = controlnet_config(shapes, unet)
    for key, value in built.items():
        want = full[key]
        assert (list(value) if isinstance(value, (list, tuple)) else value) == (list(want) if isinstance(want, (list, tuple)) else want), key


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("controls")
    sd15, sdxl = build_tiny_sd15(root / "checkpoints" / "sd15"), build_tiny_sdxl(root / "checkpoints" / "sdxl")
    cm.build_control_folder(root, sd15, sdxl)
    return root


def test_every_layout_is_detected_with_its_base(folder):
    registry = ModelRegistry.scan([folder], include_hf_cache=False)
    addons = {e.name: describe(e) for e in registry.entries.values() if e.kind in ("controlnet", "ip-adapter", "image-encoder")}
    assert {n: a.entry.kind for n, a in addons.items()} == {
        cm.CANNY_FOLDER: "controlnet", cm.SCRIBBLE_FILE: "controlnet", cm.DEPTH_ORIGINAL: "controlnet", cm.XL_CANNY: "controlnet",
        cm.ADAPTER: "ip-adapter", cm.XL_ADAPTER: "ip-adapter", cm.ENCODER: "image-encoder",
    }
    assert [addons[n].base for n in (cm.CANNY_FOLDER, cm.SCRIBBLE_FILE, cm.DEPTH_ORIGINAL, cm.XL_CANNY)] == ["sd15"] * 3 + ["sdxl"]
    assert addons[cm.DEPTH_ORIGINAL].control_kind == "depth" and addons[cm.XL_CANNY].control_kind == "canny"
    assert addons[cm.ADAPTER].reads(addons[cm.ENCODER]) and addons[cm.XL_ADAPTER].reads(addons[cm.ENCODER])
    assert not registry.unusable


def test_the_original_layout_loads_to_the_same_weights(folder, tmp_path):
    """An original-layout file and a diffusers-layout file of the same network load alike."""
    sd15 = folder / "checkpoints" / "sd15"
    cm.write_tiny_controlnet(tmp_path / "a_canny.safetensors", sd15, seed=99)
    cm.write_tiny_controlnet(tmp_path / "b_canny.safetensors", sd15, seed=99, original_layout=True)
    registry = ModelRegistry.scan([tmp_path], include_hf_cache=False)
    unet = dict(cm._unet(sd15).config)
    loader = AddonLoader(torch.float32)
    a, b = (loader.controlnet(registry.get(n), unet).state_dict() for n in ("a_canny", "b_canny"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_a_single_file_image_encoder_gets_its_config_from_its_shapes(tmp_path):
    path = cm.write_tiny_image_encoder(tmp_path / "encoder.safetensors", folder=False)
    config = image_encoder_config(read_header(path))
    assert (config["hidden_size"], config["image_size"], config["patch_size"], config["projection_dim"]) == (32, 32, 8, cm.ENCODER_WIDTH)
    registry = ModelRegistry.scan([tmp_path], include_hf_cache=False)
    assert registry.get("encoder").kind == "image-encoder"
    model = AddonLoader(torch.float32).image_encoder(registry.get("encoder"))
    assert model(pixel_values=torch.zeros(1, 3, 32, 32)).image_embeds.shape == (1, cm.ENCODER_WIDTH)


def test_picking_follows_the_kind_and_the_checkpoint(folder):
    registry = ModelRegistry.scan([folder], include_hf_cache=False)
    folders = [folder]
    assert pick_controlnet(registry, "canny", None, 32, SD15, folders, "f").entry.name == cm.CANNY_FOLDER
    assert pick_controlnet(registry, "canny", None, 80, SDXL, folders, "f").entry.name == cm.XL_CANNY
    with pytest.raises(ProtocolError) as info:
        pick_controlnet(registry, "depth", None, 80, SDXL, folders, "f")  # only an SD 1.5 depth model is installed
    assert info.value.code is ErrorCode.UNKNOWN_MODEL and "SDXL" in info.value.message and str(folder / "controlnet") in info.value.message
    adapter, encoder = pick_adapter(registry, None, 80, SDXL, folders, "f")
    assert (adapter.entry.name, encoder.entry.name) == (cm.XL_ADAPTER, cm.ENCODER)


def test_capabilities_say_what_is_missing_and_where(folder, tmp_path):
    kinds = {k.name: k for k in control_kinds(ModelRegistry.scan([folder], include_hf_cache=False), [folder])}
    assert not kinds["canny"].problem and not kinds["reference"].problem
    assert "'segmentation'" in kinds["segmentation"].problem and str(folder / "controlnet") in kinds["segmentation"].problem
    cm.write_tiny_ip_adapter(tmp_path / "ip-adapter.safetensors", folder / "checkpoints" / "sd15")  # an adapter without its encoder
    kinds = {k.name: k for k in control_kinds(ModelRegistry.scan([tmp_path], include_hf_cache=False), [tmp_path])}
    assert "image encoder" in kinds["reference"].problem and str(tmp_path / "clip_vision") in kinds["reference"].problem


def test_a_pickled_controlnet_folder_is_listed_as_unusable(tmp_path):
    (tmp_path / "cn").mkdir()
    (tmp_path / "cn" / "config.json").write_text('{"_class_name": "ControlNetModel"}')
    (tmp_path / "cn" / "diffusion_pytorch_model.bin").write_bytes(b"not opened")
    registry = ModelRegistry.scan([tmp_path], include_hf_cache=False)
    assert "pickles" in registry.unusable["cn"].reason and registry.unusable["cn"].kind == "controlnet"


def test_from_pipe_keeps_a_half_precision_model_in_half_precision(folder):
    """The img2img and ControlNet pipelines share the checkpoint's modules; making them must not recast them."""
    from diffusers import StableDiffusionPipeline

    from paintwire.server.engines.diffusion.cache import LoadedModel
    from paintwire.server.engines.diffusion.models import ModelEntry

    pipe = StableDiffusionPipeline.from_pretrained(folder / "checkpoints" / "sd15", local_files_only=True, dtype=torch.bfloat16)
    loaded = LoadedModel(ModelEntry("sd15", "sd15", folder / "checkpoints" / "sd15", family=SD15), pipe, 0)
    loaded.pipeline("img2img")
    assert pipe.unet.dtype == torch.bfloat16 and pipe.vae.dtype == torch.bfloat16


def test_a_union_controlnet_serves_several_kinds_as_a_folder_or_a_file(folder, tmp_path):
    """A union ("promax") SDXL ControlNet: one model, each layer with its control mode."""
    import numpy as np

    from paintwire.server.config import DeviceConfig, ModelsConfig
    from paintwire.server.engines.base import DecodedControl, EngineJob, JobContext
    from paintwire.server.engines.diffusion.engine import DiffusersEngine
    from paintwire.server.engines.diffusion.params import TXT2IMG

    sdxl = folder / "checkpoints" / "sdxl"
    cm.write_tiny_controlnet(tmp_path / "controlnet" / "tiny-union", sdxl, folder=True, union=True)
    cm.write_tiny_controlnet(tmp_path / "controlnet" / "tiny-union-file.safetensors", sdxl, union=True)
    engine = DiffusersEngine(DeviceConfig(name="cpu"), ModelsConfig(model_dirs=[str(sdxl), str(tmp_path)]))
    assert not any(k.problem for k in engine.controls() if k.name not in ("reference", "edit_reference"))  # one union model serves every ControlNet kind
    params = {p.name: p.default for p in TXT2IMG.params} | {"steps": 2, "seed": 5, "width": 64, "height": 64}
    square = np.zeros((64, 64, 4), np.uint8)
    square[16:48, 16:48] = 255

    def run(*layers: DecodedControl) -> np.ndarray:
        job = EngineJob("j", "txt2img", dict(params), model="sdxl", controls=layers)
        return engine.run(job, JobContext()).layers[0].pixels.astype(int)

    plain = run()
    depth = run(DecodedControl("depth", square, "none", {}, "tiny-union"))
    assert np.abs(depth - plain).max() > 20
    assert np.array_equal(run(DecodedControl("depth", square, "none", {}, "tiny-union-file")), depth)  # the same weights either way
    both = run(DecodedControl("depth", square, "none", {}, "tiny-union"), DecodedControl("canny", square, "canny", {"low_threshold": 100, "high_threshold": 200}, None, 0.5))
    assert not np.array_equal(both, depth)
    assert np.array_equal(run(DecodedControl("depth", square, "none", {}, "tiny-union", 0.0)), plain)
