"""VAE encodes in an inpaint: none whose latents nothing reads.

diffusers' inpaint pipelines (SD and SDXL, with and without ControlNet) encode
the masked image in ``prepare_mask_latents`` whatever the UNet: only a
9-channel (inpainting) UNet reads those latents; an ordinary 4-channel one
throws them away, after an encoder pass that costs as much as the image's own
(a quarter of a full-size CPU inpaint). An inpainting UNet needs both encodes:
the image and the masked image are different pictures. Those pipelines draw the encoder
sample's noise from the job's generator, and ancestral samplers draw their
step noise from it after, so the skipped encode must still take that draw:
the placeholder is a zero distribution of the encoder's own shape and dtype,
sampled by diffusers' own code.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Callable, Iterator

import torch


def reads_masked_image(pipe: Any) -> bool:
    """Whether the UNet takes the masked image's latents as input (an inpainting UNet's
    extra channels: 9 = 4 latents + 1 mask + 4 masked-image latents)."""
    return pipe.unet.config.in_channels > pipe.vae.config.latent_channels


@contextmanager
def unread_masked_image_skipped(pipe: Any) -> Iterator[None]:
    """Inside the block, the pipeline's ``prepare_mask_latents`` encodes nothing
    when the UNet does not read the masked image (see the module's docstring)."""
    from diffusers import AutoencoderKL

    vae = pipe.vae
    # Only the UNet inpaint pipelines encode a masked image they may not read; the flow ones have their own ways.
    unet = getattr(pipe, "unet", None)
    if unet is None or reads_masked_image(pipe) or not hasattr(pipe, "prepare_mask_latents") or not isinstance(vae, AutoencoderKL):
        yield
        return
    prepare = pipe.prepare_mask_latents

    def prepare_without_encoding(*args: Any, **kwargs: Any) -> Any:
        with _attribute(vae, "encode", _placeholder_encode(vae)):
            return prepare(*args, **kwargs)

    with _attribute(pipe, "prepare_mask_latents", prepare_without_encoding):
        yield


def _placeholder_encode(vae: Any) -> Callable[..., Any]:
    from diffusers.models.autoencoders.vae import DiagonalGaussianDistribution
    from diffusers.models.modeling_outputs import AutoencoderKLOutput

    f = 2 ** (len(vae.config.block_out_channels) - 1)

    def encode(x: torch.Tensor, return_dict: bool = True) -> Any:
        # The encoder's moments: mean and log-variance, in the input's dtype (the pipelines
        # upcast the input with the VAE), so sample() draws as many numbers as the real one.
        moments = torch.zeros(x.shape[0], 2 * vae.config.latent_channels, x.shape[2] // f, x.shape[3] // f,
                              dtype=x.dtype, device=x.device)
        posterior = DiagonalGaussianDistribution(moments)
        return AutoencoderKLOutput(latent_dist=posterior) if return_dict else (posterior,)

    return encode


@contextmanager
def _attribute(obj: Any, name: str, value: Any) -> Iterator[None]:
    """``obj.name`` is ``value`` inside the block: an instance attribute over the class's
    method, and whatever instance attribute was there before put back after."""
    missing = object()
    saved = obj.__dict__.get(name, missing)
    setattr(obj, name, value)
    try:
        yield
    finally:
        if saved is missing:
            delattr(obj, name)
        else:
            setattr(obj, name, saved)
