"""A bounded job queue that is fair across clients.

Each client (owner) has its own FIFO; the queue serves owners in turn, so a
client that submits fifty jobs cannot starve one that submits one. Pure data
structure: no asyncio, no locks; the scheduler owns it on the event loop.
"""

from __future__ import annotations

from collections import deque
from typing import Callable, Generic, Hashable, Iterator, TypeVar

from paintwire.protocol import ErrorCode, ProtocolError

T = TypeVar("T", bound=Hashable)
Owner = Hashable


class FairQueue(Generic[T]):
    """Owners are served in turn: the next job comes from the owner whose last
    job was served longest ago (never-served owners first, by arrival), so a
    newcomer goes ahead of an owner that was just served."""

    def __init__(self, max_per_owner: int, max_total: int) -> None:
        self.max_per_owner = max_per_owner
        self.max_total = max_total
        self._lanes: dict[Owner, deque[T]] = {}
        self._owner_of: dict[T, Owner] = {}
        self._last_served: dict[Owner, int] = {}  # serve counter of each owner's last job
        self._arrival: dict[Owner, int] = {}  # tie-break among owners never served
        self._counter = 0

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
            self._counter += 1
            self._arrival.setdefault(owner, self._counter)
        lane.append(item)
        self._owner_of[item] = owner

    def _rank(self, owner: Owner, last_served: dict[Owner, int]) -> tuple[int, int]:
        return (last_served.get(owner, -1), self._arrival[owner])

    def pop(self, ready: Callable[[Owner], bool] | None = None) -> T | None:
        """The next item, taking owners in turn; None when empty. With ``ready``,
        owners for which it returns False are passed over (they keep their turn)."""
        owners = [o for o in self._lanes if ready is None or ready(o)]
        if not owners:
            return None
        owner = min(owners, key=lambda o: self._rank(o, self._last_served))
        lane = self._lanes[owner]
        item = lane.popleft()
        del self._owner_of[item]
        if not lane:
            del self._lanes[owner]
        self._counter += 1
        self._last_served[owner] = self._counter
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
        """Drop an owner that went away, with everything it had queued."""
        lane = self._lanes.pop(owner, deque())
        for item in lane:
            del self._owner_of[item]
        self._last_served.pop(owner, None)
        self._arrival.pop(owner, None)
        return list(lane)

    def order(self) -> Iterator[T]:
        """Items in the order they will be served (if nothing else arrives)."""
        lanes = {owner: deque(lane) for owner, lane in self._lanes.items()}
        last_served = dict(self._last_served)
        counter = self._counter
        while lanes:
            owner = min(lanes, key=lambda o: self._rank(o, last_served))
            yield lanes[owner].popleft()
            if not lanes[owner]:
                del lanes[owner]
            counter += 1
            last_served[owner] = counter

    def positions(self) -> dict[T, int]:
        """How many items will be served before each one (0 = next)."""
        return {item: i for i, item in enumerate(self.order())}
