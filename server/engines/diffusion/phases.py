"""Phases and cancel points inside a pipeline's own loops.

A diffusers pipeline call is one long piece of work: text encoding, VAE
encoding of the input, the denoising steps, the VAE decode. Its step callback
comes only at the end of each step, so a cancel would wait for a whole step
(and for the encodes before the first one, and the decode after the last).
Forward pre-hooks on the networks' building blocks (resnet and transformer
blocks, up- and downsamplers) check the job's cancel flag before each block,
and hooks on the VAE's encoder and decoder report each tile. The longest piece
of work that cannot be interrupted is then one block of one network at the
generation size: on a GPU a few milliseconds, on a CPU at 512x512 a fraction of
a second (docs/performance.md has the figures).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any, Iterator

import torch

from paintwire.protocol import Phase

from ..base import JobContext


def _block_types() -> tuple[type, ...]:
    from diffusers.models.attention import BasicTransformerBlock
    from diffusers.models.downsampling import Downsample2D
    from diffusers.models.resnet import ResnetBlock2D
    from diffusers.models.upsampling import Upsample2D

    return (ResnetBlock2D, BasicTransformerBlock, Downsample2D, Upsample2D)


def vae_tiles(vae: Any, shape: torch.Size, decode: bool) -> int:
    """How many times the VAE runs its encoder (or decoder) on an input of ``shape``:
    once, or once per tile when tiling is on and the input is over a tile."""
    batch, _, height, width = shape
    slices = batch if getattr(vae, "use_slicing", False) and batch > 1 else 1
    tile = getattr(vae, "tile_latent_min_size" if decode else "tile_sample_min_size", None)
    if not getattr(vae, "use_tiling", False) or not isinstance(tile, int) or (height <= tile and width <= tile):
        return slices
    stride = max(1, int(tile * (1 - vae.tile_overlap_factor)))
    return slices * len(range(0, height, stride)) * len(range(0, width, stride))


@dataclass
class _Coder:
    """Counts the encoder's (or decoder's) runs within one VAE encode (or decode)."""

    phase: Phase
    done: int = 0
    total: int = 1


@dataclass
class PhaseWatch:
    """Installed on a pipeline's networks for one job (``watching``)."""

    ctx: JobContext
    handles: list[Any] = field(default_factory=list)
    restore: list[tuple[Any, str, Any]] = field(default_factory=list)

    def check(self, *_: Any) -> None:
        self.ctx.check_cancelled()

    def enter_denoising(self, *_: Any) -> None:
        # The first UNet call of a run: the step callback comes only when the step ends.
        if self.ctx.current_phase is not Phase.DENOISING:
            self.ctx.resume(Phase.DENOISING)

    def watch_vae(self, vae: Any) -> None:
        for name, phase, decode in (("encode", Phase.ENCODING, False), ("decode", Phase.DECODING, True)):
            coder = _Coder(phase)
            original = getattr(vae, name)

            def counted(x: torch.Tensor, *args: Any, _coder: _Coder = coder, _original: Any = original, _decode: bool = decode, **kwargs: Any) -> Any:
                _coder.done, _coder.total = 0, vae_tiles(vae, x.shape, _decode)
                self.ctx.phase(_coder.phase, 0, _coder.total)
                return _original(x, *args, **kwargs)

            def tile_done(*_: Any, _coder: _Coder = coder) -> None:
                _coder.done += 1
                self.ctx.phase(_coder.phase, min(_coder.done, _coder.total), _coder.total)

            # An instance attribute shadows the method for this job only; put back afterwards.
            self.restore.append((vae, name, vae.__dict__.get(name)))
            object.__setattr__(vae, name, counted)
            network = vae.decoder if decode else vae.encoder
            self.handles.append(network.register_forward_pre_hook(self.check))
            self.handles.append(network.register_forward_hook(tile_done))

    def add_cancel_points(self, network: torch.nn.Module) -> None:
        blocks = _block_types()
        for module in network.modules():
            if isinstance(module, blocks):
                self.handles.append(module.register_forward_pre_hook(self.check))
        # The transformers of the flow families keep their blocks in lists of these names.
        for name in ("transformer_blocks", "single_transformer_blocks"):
            for module in getattr(network, name, ()):
                if not isinstance(module, blocks):
                    self.handles.append(module.register_forward_pre_hook(self.check))

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()
        for obj, name, before in reversed(self.restore):
            if before is None:
                obj.__dict__.pop(name, None)
            else:
                obj.__dict__[name] = before
        self.handles.clear()
        self.restore.clear()


@contextlib.contextmanager
def watching(pipe: Any, ctx: JobContext) -> Iterator[PhaseWatch]:
    """Report phases and check for cancel inside every network of ``pipe`` (and of
    the pipelines made from it with from_pipe, which share the same modules)."""
    watch = PhaseWatch(ctx)
    try:
        network = getattr(pipe, "unet", None) or getattr(pipe, "transformer", None)
        if network is not None:
            watch.handles.append(network.register_forward_pre_hook(watch.enter_denoising))
            watch.add_cancel_points(network)
        for name in ("text_encoder", "text_encoder_2"):
            encoder = getattr(pipe, name, None)
            if encoder is not None:
                watch.handles.append(encoder.register_forward_pre_hook(watch.check))
        vae = getattr(pipe, "vae", None)
        if vae is not None:
            watch.watch_vae(vae)
            watch.add_cancel_points(vae)
        yield watch
    finally:
        watch.remove()


@contextlib.contextmanager
def cancel_points(network: torch.nn.Module, ctx: JobContext) -> Iterator[None]:
    """Check for cancel before every layer of a network of any architecture (an
    upscaler model): one tile of a big upscaler can take seconds on a CPU."""
    handles = [m.register_forward_pre_hook(lambda *_: ctx.check_cancelled()) for m in network.modules() if not any(m.children())]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()
