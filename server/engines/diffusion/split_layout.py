"""Models kept in parts (ComfyUI's layout): a transformer file matched with its text
encoders and VAE, found anywhere under the model folders, into one model.

ComfyUI users keep a Flux transformer in ``diffusion_models/`` (or ``unet/``), its text
encoders in ``text_encoders/`` (or ``clip/``) and its VAE in ``vae/``. The registry
gathers every part it finds by its tensors (the folder names are not needed); each
transformer then takes, for each part it needs, the one that fits:

1. the part inside its own file (an all-in-one checkpoint);
2. the file its sidecar names (sidecar.py: ``text_encoders:``, ``vae:``);
3. else a part of the right kind and width (a Qwen3 4B for Klein 4B, 8B for 9B): the
   one under the same model folder first, then the nearest by folder, then by name;
4. where a part (or a tokenizer) is still missing: every part but the transformer from a
   diffusers folder of its family whose parts fit (a fine-tuned transformer file beside
   the FLUX.1-dev download), as ``from_single_file(..., config=folder)`` would.

A text encoder needs its tokenizer, which a file does not carry: CLIP-L's is shipped;
T5's and Qwen3's are taken from a folder beside the encoder file named after it with
``.tokenizer`` (``t5xxl_fp16.tokenizer/``), else from a diffusers folder of the family
in the model folders or the Hugging Face cache. What is missing is said at listing,
naming the file and where it goes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from .clip_vocab import BYTE_VOCAB_SIZE, CLIP_VOCAB_SIZE
from .entries import Part, Shapes, read_header
from .families import family_of
from .families.flux_files import (
    CLIP_L, ENCODER_FOLDERS, FOLDER_PARTS, PARTS, PIPELINE, PREFIXES, QWEN3, SAME_TENSORS, SD_VAE, T5, TOKENIZER_SUFFIX, TRANSFORMER,
    VAE_CHANNELS, VAE_ROLES, Need, named_kind, needs, part_width, roles, sub_shapes, vocab_rows,
)
from .gguf_files import SUFFIX as GGUF_SUFFIX
from .gguf_files import read_gguf
from .sidecar import SidecarError, declared_parts, sidecar_path



@dataclass(frozen=True)
class TokenizerSource:
    """Where the tokenizer of a text encoder that ships none is found, and how it is named."""

    name: str  # for people: "T5"
    subfolder: str  # its folder in a diffusers pipeline of the family
    family: str  # the family's downloads, for people: "FLUX.1"
    class_word: str  # what tokenizer_config.json's tokenizer_class contains


TOKENIZER_SOURCES = {T5: TokenizerSource("T5", "tokenizer_2", "FLUX.1", "T5"),
                     QWEN3: TokenizerSource("Qwen3", "tokenizer", "FLUX.2 Klein", "Qwen")}
# (role, rows of the encoder's embedding) -> a tokenizer folder, or None
FindPartTokenizer = Callable[[str, int], "Path | None"]


@dataclass(frozen=True)
class PartFile:
    """A part found in a model folder: a text encoder or a VAE file (or one inside a bigger file)."""

    role: str
    path: Path
    prefix: str
    width: int | None  # a text encoder's hidden size
    rows: int  # a text encoder's embedding rows (0 for a VAE)
    root: Path  # the configured model folder it was found under

    @classmethod
    def found(cls, role: str, path: Path, shapes: Shapes, prefix: str, root: Path) -> "PartFile":
        encoder = role in (CLIP_L, T5, QWEN3)
        return cls(role, path, prefix, part_width(role, shapes, prefix), vocab_rows(role, shapes, prefix) if encoder else 0, root)


def file_parts(shapes: Shapes) -> dict[str, str]:
    """The parts a file that holds no transformer carries (role -> prefix): a text encoder, a VAE."""
    found = roles(shapes)
    return {} if TRANSFORMER in found else found


@dataclass(frozen=True)
class Assembled:
    kind: str
    parts: tuple[Part, ...]


def assemble(path: Path, shapes: Shapes, root: Path, kind: str, found: list[PartFile],
             find_tokenizer: FindPartTokenizer, folders: Sequence[tuple[Path, str]] = ()) -> Assembled | str:
    """The model that the transformer file ``path`` (of ``kind`` by its tensors) makes with
    the parts ``found``, or else with the other parts of one of the diffusers ``folders``
    ((folder, kind) of each found) of its family, or the sentence saying what is missing."""
    name = path.stem
    try:
        declared = declared_parts(path)
    except SidecarError as exc:
        return f"{name} cannot be loaded: {exc}"
    family = family_of(kind)
    choices = SAME_TENSORS.get(kind, (kind,))
    chosen = declared.kind or named_kind(kind, path)
    if chosen not in choices:
        return (f"{name} cannot be loaded: its sidecar says kind {chosen!r}, but its tensors make it a {family.label} "
                f"model of kind {' or '.join(choices)}.")
    inside = roles(shapes)
    named = list(declared.text_encoders) + ([declared.vae] if declared.vae else [])
    parts = [Part(TRANSFORMER, path, inside[TRANSFORMER])]
    missing: list[str] = []
    absent: list[Need] = []
    for need in needs(shapes):
        if need.role in inside:
            part: PartFile | None = PartFile.found(need.role, path, shapes, inside[need.role], root)
        else:
            part = _declared(need.role, named, path, found) or _nearest(need.role, need.width, path, root, found)
        if part is None:
            absent.append(need)
            continue
        parts.append(Part(part.role, part.path, part.prefix))
        if part.role in TOKENIZER_SOURCES:
            tokenizer = _tokenizer_beside(part.path) or find_tokenizer(part.role, part.rows)
            if tokenizer is None:
                missing.append(_no_tokenizer(part))
            else:
                parts.append(Part(f"{part.role}-tokenizer", tokenizer))
        elif part.role == CLIP_L and part.rows not in (CLIP_VOCAB_SIZE, BYTE_VOCAB_SIZE):
            tokenizer = find_tokenizer(CLIP_L, part.rows)
            if tokenizer is None:
                missing.append(f"no CLIP tokenizer of {part.rows} tokens was found for {part.path.name} (the shipped one has "
                               f"{CLIP_VOCAB_SIZE}): put a diffusers folder whose text encoder has {part.rows} tokens in a model folder")
            else:
                parts.append(Part(f"{CLIP_L}-tokenizer", tokenizer))
    if absent:
        missing.insert(0, _missing(absent, path, root, found))
    if missing:
        folder = next((f for f, k in folders if family_of(k) is family and _folder_fits(f, shapes)), None)
        if folder is not None:  # its text encoders, tokenizers and VAE, as they are
            return Assembled(chosen, (parts[0], Part(PIPELINE, folder)))
        return f"{name} cannot be loaded: " + "; ".join(missing) + "."
    return Assembled(chosen, tuple(parts))


def _folder_fits(folder: Path, shapes: Shapes) -> bool:
    """Whether every part of the diffusers ``folder`` is what the transformer's tensors ``shapes`` read."""
    for need in needs(shapes):
        sub, key = FOLDER_PARTS[need.role]
        try:
            config = json.loads((folder / sub / "config.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return False
        want = need.width if need.width is not None else VAE_CHANNELS[need.role]
        if not isinstance(config, dict) or config.get(key) != want:
            return False
    return True


def _declared(role: str, names: list[str], path: Path, found: list[PartFile]) -> PartFile | None:
    """A part of ``role`` among the files the sidecar names: beside the sidecar first, then by file name."""
    side = sidecar_path(path)
    for file in names:
        beside = (side.parent if side else path.parent) / file
        match = [p for p in found if p.role == role and (p.path == beside or p.path.name == Path(file).name)]
        match.sort(key=lambda p: p.path != beside)
        if match:
            return match[0]
    return None


def _distance(a: Path, b: Path) -> int:
    """Folders between two files (siblings 0; diffusion_models/x and vae/y of one ComfyUI folder 2)."""
    shared = 0
    for x, y in zip(a.parent.parts, b.parent.parts):
        if x != y:
            break
        shared += 1
    return (len(a.parent.parts) - shared) + (len(b.parent.parts) - shared)


def _nearest(role: str, width: int | None, path: Path, root: Path, found: list[PartFile]) -> PartFile | None:
    fits = [p for p in found if p.role == role and (width is None or p.width == width)]
    fits.sort(key=lambda p: (p.root != root, _distance(path, p.path), p.path.name))
    return fits[0] if fits else None


def _missing(absent: list[Need], path: Path, root: Path, found: list[PartFile]) -> str:
    """"it needs the CLIP-L text encoder (text_encoders/clip_l.safetensors) and ... under a model folder",
    with what was found instead (an encoder of another width, a VAE of another family)."""
    wants = [f"{PARTS[n.role].label} ({PARTS[n.role].folder}/{PARTS[n.role].file})" for n in absent]
    sentence = f"it needs {_and(wants)} under a model folder"
    for need in absent:
        if need.role in VAE_ROLES:
            others = sorted((p for p in found if p.role in VAE_ROLES and p.role != need.role),
                            key=lambda p: (p.root != root, _distance(path, p.path)))
        else:
            others = [p for p in found if p.role == need.role]  # an encoder of another width
        if not others:
            continue
        other = others[0]
        if need.role in VAE_ROLES:
            what = "a Stable Diffusion VAE (4 latent channels)" if other.role == SD_VAE else PARTS[other.role].label
            sentence += f"; {other.path.name} is {what}, not {PARTS[need.role].label}"
        else:
            sentence += f"; {other.path.name} is {other.width} wide where this model reads {need.width}"
    return sentence


def _and(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _no_tokenizer(part: PartFile) -> str:
    source = TOKENIZER_SOURCES[part.role]
    folder = part.path.with_name(part.path.stem + TOKENIZER_SUFFIX)
    return (f"no {source.name} tokenizer was found for {part.path.name} (a single file carries none): put the {source.subfolder}/ "
            f"folder of a {source.family} diffusers download (with its tokenizer.json) beside it as {folder.parent.name}/{folder.name}/, "
            f"or keep a {source.family} diffusers folder in a model folder")


def _tokenizer_beside(encoder: Path) -> Path | None:
    folder = encoder.with_name(encoder.stem + TOKENIZER_SUFFIX)
    return folder if (folder / "tokenizer.json").is_file() else None


def tokenizer_size(folder: Path) -> int | None:
    """Tokens of a saved tokenizer (its tokenizer.json: BPE or Unigram vocabulary plus added tokens)."""
    try:
        data = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))
        vocab = data["model"]["vocab"]
        ids = set(vocab.values()) if isinstance(vocab, dict) else set(range(len(vocab)))
        ids |= {int(t["id"]) for t in data.get("added_tokens", [])}
        return max(ids) + 1 if ids else None
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def tokenizer_fits(folder: Path, role: str, rows: int) -> bool:
    """Whether ``folder`` holds a tokenizer of the kind a ``role`` encoder reads that can feed its
    embedding of ``rows`` (T5 and Qwen3 pad their embeddings past the vocabulary: 32100 tokens
    for 32128 rows, 151669 for 151936)."""
    try:
        config = json.loads((folder / "tokenizer_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if not isinstance(config, dict) or TOKENIZER_SOURCES[role].class_word not in str(config.get("tokenizer_class", "")):
        return False
    size = tokenizer_size(folder)
    return size is not None and rows - 512 <= size <= rows


# --- what the loader asks of an assembled model ------------------------------------------------


def file_shapes(path: Path) -> Shapes:
    """Tensor names and shapes of a .safetensors or .gguf file, from its header or table alone."""
    return read_gguf(path).shapes if path.suffix == GGUF_SUFFIX else read_header(path)


def combined_shapes(parts: tuple[Part, ...]) -> Shapes:
    """The tensors of a model kept in parts, as one all-in-one file would hold them (flux_files.PREFIXES)."""
    shapes: Shapes = {}
    for part in parts:
        if part.role in PREFIXES:
            shapes.update({PREFIXES[part.role] + k: v for k, v in sub_shapes(file_shapes(part.path), part.prefix).items()})
    return shapes


def tokenizer_finder(parts: tuple[Part, ...], fallback: Callable[[int, str], Path | None]) -> Callable[[int, str], Path | None]:
    """find_tokenizer(rows, subfolder) for a model kept in parts: the tokenizers matched at listing first."""
    found = {part.role.removesuffix("-tokenizer"): part.path for part in parts if part.role.endswith("-tokenizer")}
    encoder_of = {sub: role for folders in ENCODER_FOLDERS.values() for role, (_, sub) in folders.items() if role in found}

    def find(rows: int, subfolder: str) -> Path | None:
        role = encoder_of.get(subfolder)
        return found[role] if role is not None else fallback(rows, subfolder)

    return find
