"""The stream consumer's part in a consumer-group rebalance (a mixin of recsys.streaming.consumer.StreamConsumer).

kafka-python calls the listener inside `poll()`, on its IO thread, so the blocking `commit()` may not be used
there: the commit on revocation awaits the request instead (AsyncConsumerRebalanceListener).

- revoked: apply what was polled, make it durable (derived views, archive, dead letters) and commit, before
  the partitions go to another consumer; if the roll fails, the partitions kept through this rebalance are
  read again from their last durable offset;
- lost (the group expelled this consumer): forget everything not durable; the new owner reads it again;
- assigned: partitions start paused; back in the main thread, `_take_over` learns where each starts (the
  fetch position: the group's commit for a new partition, the current position for one kept: kafka-python
  keeps it even when the commit on revocation failed), removes the archive files of an uncommitted roll from
  there on (recsys.streaming.archive), and resumes them.
"""

from __future__ import annotations

import logging

from recsys.streaming.offsets import as_metadata

log = logging.getLogger("recsys.streaming.consumer")


class Rebalancing:
    """Needs from the consumer: consumer, offsets, roller, archive, _apply, _start_roll, _forget,
    _count_commit, _count_rebalance, _unrolled, _rewind, _taken_over."""

    async def revoked(self, partitions) -> None:
        """Apply what was polled, roll and commit before the partitions go to another consumer."""
        log.info("partitions revoked: %s", sorted(tp.partition for tp in partitions))
        self._count_rebalance("revoked")
        try:
            self._apply()
            self._make_durable()
        except Exception as error:  # noqa: BLE001 - the next owner reads again from the last commit
            log.warning("could not roll on revocation (%s)", error)
            self._rewind = {tp: o for tp, o in self.offsets.durable.items() if tp in partitions}
        else:
            offsets = self.offsets.to_commit(partitions)
            try:  # the blocking commit() may not run on the IO thread: await the request instead
                if offsets:
                    await self.consumer.commit_async(as_metadata(offsets))
                    self.offsets.commit_done(offsets)
                    self._count_commit(True)
            except Exception as error:  # noqa: BLE001 - durable anyway; the next owner reads it again
                self._count_commit(False)
                log.warning("could not commit on revocation (%s); the next owner reads from the last commit",
                            error)
        self._forget()
        self.offsets.drop(partitions)

    def _make_durable(self) -> None:
        """Everything applied made durable now (the commit is the caller's)."""
        done = self.roller.finish(wait=True)
        if done is not None:
            self.offsets.rolled(done)
        if self._unrolled:
            self._start_roll()
            self.offsets.rolled(self.roller.finish(wait=True))

    def lost(self, partitions) -> None:
        """Partitions gone without a chance to commit (another consumer owns them already): forget."""
        log.warning("partitions lost: %s", sorted(tp.partition for tp in partitions))
        self._forget()
        self.offsets.drop(partitions)
        self._rewind = {}

    def assigned(self, partitions) -> None:
        log.info("partitions assigned: %s", sorted(tp.partition for tp in partitions))
        self._count_rebalance("assigned")
        self._forget()
        self._rewind = {tp: o for tp, o in self._rewind.items() if tp in partitions}
        if partitions:
            self.consumer.pause(*partitions)
            self._taken_over |= set(partitions)

    def _take_over(self) -> None:
        """In the main thread after an assignment: where each partition starts (the fetch position: the
        group's commit for a new one, the current position for one kept), archive files from there removed."""
        assigned = self.consumer.assignment()
        partitions = [tp for tp in self._taken_over if tp in assigned]
        self._taken_over = set()
        for tp in partitions:
            if tp in self._rewind:
                self.consumer.seek(tp, self._rewind.pop(tp))
            start = self.consumer.position(tp)
            self.offsets.start(tp, start, self.consumer.committed(tp))
            removed = self.archive.discard_from(tp.partition, start) if self.archive is not None else []
            if removed:
                log.info("partition %s: removed %d archive file(s) of an uncommitted roll from offset %d",
                         tp.partition, len(removed), start)
        self.consumer.resume(*partitions)


def listener(owner: Rebalancing):
    from kafka import AsyncConsumerRebalanceListener

    class Listener(AsyncConsumerRebalanceListener):
        async def on_partitions_revoked(self, revoked):
            await owner.revoked(revoked)

        async def on_partitions_lost(self, lost):
            owner.lost(lost)

        async def on_partitions_assigned(self, assigned):
            owner.assigned(assigned)

    return Listener()
