"""Flux.1 ControlNets (FluxControlNetModel, InstantX-style): detection from a diffusers
folder or a diffusers-named single file, the config of a single file from its shapes (at
the real size on the meta device, and tiny for real), the family's pipelines and arguments
(union control modes included), and which checkpoints each ControlNet fits."""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fixtures import control_models as cm  # noqa: E402
from fixtures import tiny_flux  # noqa: E402
from fixtures.tiny_models import build_tiny_sd15  # noqa: E402
from paintwire.protocol import ErrorCode, ProtocolError  # noqa: E402
from paintwire.server.engines.diffusion.control.catalog import pick_controlnet, serves  # noqa: E402
from paintwire.server.engines.diffusion.control.configs import flux_controlnet_config  # noqa: E402
from paintwire.server.engines.diffusion.control.detect import classify_addon, describe  # noqa: E402
from paintwire.server.engines.diffusion.control.guidance import ControlSet, Guidance, NetLayer  # noqa: E402
from paintwire.server.engines.diffusion.control.loading import AddonLoader  # noqa: E402
from paintwire.server.engines.diffusion.families import FLUX, FLUX2, SD15, SDXL  # noqa: E402
from paintwire.server.engines.diffusion.models import ModelRegistry, classify_file  # noqa: E402

# InstantX/FLUX.1-dev-Controlnet-Union's published config (its canny model has no num_mode).
REAL_UNION = dict(patch_size=1, in_channels=64, num_layers=5, num_single_layers=10, attention_head_dim=128, num_attention_heads=24,
                  joint_attention_dim=4096, pooled_projection_dim=768, guidance_embeds=True, axes_dims_rope=[16, 56, 56], num_mode=10)
DEV_TRANSFORMER = {"axes_dims_rope": [16, 56, 56]}


def test_a_real_size_flux_controlnet_is_told_apart_and_its_config_comes_back_from_its_shapes():
    from diffusers import FluxControlNetModel

    with torch.device("meta"):
        net = FluxControlNetModel(**REAL_UNION)
    shapes = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    assert classify_addon(shapes) == "controlnet"
    assert classify_file(shapes, Path("flux-union.safetensors")) == "controlnet"  # not a Flux checkpoint
    built = flux_controlnet_config(shapes, DEV_TRANSFORMER)
    assert {k: built[k] for k in REAL_UNION} == REAL_UNION


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("flux-controls")
    dev = tiny_flux.save_flux(tmp_path_factory.mktemp("flux-dev-build"), "dev")
    nets = root / "controlnet"
    tiny_flux.save_flux_controlnet(nets / "tiny_flux_canny", dev / "transformer")
    tiny_flux.save_flux_controlnet(nets / "tiny_flux_canny_file.safetensors", dev / "transformer", folder=False)
    tiny_flux.save_flux_controlnet(nets / "tiny_flux_union", dev / "transformer", union=True)
    sd15 = build_tiny_sd15(tmp_path_factory.mktemp("sd15") / "sd15")
    cm.write_tiny_controlnet(nets / "tiny_sd_depth.safetensors", sd15)
    return SimpleNamespace(root=root, dev=dev)


@pytest.fixture(scope="module")
def registry(folder):
    return ModelRegistry.scan([folder.root], include_hf_cache=False)


def test_flux_controlnets_are_found_and_described(registry):
    canny, single, union = (describe(registry.get(n)) for n in ("tiny_flux_canny", "tiny_flux_canny_file", "tiny_flux_union"))
    assert (canny.base, canny.context, canny.union, canny.control_kind) == ("flux", 0, False, "canny")
    assert (single.base, single.union, single.control_kind, single.entry.single_file) == ("flux", False, "canny", True)
    assert (union.base, union.union, union.control_kind) == ("flux", True, None)
    # The union Flux ControlNet serves the kinds of InstantX's modes, not those of SDXL's union models alone.
    assert serves(union, "pose") and serves(union, "depth") and not serves(union, "segmentation")


