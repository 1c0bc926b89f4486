"""The diffusers engine package: Stable Diffusion 1.x, 2.x and SDXL.

One job per module: ``models`` (registry and architecture detection),
``configs`` (offline config skeletons for single files), ``loader`` and
``cache`` (loading and the warm cache), ``params`` (modes and parameters),
``generate`` (one denoising run), ``sampling`` (schedulers, step hook),
``modes`` (each mode), ``soft_inpaint``, ``previews``, ``lora``, ``colour``,
``resize``, ``upscalers``, ``device``, and ``engine`` (the Engine itself).
"""

from .engine import DiffusersEngine

__all__ = ["DiffusersEngine"]
