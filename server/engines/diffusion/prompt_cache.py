"""The text encoders' output for recent prompts, kept per loaded model.

Live painting sends the same prompt with every state; encoding it again each
frame costs a text-encoder pass (two for SDXL) per frame for nothing. The
conditioning depends on the prompt, the negative prompt, the clip skip and
the LoRAs and embeddings applied (a LoRA may change the text encoder), and on
the model: the cache lives on the loaded model, so a model that is unloaded or
replaced takes its entries with it.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Callable, Hashable

# A few prompts: live painting switches between a handful at most. Each entry is
# the conditioning tensors, well under a megabyte for SDXL's longest prompts.
PROMPT_CACHE_SIZE = 8


class PromptCache:
    def __init__(self, size: int = PROMPT_CACHE_SIZE) -> None:
        self.size = size
        self._entries: OrderedDict[Hashable, dict[str, Any]] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def holds(self, key: Hashable) -> bool:
        return key in self._entries

    def get(self, key: Hashable, make: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        """The conditioning for ``key``, made with ``make`` when it is not here. The
        pipelines only read these tensors (they concatenate and repeat them), so
        one copy serves every job."""
        found = self._entries.get(key)
        if found is not None:
            self._entries.move_to_end(key)
            self.hits += 1
            return found
        self.misses += 1
        made = make()
        self._entries[key] = made
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)
        return made

    def clear(self) -> None:
        self._entries.clear()
