"""Finished jobs: what made each result, for "apply again" and "use settings"."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field, replace
from typing import Any, Iterable, Mapping, Sequence

from paintwire.protocol import Result

from .placement import Placement
from .request import PROMPT, SEED, JobSettings

MAX_HISTORY = 50  # entries kept in a panel; each keeps its result's pixels for "apply again"


@dataclass
class HistoryEntry:
    """One finished job: the settings that made it and what came back.

    ``result`` (pixels) lives only in memory; ``to_dict`` keeps the rest so a
    host can store the list between sessions. ``mode_label`` is the server's
    label of the mode when the job ran.
    """

    job_id: str
    settings: JobSettings
    seeds: tuple[int | None, ...]
    layer_names: tuple[str, ...]
    width: int
    height: int
    created: float = field(default_factory=time.time)
    result: Result | None = None
    mode_label: str = ""

    @property
    def summary(self) -> str:
        prompt = str(self.settings.params.get(PROMPT) or "").strip()
        seeds = ", ".join(str(s) for s in self.seeds if s is not None)
        parts = [self.mode_label or self.settings.mode, self.settings.model or self.settings.engine]
        if prompt:
            parts.append(f"\u201c{prompt[:40]}\u201d")
        if seeds:
            parts.append(f"seed {seeds}")
        return " \u00b7 ".join(parts)

    def rerun_settings(self, index: int = 0) -> JobSettings:
        """The settings to make this result again: the same, with the seed of result ``index`` fixed."""
        params = dict(self.settings.params)
        if 0 <= index < len(self.seeds) and self.seeds[index] is not None:
            params[SEED] = self.seeds[index]
        return replace(self.settings, params=params)

    def to_dict(self) -> dict:
        return {
            "job_id": self.job_id, "settings": self.settings.to_dict(), "seeds": list(self.seeds),
            "layer_names": list(self.layer_names), "width": self.width, "height": self.height, "created": self.created,
            "mode_label": self.mode_label,
        }

    @classmethod
    def from_dict(cls, obj: Mapping[str, Any]) -> "HistoryEntry":
        return cls(
            job_id=str(obj["job_id"]), settings=JobSettings.from_dict(obj["settings"]), seeds=tuple(obj.get("seeds") or ()),
            layer_names=tuple(obj.get("layer_names") or ()), width=int(obj["width"]), height=int(obj["height"]),
            created=float(obj.get("created") or 0.0), mode_label=str(obj.get("mode_label") or ""),
        )


def history_entry(job_id: str, settings: JobSettings, result: Result, placement: Placement, mode_label: str = "") -> HistoryEntry:
    return HistoryEntry(
        job_id=job_id, settings=settings, seeds=tuple(l.seed for l in result.layers),
        layer_names=tuple(l.name for l in placement.layers), width=result.width, height=result.height, result=result,
        mode_label=mode_label,
    )


class History:
    """The newest-first list of finished jobs, bounded by ``limit``."""

    def __init__(self, entries: Iterable[HistoryEntry] = (), limit: int = MAX_HISTORY) -> None:
        self.limit = limit
        self.entries: list[HistoryEntry] = list(entries)[:limit]

    def add(self, entry: HistoryEntry) -> None:
        self.entries.insert(0, entry)
        del self.entries[self.limit :]

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, index: int) -> HistoryEntry:
        return self.entries[index]

    def to_list(self) -> list[dict]:
        return [e.to_dict() for e in self.entries]

    @classmethod
    def from_list(cls, items: Sequence[Mapping[str, Any]], limit: int = MAX_HISTORY) -> "History":
        entries = []
        for item in items:
            try:
                entries.append(HistoryEntry.from_dict(item))
            except (KeyError, TypeError, ValueError, AttributeError):
                continue  # an entry from an older plug-in: drop it rather than fail to start
        return cls(entries, limit)

    def to_json(self) -> str:
        return json.dumps(self.to_list())

    @classmethod
    def from_json(cls, text: str | None, limit: int = MAX_HISTORY) -> "History":
        """A history stored as JSON; anything unreadable gives an empty one."""
        try:
            items = json.loads(text or "[]")
        except ValueError:
            return cls(limit=limit)
        return cls.from_list(items if isinstance(items, list) else [], limit)
