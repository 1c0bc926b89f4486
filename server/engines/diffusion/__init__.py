"""The diffusers engine package: Stable Diffusion 1.x, 2.x, SDXL, Flux.1 and Flux.2 Klein.

One job per module: ``families`` (one object per architecture: what differs
between them, docs/families.md), ``models`` (the registry), ``loader`` and
``cache`` (loading and the warm cache), ``params`` (modes and parameters),
``generate`` (one denoising run), ``sampling`` (schedulers, step hook),
``modes`` (each mode), ``soft_inpaint``, ``previews``, ``vae_codec``, ``lora``, ``colour``,
``resize``, ``upscalers``, ``device``, and ``engine`` (the Engine itself).
"""

from .engine import DiffusersEngine

__all__ = ["DiffusersEngine"]
