"""Where the stream consumer stands on each of its partitions: applied, durable, committed.

Where this sits: recsys.streaming.consumer keeps one `Offsets`. Per partition, three "next offsets":

- applied: after the last record whose online effects are written (the batch);
- durable: everything before it is durable, the archive and the dead letters included (the roll);
- committed: what the group has committed (the broker's copy may lag after a failed commit).

A commit sends `durable` where it differs from `committed`; after a failure the consumer seeks back to
`durable` (what was applied after it is read again, idempotently). `start` is set when a partition is
taken over: the consumer's actual fetch position (kafka-python keeps the position of a partition that
stays assigned across a rebalance, even when the commit on revocation failed).
"""

from __future__ import annotations


class Offsets:
    def __init__(self):
        self.applied: dict = {}
        self.durable: dict = {}
        self.committed: dict = {}

    def start(self, tp, position: int, committed: int | None) -> None:
        """Taking the partition over at `position`; `committed` is None when the group has no commit yet
        (then nothing is committed until something was done)."""
        self.applied.pop(tp, None)
        self.durable[tp] = position
        self.committed[tp] = position if committed is None else committed

    def polled(self, tp, next_offset: int) -> None:
        self.applied[tp] = next_offset

    def position(self, tp, default=None):
        return self.applied.get(tp, self.durable.get(tp, default))

    def rolled(self, offsets: dict | None = None) -> None:
        """These offsets (default: all applied) are durable now: their roll is written."""
        self.durable.update(self.applied if offsets is None else offsets)

    def to_commit(self, assigned) -> dict:
        return {tp: o for tp, o in self.durable.items() if tp in assigned and o != self.committed.get(tp)}

    def commit_done(self, offsets: dict) -> None:
        self.committed.update(offsets)

    def rewind(self) -> dict:
        """Forget what was applied but is not durable; the offsets to seek back to."""
        self.applied.clear()
        return dict(self.durable)

    def drop(self, partitions) -> None:
        for tp in partitions:
            for table in (self.applied, self.durable, self.committed):
                table.pop(tp, None)


def as_metadata(offsets: dict) -> dict:
    """{TopicPartition: offset} as kafka-python's commit takes it."""
    from kafka.structs import OffsetAndMetadata

    return {tp: OffsetAndMetadata(offset, "", -1) for tp, offset in offsets.items()}
