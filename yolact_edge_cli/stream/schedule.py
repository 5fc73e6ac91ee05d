"""Which replica runs which item, shared by the engines: every item of one source (the frames of
a video) goes, in order, to one replica — the one its first item went to — so a replica can keep
state across a video's frames; a new source goes to the replica with the fewest items in flight.
Items are gathered per replica into groups of the model's batch."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(eq=False)
class Group:
    """Items bound for one replica's next batch; `handle` is the engine's, once it is sent."""

    replica: int
    members: list = field(default_factory=list)
    counted: int = 0  # members that take a place in the batch (a failed image rides along)
    handle: Any = None


class Schedule:
    def __init__(self, replicas: int, batch_size: int):
        self.batch_size = batch_size
        self.loads = [0] * replicas
        self.open = [Group(r) for r in range(replicas)]
        self._unit: int | None = None
        self._replica = 0

    def add(self, unit: int, member: Any, counts: bool = True) -> tuple[Group, int, bool]:
        """`member` of source `unit` joins its replica's open group: that group, the member's
        place in it, and whether the group is now a whole batch (then it is closed). Sources
        come one after the other, so only the current one's replica is remembered."""
        if unit != self._unit:
            self._unit = unit
            self._replica = min(range(len(self.loads)), key=self.loads.__getitem__)
        group = self.open[self._replica]
        group.members.append(member)
        group.counted += counts
        self.loads[group.replica] += 1
        full = group.counted == self.batch_size
        if full:
            self.close(group)
        return group, len(group.members) - 1, full

    def close(self, group: Group) -> None:
        """No more members for this group (it is sent as it is, a batch padded where short)."""
        if self.open[group.replica] is group:
            self.open[group.replica] = Group(group.replica)

    def rest(self) -> list[Group]:
        """The groups still open, closed: the stream's last, short batches."""
        groups = [g for g in self.open if g.members]
        for group in groups:
            self.close(group)
        return groups

    def done(self, group: Group) -> None:
        """One of the group's items has come back from its replica."""
        self.loads[group.replica] -= 1
