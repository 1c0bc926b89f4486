"""A bounded job queue that is fair across clients.

Each client (owner) has its own FIFO; the queue serves owners in turn, so a
client that submits fifty jobs cannot starve one that submits one. Pure data
structure: no asyncio, no locks; the scheduler owns it on the event loop.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from typing import Generic, Hashable, Iterator, TypeVar

from paintwire.protocol import ErrorCode, ProtocolError

T = TypeVar("T", bound=Hashable)
Owner = Hashable


class FairQueue(Generic[T]):
    def __init__(self, max_per_owner: int, max_total: int) -> None:
        self.max_per_owner = max_per_owner
        self.max_total = max_total
        # Owners in serving order: the first one is served next.
        self._lanes: OrderedDict[Owner, deque[T]] = OrderedDict()
        self._owner_of: dict[T, Owner] = {}

    def __len__(self) -> int:
        return len(self._owner_of)

    def __contains__(self, item: T) -> bool:
        return item in self._owner_of

    def push(self, owner: Owner, item: T) -> None:
        """Raises ProtocolError(QUEUE_FULL) when the owner or the server is at its limit."""
        lane = self._lanes.get(owner)
        if lane is not None and len(lane) >= self.max_per_owner:
            raise ProtocolError(
                ErrorCode.QUEUE_FULL,
                f"You already have {len(lane)} jobs waiting, the most this server allows per client; wait for one to finish or cancel one.",
            )
        if len(self) >= self.max_total:
            raise ProtocolError(ErrorCode.QUEUE_FULL, f"The server's queue is full ({self.max_total} jobs); try again shortly.")
        if lane is None:
            lane = self._lanes[owner] = deque()
        lane.append(item)
        self._owner_of[item] = owner

    def pop(self) -> T | None:
        """The next item, taking owners in turn; None when empty."""
        if not self._lanes:
            return None
        owner, lane = next(iter(self._lanes.items()))
        item = lane.popleft()
        del self._owner_of[item]
        # The served owner goes to the back of the line, or leaves it.
        del self._lanes[owner]
        if lane:
            self._lanes[owner] = lane
        return item

    def remove(self, item: T) -> bool:
        owner = self._owner_of.pop(item, None)
        if owner is None:
            return False
        lane = self._lanes[owner]
        lane.remove(item)
        if not lane:
            del self._lanes[owner]
        return True

    def remove_owner(self, owner: Owner) -> list[T]:
        lane = self._lanes.pop(owner, deque())
        for item in lane:
            del self._owner_of[item]
        return list(lane)

    def order(self) -> Iterator[T]:
        """Items in the order they will be served (if nothing else arrives)."""
        lanes = [deque(lane) for lane in self._lanes.values()]
        while lanes:
            for lane in list(lanes):
                yield lane.popleft()
                if not lane:
                    lanes.remove(lane)

    def positions(self) -> dict[T, int]:
        """How many items will be served before each one (0 = next)."""
        return {item: i for i, item in enumerate(self.order())}
