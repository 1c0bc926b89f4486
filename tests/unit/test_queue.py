from __future__ import annotations

import pytest

from paintwire.protocol import ErrorCode, ProtocolError
from paintwire.server.queue import FairQueue


def test_owners_are_served_in_turn():
    q: FairQueue[str] = FairQueue(10, 100)
    for item in ("a1", "a2", "a3"):
        q.push("a", item)
    q.push("b", "b1")
    q.push("c", "c1")
    assert list(q.order()) == ["a1", "b1", "c1", "a2", "a3"]
    assert q.positions()["c1"] == 2
    assert [q.pop() for _ in range(6)] == ["a1", "b1", "c1", "a2", "a3", None]


def test_a_served_owner_goes_to_the_back():
    q: FairQueue[str] = FairQueue(10, 100)
    q.push("a", "a1")
    q.push("a", "a2")
    assert q.pop() == "a1"
    q.push("b", "b1")
    assert list(q.order()) == ["b1", "a2"]


def test_limits_per_owner_and_in_total():
    q: FairQueue[str] = FairQueue(2, 3)
    q.push("a", "a1")
    q.push("a", "a2")
    with pytest.raises(ProtocolError) as info:
        q.push("a", "a3")
    assert info.value.code is ErrorCode.QUEUE_FULL
    q.push("b", "b1")
    with pytest.raises(ProtocolError):
        q.push("c", "c1")


def test_remove_and_remove_owner():
    q: FairQueue[str] = FairQueue(10, 100)
    q.push("a", "a1")
    q.push("b", "b1")
    q.push("a", "a2")
    assert q.remove("a1") and not q.remove("a1")
    assert q.remove_owner("a") == ["a2"]
    assert len(q) == 1 and "b1" in q and list(q.order()) == ["b1"]
