"""The VAE's two ways for the UNet families: pixels to scaled latents and back, never a black picture.

Half precision overflows in some VAEs (SDXL's says so in its config): an encode or
decode that makes NaN or inf is done again in fp32, and a model whose VAE overflowed
once decodes in fp32 from then on.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Iterator

import numpy as np
import torch

from paintwire.protocol import ErrorCode, ProtocolError

from .device import DTYPE_NAMES
from .networks import denoiser_of

if TYPE_CHECKING:
    from .cache import LoadedModel

log = logging.getLogger(__name__)


def encode(pipe: Any, rgb: np.ndarray) -> torch.Tensor:
    """(H, W, 3) uint8 -> (1, 4, H/8, W/8) scaled latents (the distribution's mode: no randomness)."""
    return encode_raw(pipe, rgb).to(denoiser_of(pipe).dtype) * pipe.vae.config.scaling_factor


def encode_raw(pipe: Any, rgb: np.ndarray) -> torch.Tensor:
    """(H, W, 3) uint8 -> the VAE's own latents, unscaled (the distribution's mode)."""
    vae = pipe.vae
    x = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)[None].float() / 127.5 - 1
    with vae_precision(vae, needs_upcast(vae)), torch.inference_mode():
        latents = vae.encode(x.to(pipe._execution_device, vae.dtype)).latent_dist.mode()
    if not torch.isfinite(latents).all():  # fp16 overflow in the encoder: encode again in fp32
        with vae_precision(vae, True), torch.inference_mode():
            latents = vae.encode(x.to(pipe._execution_device, vae.dtype)).latent_dist.mode()
    return latents


def needs_upcast(vae: Any, learned: bool = False) -> bool:
    """The SDXL VAE overflows in fp16 (its config says force_upcast, as the pipelines
    know); any VAE that once produced NaNs in fp16 (``learned``) runs in fp32 too."""
    half = vae.dtype in (torch.float16, torch.bfloat16)
    return half and (learned or (vae.dtype == torch.float16 and bool(getattr(vae.config, "force_upcast", False))))


@contextmanager
def vae_precision(vae: Any, fp32: bool) -> Iterator[None]:
    """Run the VAE in fp32 inside the block when ``fp32``, and put it back after."""
    dtype = vae.dtype
    if not fp32 or dtype == torch.float32:
        yield
        return
    # nn.Module.to, not diffusers' override, which warns on every dtype change.
    torch.nn.Module.to(vae, torch.float32)
    try:
        yield
    finally:
        torch.nn.Module.to(vae, dtype)


def decode(loaded: "LoadedModel", pipe: Any, latents: torch.Tensor, vae_space: bool = False) -> list[np.ndarray]:
    """Latents -> (H, W, 3) uint8 images. Never a black picture: a decode that
    overflows (NaN or inf) in half precision is done again in fp32, and the model
    remembers to decode in fp32 from then on; NaN latents are an error.
    ``vae_space``: the latents are the VAE's own already (no scale or shift to undo)."""
    if not torch.isfinite(latents).all():
        raise ProtocolError(
            ErrorCode.ENGINE_FAILED,
            f"The model produced invalid numbers (NaN) in {DTYPE_NAMES.get(denoiser_of(pipe).dtype, denoiser_of(pipe).dtype)}: "
            "set precision = \"fp32\" (or \"bf16\") in the server's configuration, or use an fp16-safe model.",
        )
    vae = pipe.vae
    image = _decode(vae, latents, needs_upcast(vae, loaded.vae_fp32), vae_space)
    if not torch.isfinite(image).all() and vae.dtype != torch.float32:
        log.warning("%s: the VAE overflowed in %s; decoding in fp32 from now on", loaded.entry.name, DTYPE_NAMES.get(vae.dtype))
        loaded.vae_fp32 = True
        image = _decode(vae, latents, True, vae_space)
    if not torch.isfinite(image).all():
        raise ProtocolError(ErrorCode.ENGINE_FAILED, f"The VAE of {loaded.entry.name!r} produced invalid numbers (NaN) even in fp32; "
                            "choose another VAE for this model (the vae parameter).")
    images = pipe.image_processor.postprocess(image.float(), output_type="np")
    return [np.clip(np.asarray(im) * 255 + 0.5, 0, 255).astype(np.uint8) for im in images]


def _decode(vae: Any, latents: torch.Tensor, fp32: bool, vae_space: bool = False) -> torch.Tensor:
    config = vae.config
    mean, std = getattr(config, "latents_mean", None), getattr(config, "latents_std", None)
    with vae_precision(vae, fp32), torch.inference_mode():
        x = latents.to(vae.dtype)
        if vae_space:
            pass
        elif mean is not None and std is not None:  # VAEs with latent statistics (some SDXL finetunes)
            x = x * torch.tensor(std).view(1, -1, 1, 1).to(x) / config.scaling_factor + torch.tensor(mean).view(1, -1, 1, 1).to(x)
        else:
            x = x / config.scaling_factor
            if getattr(config, "shift_factor", None) is not None:  # Flux's VAE centres its latents
                x = x + config.shift_factor
        return vae.decode(x, return_dict=False)[0]
