"""Progress and cancel points while a model loads, and no progress bars on the server's terminal.

diffusers draws its bars through one factory, ``diffusers.utils.logging.tqdm``,
which its loaders look up at each call. Replacing that factory once turns every
bar off (a server's log is not a terminal) and lets the loop over a pipeline's
components ("Loading pipeline components...") tell the load's watch which
component is loading, on the thread doing it.

One component can take seconds by itself (a full-size UNet: reading 1.7 GB
from its file, then casting and placing every tensor), so the watch also goes
inside components. diffusers reads weight files through ``load_state_dict``,
a name each of its loading modules imports, and places each tensor into a
network through accelerate's ``set_module_tensor_to_device``; transformers
loops over a text encoder's tensors under a bar of its own. While a load is
watched on this thread, the reader reads tensor by tensor and the placer and
the bar count each tensor, and the watch checks for a cancel every
``GROUP_BYTES`` of work. What cannot be split (importing diffusers' pipelines
on the first load, a generated config folder) runs on a thread of its own
while the job's thread keeps checking (``aside``). A cancel stops the load
within one group; the model cache keeps nothing of a load that did not finish
(cache.py).

The load's work is counted in bytes of weights, each read once from its file
and placed once into its network, and reported in hundredths (``LOAD_PARTS``):
bytes, not components, because a UNet is most of a model and a tokenizer none.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import threading
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path
from typing import Any, Callable, Iterator, TypeVar

T = TypeVar("T")

# Work between two cancel checks: casting 64 MiB of fp16 weights to fp32 took up to 1.2 s on
# a busy 2-core CPU, so a quarter of that (docs/performance.md has the gaps of a full-size load).
# A check costs microseconds; a tensor is never split (SD1.5's largest is 76 MB).
GROUP_BYTES = 16 * 2**20
LOAD_PARTS = 100  # the load is reported in hundredths of its bytes
IMPORT_STAGE = "starting diffusers"  # the first load after a start imports its modules (seconds)

Report = Callable[[int, int, str], None]  # (parts done, parts in all, stage word)

_local = threading.local()
_COMPONENT_LOOP = "pipeline components"
_TENSOR_LOOP = "Loading weights"  # transformers 5 (a diffusers folder's text encoders)
_TRANSFORMERS_LOADER = "transformers.core_model_loading"
# Where diffusers 0.42 reads and places weights: each module holds its own name for the functions.
_READERS = ("diffusers.models.model_loading_utils", "diffusers.models.modeling_utils", "diffusers.loaders.single_file_utils")
_PLACER = "diffusers.models.model_loading_utils"  # load_model_dict_into_meta's set_module_tensor_to_device
_installed = False
# Work that cannot be split runs here while the job's thread checks for a cancel; a cancelled
# job leaves it to finish on its own (an import, a config folder: nothing half-made is kept).
_ASIDE = ThreadPoolExecutor(max_workers=1, thread_name_prefix="paintwire-load")
ASIDE_POLL_SECONDS = 0.05


class LoadWatch:
    """One model load on one thread: its work done (bytes read plus bytes placed, twice
    the ``weight_bytes`` of its files in all), the component under way, and a cancel
    check (``check``) at least every GROUP_BYTES of work.

    ``components``: the bytes of each component's own weight files where the model
    has them (a diffusers folder), so a component loaded by code the watch cannot
    see inside (transformers' text encoders) still counts when it ends."""

    def __init__(self, weight_bytes: int, report: Report, check: Callable[[], None], components: dict[str, int] | None = None) -> None:
        self.expected = max(1, 2 * weight_bytes)
        self.report = report
        self.check = check
        self.components = dict(components or {})
        self.done = 0
        self.stage = "loading model"
        self.component = ""
        self._pending = 0  # bytes since the last check
        self._component_start = 0
        self._sent: tuple[int, str] | None = None

    @property
    def parts(self) -> int:
        return min(LOAD_PARTS - 1, self.done * LOAD_PARTS // self.expected)  # the last part is the end of the load

    def advance(self, nbytes: int) -> None:
        """``nbytes`` more of the load's work is done; checks and reports at each group's end."""
        self.done += nbytes
        self._pending += nbytes
        if self._pending >= GROUP_BYTES:
            self.tick()

    def group_done(self, nbytes: int) -> None:
        """A group of ``nbytes`` is done: check and report now, whatever its size."""
        self.done += nbytes
        self.tick()

    def tick(self) -> None:
        """A cancel point: check, and report when the part or the stage changed."""
        self._pending = 0
        self.check()
        self._send(self.parts)

    def begin(self, component: str) -> None:
        self.stage = f"loading {component.replace('_', ' ')}"
        self.component = component
        self._component_start = self.done
        self.tick()

    def share(self, items: int) -> int:
        """Bytes of work each of ``items`` equal steps of the current component is worth."""
        return 2 * self.components.get(self.component, 0) // max(1, items)

    def end(self, component: str) -> None:
        self.done = max(self.done, self._component_start + 2 * self.components.get(component, 0))
        self.tick()

    def finish(self) -> None:
        self.stage = "loading model"
        self._send(LOAD_PARTS)

    def _send(self, parts: int) -> None:
        if self._sent != (parts, self.stage):
            self._sent = (parts, self.stage)
            self.report(parts, LOAD_PARTS, self.stage)


def weight_bytes(folder: Path) -> dict[str, int]:
    """Bytes of the weights each component of a diffusers folder loads: its .safetensors
    files without a variant in their name (``model.fp16.safetensors`` is not loaded)."""
    sizes: dict[str, int] = {}
    for sub in sorted(p for p in folder.iterdir() if p.is_dir()):
        files = [f for f in sub.glob("*.safetensors") if "." not in f.name[: -len(".safetensors")]]
        if files:
            sizes[sub.name] = sum(f.stat().st_size for f in files)
    return sizes


def read_weights(path: str | Path, device: str = "cpu", prefix: str = "") -> dict[str, Any]:
    """A .safetensors file's tensors, as ``safetensors.torch.load_file`` gives them, read
    tensor by tensor in file order so that a watched load counts them and can stop.
    ``prefix``: only the tensors whose names start with it, named without it (one part of
    an all-in-one file)."""
    from safetensors import safe_open

    watch: LoadWatch | None = getattr(_local, "watch", None)
    tensors: dict[str, Any] = {}
    with safe_open(str(path), framework="pt", device=device) as f:
        for key in f.offset_keys():
            if not key.startswith(prefix):
                continue
            tensor = f.get_tensor(key)
            tensors[key[len(prefix):]] = tensor
            if watch is not None:
                watch.advance(tensor.nbytes)
    return tensors


def aside(work: Callable[[], T], stage: str = "") -> T:
    """``work()``, on a thread of its own while this thread's load watch checks for a
    cancel (directly when no load is watched); ``stage``: what to tell meanwhile."""
    watch: LoadWatch | None = getattr(_local, "watch", None)
    if watch is None:
        return work()
    if stage:
        watch.stage = stage
        watch.tick()
    future = _ASIDE.submit(work)
    while True:
        try:
            return future.result(timeout=ASIDE_POLL_SECONDS)
        except FutureTimeout:
            watch.check()


def _reader(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def load_state_dict(checkpoint_file: Any, disable_mmap: bool = False, map_location: Any = "cpu") -> Any:
        plain = isinstance(checkpoint_file, (str, Path)) and str(checkpoint_file).endswith(".safetensors") and not disable_mmap
        if getattr(_local, "watch", None) is None or not plain or str(map_location) != "cpu":
            return original(checkpoint_file, disable_mmap=disable_mmap, map_location=map_location)
        return read_weights(checkpoint_file)

    load_state_dict.paintwire_watched = True  # type: ignore[attr-defined]
    return load_state_dict


def _placer(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def set_module_tensor_to_device(module: Any, name: str, device: Any, *args: Any, value: Any = None, **kwargs: Any) -> Any:
        result = original(module, name, device, *args, value=value, **kwargs)
        watch: LoadWatch | None = getattr(_local, "watch", None)
        if watch is not None and value is not None:
            watch.advance(getattr(value, "nbytes", 0))
        return result

    set_module_tensor_to_device.paintwire_watched = True  # type: ignore[attr-defined]
    return set_module_tensor_to_device


def watched_functions() -> list[str]:
    """The loading functions watched now ("module.function"), after ``_install_groups``."""
    found = []
    for module_name, name in [(m, "load_state_dict") for m in _READERS] + [(_PLACER, "set_module_tensor_to_device")]:
        if getattr(getattr(importlib.import_module(module_name), name, None), "paintwire_watched", False):
            found.append(f"{module_name}.{name}")
    if isinstance(getattr(importlib.import_module(_TRANSFORMERS_LOADER), "tqdm", None), _Bars):
        found.append(f"{_TRANSFORMERS_LOADER}.tqdm")
    return found


class _Silent:
    """What a bar is when nobody listens: iterates, counts nothing, prints nothing."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._iterable = args[0] if args else kwargs.get("iterable")

    def __iter__(self) -> Iterator[Any]:
        return iter(self._iterable if self._iterable is not None else ())

    def __enter__(self) -> "_Silent":
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def __getattr__(self, _name: str) -> Callable[..., None]:
        return lambda *args, **kwargs: None


class _Components(_Silent):
    """The loop over a pipeline's components, told to the watch as it goes."""

    def __init__(self, items: list[Any], watch: LoadWatch) -> None:
        super().__init__(items)
        self._items, self._watch = items, watch

    def __iter__(self) -> Iterator[Any]:
        for item in self._items:
            name = str(item[0]) if isinstance(item, tuple) and item else "model"
            self._watch.begin(name)
            yield item
            self._watch.end(name)


class _Tensors(_Silent):
    """transformers' loop over a model's tensors: each one a group of its own."""

    def __init__(self, items: list[Any], watch: LoadWatch) -> None:
        super().__init__(items)
        self._items, self._watch = items, watch

    def __iter__(self) -> Iterator[Any]:
        share = self._watch.share(len(self._items))
        for item in self._items:
            yield item
            self._watch.group_done(share)


class _Bars:
    """Stands in for diffusers' (and transformers' weight loading) tqdm factory."""

    def __call__(self, *args: Any, **kwargs: Any) -> _Silent:
        watch: LoadWatch | None = getattr(_local, "watch", None)
        iterable = args[0] if args else kwargs.get("iterable")
        desc = str(kwargs.get("desc", ""))
        if watch is not None and iterable is not None and _COMPONENT_LOOP in desc:
            return _Components(list(iterable), watch)
        if watch is not None and iterable is not None and desc == _TENSOR_LOOP:
            return _Tensors(list(iterable), watch)
        return _Silent(*args, **kwargs)

    def set_lock(self, *args: Any, **kwargs: Any) -> None:
        return None

    def get_lock(self) -> None:
        return None


def install() -> None:
    """Replace diffusers' bar factory (idempotent)."""
    from diffusers.utils import logging as diffusers_logging

    if not isinstance(diffusers_logging.tqdm, _Bars):
        diffusers_logging.tqdm = _Bars()


def _install_groups() -> None:
    """Put the grouped reader and the counting placer in place of diffusers' own, and the
    bars in transformers' weight loading (once: the modules are imported here)."""
    global _installed
    if _installed:
        return
    for module_name in _READERS:
        module = importlib.import_module(module_name)
        module.load_state_dict = _reader(module.load_state_dict)
    placer = importlib.import_module(_PLACER)
    placer.set_module_tensor_to_device = _placer(placer.set_module_tensor_to_device)
    importlib.import_module(_TRANSFORMERS_LOADER).tqdm = _Bars()
    _installed = True


def prepare() -> None:
    """What the first load needs before it can be watched: diffusers' and transformers'
    loading modules, imported (seconds, once per process) and watched."""
    _install_groups()


@contextlib.contextmanager
def reporting(watch: LoadWatch) -> Iterator[LoadWatch]:
    """Count this thread's model loading with ``watch`` meanwhile; its last report
    (all parts) comes when the block ends without an error. The first load of the
    process imports the loading modules aside first."""
    install()
    previous = getattr(_local, "watch", None)
    _local.watch = watch
    try:
        if not _installed:
            aside(prepare, IMPORT_STAGE)
        yield watch
    finally:
        _local.watch = previous
    watch.finish()
