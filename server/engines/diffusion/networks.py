"""The parts of a loaded pipeline that the engine reaches for by role, whatever the family."""

from __future__ import annotations

from typing import Any


def denoiser_of(pipe: Any) -> Any:
    """A pipeline's denoising network: its UNet, or its transformer."""
    unet = getattr(pipe, "unet", None)
    return unet if unet is not None else pipe.transformer
