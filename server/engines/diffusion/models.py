"""The model registry: what the configured folders hold, found by reading files, never by running them.

Checkpoints come as diffusers folders (model_index.json) or single .safetensors
files; LoRAs, textual-inversion embeddings, VAEs and upscaler models as
.safetensors files. A file's kind and family are read from its tensor names
and shapes (the JSON header only: no weights are read and nothing is ever
unpickled). The Hugging Face cache is scanned too when it exists.

Families whose files are kept in parts (Flux: a transformer, text encoders and a
VAE, ComfyUI's layout; GGUF transformers) are matched after the scan
(split_layout.py): the parts are not listed, the transformer is, as one model
or with the sentence that says what is missing.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path

from .control.detect import classify_addon, classify_addon_folder
from .entries import (  # noqa: F401  (the registry's vocabulary, re-exported for its readers)
    CHECKPOINT_KINDS, EMBEDDING, LORA, MAX_HEADER_BYTES, SD2, SD15, SDXL, UPSCALER, VAE, ModelEntry, Part, Shapes, read_header,
)
from .families import family_of, recognise_file, recognise_folder
from .families.flux_files import SD_VAE, scaled_fp8_reason
from .gguf_files import SUFFIX as GGUF_SUFFIX
from .gguf_files import read_gguf, unloadable_reason
from .split_layout import TOKENIZER_SOURCES, PartFile, assemble, file_parts, tokenizer_fits
from .upscalers import upscaler_architecture

log = logging.getLogger(__name__)

MAX_SCAN_DEPTH = 6  # model folders are shallow; this bounds a scan of a mistaken root like ~


@dataclass(frozen=True)
class Unusable:
    """Something in a model folder that looks like a model but cannot be loaded, and why:
    listed for clients with its reason instead of failing only when used."""

    name: str
    kind: str  # what it looks like, or "unknown"
    path: Path
    reason: str


# The files of a saved tokenizer (either set).
_TOKENIZER_FILES = (("vocab.json", "merges.txt"), ("tokenizer.json",))


def folder_problem(folder: Path, kind: str) -> str:
    """Why a diffusers pipeline folder of ``kind`` cannot be loaded, or "" when nothing is
    missing. Reads only file names and model_index.json, never weights."""
    try:
        index = json.loads((folder / "model_index.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return f"model_index.json cannot be read ({exc})"
    parts = [n for n, spec in index.items() if not n.startswith("_") and isinstance(spec, list) and spec and spec[0] is not None]
    weights = family_of(kind).weight_components
    for name in dict.fromkeys([weights[0], *parts]):  # the denoiser is never optional
        part = folder / name
        if name in weights:
            if not any(part.glob("*.safetensors")):
                if any(part.glob("*.bin")) or any(part.glob("*.ckpt")):
                    return f"its {name} has weights only as pickles (.bin); this server loads .safetensors only: convert them"
                return f"its {name} folder has no .safetensors weights"
        elif name.startswith("tokenizer"):
            if not any(all((part / f).is_file() for f in files) for files in _TOKENIZER_FILES):
                return f"its {name} is missing (a {name}/ folder with vocab.json and merges.txt)"
    return ""


def classify_file(shapes: Shapes, path: Path) -> str | None:
    """The kind of a .safetensors file from its tensors (folder names only break ties)."""
    kind = recognise_file(shapes)  # a checkpoint of one of the families
    if kind:
        return kind
    kind = classify_addon(shapes)  # ControlNets, IP-Adapters, image encoders
    if kind:
        return kind
    keys = list(shapes)
    if any("lora_" in k or ".lora_A." in k or ".lora." in k or k.startswith("lora_") for k in keys):
        return LORA
    emb_keys = {"emb_params", "clip_l", "clip_g"}
    if 0 < len(keys) <= 4 and all(k in emb_keys or k.startswith("string_to_param") for k in keys):
        return EMBEDDING
    if any(k.endswith("decoder.conv_out.weight") for k in keys) and any(k.endswith("encoder.conv_in.weight") for k in keys):
        return VAE
    # spandrel's own detection, from the names alone
    if upscaler_architecture(keys) or any(p.lower() in ("upscalers", "esrgan", "upscale_models") for p in path.parts):
        return UPSCALER
    return None


def vae_latent_channels(path: Path) -> int | None:
    """The latent channels of a VAE file (its decoder's first convolution reads them), or None."""
    try:
        shapes = read_header(path)
    except (OSError, ValueError):
        return None
    conv = next((v for k, v in shapes.items() if k.endswith("decoder.conv_in.weight")), None)
    return conv[1] if conv is not None and len(conv) > 1 else None


def hf_cache_dir() -> Path | None:
    """The Hugging Face hub cache, where it exists (HF_HUB_CACHE, HF_HOME, default)."""
    if os.environ.get("HF_HUB_CACHE"):
        path = Path(os.environ["HF_HUB_CACHE"])
    elif os.environ.get("HF_HOME"):
        path = Path(os.environ["HF_HOME"]) / "hub"
    else:
        path = Path.home() / ".cache" / "huggingface" / "hub"
    return path if path.is_dir() else None


@dataclass
class ModelRegistry:
    entries: dict[str, ModelEntry] = field(default_factory=dict)
    unusable: dict[str, Unusable] = field(default_factory=dict)
    # Found while scanning, matched after it: parts of split models, and transformers awaiting them.
    _parts: list[PartFile] = field(default_factory=list, repr=False, compare=False)
    _split: list[tuple[Path, Path, Shapes, str]] = field(default_factory=list, repr=False, compare=False)

    @classmethod
    def scan(cls, folders: list[Path], include_hf_cache: bool = True) -> "ModelRegistry":
        registry = cls()
        for folder in folders:
            folder = Path(folder).expanduser()
            if not folder.is_dir():
                log.warning("model folder %s does not exist; skipped", folder)
                continue
            registry._scan_folder(folder, folder, 0)
        cache = hf_cache_dir() if include_hf_cache else None
        if cache is not None:
            registry._scan_hf_cache(cache)
        registry._assemble()
        return registry

    def _add(self, name: str, kind: str, path: Path, single_file: bool, parts: tuple[Part, ...] = ()) -> None:
        base, n = name, 2
        while name in self.entries:  # the same name in two folders: keep both, the second numbered
            name, n = f"{base}-{n}", n + 1
        family = family_of(kind) if kind in CHECKPOINT_KINDS else None
        self.entries[name] = ModelEntry(name, kind, path, single_file, family, parts)

    def _add_folder(self, name: str, folder: Path) -> None:
        kind = recognise_folder(folder)
        if not kind:
            return  # a pipeline of a family this engine does not serve (or a config skeleton)
        problem = folder_problem(folder, kind)
        if problem:
            self._unusable(name, kind, folder, f"{name} cannot be loaded: {problem}.")
        else:
            self._add(name, kind, folder, False)

    def _add_addon_folder(self, folder: Path) -> bool:
        """A ControlNet or image encoder saved as a folder (config.json and weights)."""
        kind = classify_addon_folder(folder)
        if kind is None:
            return False
        # An image encoder is usually saved as image_encoder/ inside an IP-Adapter folder: name it by both.
        name = f"{folder.parent.name}-{folder.name}" if folder.name in ("image_encoder", "image-encoder") else folder.name
        if any(folder.glob("*.safetensors")):
            self._add(name, kind, folder, False)
        elif any(folder.glob("*.bin")):
            self._unusable(name, kind, folder, f"{name} has weights only as pickles (.bin); this server loads .safetensors only: convert them.")
        else:
            self._unusable(name, kind, folder, f"{name} has a config.json but no .safetensors weights beside it.")
        return True

    def _unusable(self, name: str, kind: str, path: Path, reason: str) -> None:
        base, n = name, 2
        while name in self.entries or name in self.unusable:
            name, n = f"{base}-{n}", n + 1
        self.unusable[name] = Unusable(name, kind, path, reason)
        log.warning("%s", reason)

    def _scan_folder(self, root: Path, folder: Path, depth: int) -> None:
        if (folder / "model_index.json").is_file():
            self._add_folder(folder.name, folder)
            return  # a pipeline's subfolders are its components, not models
        if (folder / "config.json").is_file() and self._add_addon_folder(folder):
            return  # a ControlNet or image encoder folder: its weights file is not a model of its own
        if depth > MAX_SCAN_DEPTH:
            return
        try:
            children = sorted(folder.iterdir())
        except OSError:
            return
        for child in children:
            if child.name.startswith("."):
                continue
            if child.is_dir():
                self._scan_folder(root, child, depth + 1)
            elif child.suffix in (".safetensors", GGUF_SUFFIX):
                self._add_file(root, child)
            # .ckpt, .pt, .bin: pickles, never loaded

    def _add_file(self, root: Path, path: Path) -> None:
        gguf = path.suffix == GGUF_SUFFIX
        try:
            contents = read_gguf(path) if gguf else None
            shapes = contents.shapes if contents else read_header(path)
        except (OSError, ValueError) as exc:
            self._unusable(path.stem, "unknown", path, f"{path.name} is not a readable {'GGUF' if gguf else '.safetensors'} file ({exc}).")
            return
        kind = recognise_file(shapes)
        if kind and family_of(kind).split_files:  # matched with its parts once every folder is scanned
            reason = unloadable_reason(path.name, contents) if contents else scaled_fp8_reason(path.name, shapes)
            if reason:
                self._unusable(path.stem, kind, path, reason)
            else:
                self._split.append((root, path, shapes, kind))
            return
        if gguf:
            self._unusable(path.stem, "unknown", path, f"{path.name} is not a Flux transformer; this server reads GGUF files "
                           "only for Flux.1 and Flux.2 Klein transformers.")
            return
        parts = {} if kind else file_parts(shapes)
        if parts and (reason := scaled_fp8_reason(path.name, shapes)):
            self._unusable(path.stem, "unknown", path, reason)
            return
        for role, prefix in parts.items():
            self._parts.append(PartFile.found(role, path, shapes, prefix, root))
        if parts and SD_VAE not in parts:
            return  # a text encoder or a Flux VAE: a part of a model, not listed by itself
        kind = classify_file(shapes, path.relative_to(root))
        if kind:
            self._add(path.stem, kind, path, True)
        else:
            self._unusable(path.stem, "unknown", path, f"{path.name} is not a kind of model this server knows "
                           "(a checkpoint, LoRA, embedding, VAE, upscaler, ControlNet, IP-Adapter or image encoder).")

    def _assemble(self) -> None:
        """Each split transformer with its parts, as one model, or listed with what is missing."""
        folders = [(e.path, e.kind) for e in self.entries.values() if not e.single_file and e.is_checkpoint]
        for root, path, shapes, kind in self._split:
            result = assemble(path, shapes, root, kind, self._parts, self.find_part_tokenizer, folders)
            if isinstance(result, str):
                self._unusable(path.stem, kind, path, result)
            else:
                self._add(path.stem, result.kind, path, True, result.parts)

    def _scan_hf_cache(self, cache: Path) -> None:
        for repo in sorted(cache.glob("models--*")):
            snapshot = _hf_snapshot(repo)
            if snapshot is not None and (snapshot / "model_index.json").is_file():
                self._add_folder(repo.name[len("models--"):].replace("--", "/"), snapshot)

    # -- lookups -------------------------------------------------------------------------

    def get(self, name: str) -> ModelEntry | None:
        return self.entries.get(name)

    def of_kind(self, *kinds: str) -> list[ModelEntry]:
        return [e for e in self.entries.values() if e.kind in kinds]

    def checkpoints(self) -> list[ModelEntry]:
        return [e for e in self.entries.values() if e.is_checkpoint]

    def default_checkpoint(self, kinds: Collection[str] | None = None) -> ModelEntry | None:
        """The model a job without job.model uses: the first general (non-inpainting) one
        (of ``kinds``, when given: those the job's mode takes)."""
        checkpoints = [e for e in self.checkpoints() if kinds is None or e.kind in kinds]
        return next((e for e in checkpoints if not e.inpaint), checkpoints[0] if checkpoints else None)

    def find_part_tokenizer(self, role: str, rows: int) -> Path | None:
        """A tokenizer for a text-encoder file of ``role`` ("t5", "qwen3", or "clip-l" of an unusual
        size) whose embedding has ``rows`` rows: from a diffusers folder found (FLUX.1's
        tokenizer_2/, Klein's tokenizer/), else from the Hugging Face cache (a pipeline's subfolder
        or a tokenizer repository)."""
        if role not in TOKENIZER_SOURCES:
            return self.find_tokenizer(rows, "tokenizer")
        sub = TOKENIZER_SOURCES[role].subfolder
        candidates = [e.path / sub for e in self.entries.values() if not e.single_file and e.is_checkpoint]
        cache = hf_cache_dir()
        if cache is not None:
            for repo in sorted(cache.glob("models--*")):
                if (snap := _hf_snapshot(repo)) is not None:
                    candidates += [snap / sub, snap]
        return next((tok for tok in candidates if tokenizer_fits(tok, role, rows)), None)

    def find_tokenizer(self, vocab_size: int, subfolder: str = "tokenizer") -> Path | None:
        """A tokenizer folder with ``vocab_size`` entries, for single-file checkpoints
        (which carry none): from any diffusers folder found, else from a tokenizer or
        CLIP repository in the Hugging Face cache (e.g. openai/clip-vit-large-patch14).
        SDXL's second tokenizer falls back to a first one: the same BPE vocabulary."""
        folders = [e.path for e in self.entries.values() if not e.single_file and e.is_checkpoint]
        candidates = [f / sub for sub in dict.fromkeys((subfolder, "tokenizer")) for f in folders]
        cache = hf_cache_dir()
        if cache is not None:
            candidates += [snap for repo in sorted(cache.glob("models--*")) if (snap := _hf_snapshot(repo)) is not None]
        for tok in candidates:
            if _vocab_size(tok) == vocab_size:
                return tok
        return None


def _vocab_size(tok: Path) -> int | None:
    """Entries in a tokenizer folder's vocabulary: vocab.json (older saves) or tokenizer.json
    (transformers 5 writes only this one), added tokens included."""
    try:
        if (tok / "vocab.json").is_file():
            return len(json.loads((tok / "vocab.json").read_text(encoding="utf-8")))
        data = json.loads((tok / "tokenizer.json").read_text(encoding="utf-8"))
        vocab = set(data["model"]["vocab"].values()) | {t["id"] for t in data.get("added_tokens", [])}
        return len(vocab)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def _hf_snapshot(repo: Path) -> Path | None:
    ref = repo / "refs" / "main"
    if ref.is_file():
        snap = repo / "snapshots" / ref.read_text(encoding="utf-8").strip()
        if snap.is_dir():
            return snap
    snaps = sorted((repo / "snapshots").glob("*"), key=lambda p: p.stat().st_mtime) if (repo / "snapshots").is_dir() else []
    return snaps[-1] if snaps else None