def test_each_controlnet_fits_its_own_family_only(registry):
    flux_net, sd_net = describe(registry.get("tiny_flux_canny")), describe(registry.get("tiny_sd_depth"))
    assert flux_net.fits(0, FLUX) and not flux_net.fits(768, SD15) and not flux_net.fits(2048, SDXL)
    assert not sd_net.fits(0, FLUX) and not flux_net.fits(0, FLUX2)
    assert pick_controlnet(registry, "canny", None, 0, FLUX, [], "f").entry.name in ("tiny_flux_canny", "tiny_flux_canny_file")
    with pytest.raises(ProtocolError) as info:
        pick_controlnet(registry, "depth", "tiny_sd_depth", 0, FLUX, [], "f")
    assert info.value.code == ErrorCode.UNKNOWN_MODEL and "made for SD 1.5" in info.value.message and "Flux.1" in info.value.message
    with pytest.raises(ProtocolError):
        pick_controlnet(registry, "canny", "tiny_flux_canny", 768, SD15, [], "f")


def test_the_single_file_loads_the_same_model_as_the_folder(registry, folder):
    import json

    loader = AddonLoader(torch.float32)
    transformer = json.loads((folder.dev / "transformer" / "config.json").read_text())
    a = loader.controlnet(registry.get("tiny_flux_canny"), transformer)
    b = loader.controlnet(registry.get("tiny_flux_canny_file"), transformer)
    assert type(a).__name__ == type(b).__name__ == "FluxControlNetModel"
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    assert loader.controlnet(registry.get("tiny_flux_union"), transformer).union


def test_the_flux_family_runs_controlnets_on_dev_and_schnell_only():
    assert [FLUX.control_pipeline_name(t, u) for t in ("txt2img", "img2img", "inpaint") for u in (False, True)] == [
        "FluxControlNetPipeline"] * 2 + ["FluxControlNetImg2ImgPipeline"] * 2 + ["FluxControlNetInpaintPipeline"] * 2
    assert FLUX.control_pipeline_name("edit", False) is None
    assert FLUX.takes_addons("flux") and FLUX.takes_addons("flux-schnell")
    assert not FLUX.takes_addons("flux-fill") and not FLUX.takes_addons("flux-kontext")
    assert not FLUX.takes_references() and SD15.takes_references()
    assert not FLUX2.takes_addons("flux2-klein") and FLUX2.control_pipeline_name("txt2img", False) is None
    assert FLUX.accepts_addon("flux") and not FLUX.accepts_addon("sd15") and not SDXL.accepts_addon("flux")


def _guidance(registry, family, *layers):
    nets = [NetLayer(SimpleNamespace(kind=kind, strength=s, start=0.0, end=1.0), describe(registry.get(name)), None)
            for name, kind, s in layers]
    return Guidance(ControlSet(family, nets), [f"image {i}" for i in range(len(nets))])


def test_the_pipeline_arguments_name_control_image_and_the_union_mode(registry):
    one = _guidance(registry, FLUX, ("tiny_flux_canny", "canny", 0.7)).kwargs("txt2img")
    assert one == {"control_image": "image 0", "controlnet_conditioning_scale": 0.7, "control_guidance_start": 0.0,
                   "control_guidance_end": 1.0}
    union = _guidance(registry, FLUX, ("tiny_flux_union", "pose", 1.0)).kwargs("img2img")
    assert union["control_mode"] == 4 and union["control_image"] == "image 0"  # one model: a number
    two = _guidance(registry, FLUX, ("tiny_flux_union", "canny", 1.0), ("tiny_flux_union", "depth", 0.5)).kwargs("txt2img")
    assert two["control_mode"] == [0, 2] and two["control_image"] == ["image 0", "image 1"]
    assert two["controlnet_conditioning_scale"] == [1.0, 0.5]
    # An SD job keeps its names: ``image`` in txt2img.
    sd = _guidance(registry, SD15, ("tiny_sd_depth", "depth", 1.0)).kwargs("txt2img")
    assert sd["image"] == "image 0" and "control_image" not in sd
