"""A bounded priority queue of pending requests that hands out compatible batches.

It only queues and selects: it never runs anything and never sleeps. FIFO within
a priority level; the oldest request of the best level always heads the next
batch, so no request starves behind later, better-fitting ones.
"""

from __future__ import annotations

from collections import deque

from server.batching.pending import PendingRequest
from server.errors import ResourceExhaustedError


class RequestQueue:
    def __init__(self, max_size: int, priority_levels: int, label: str) -> None:
        self._levels: list[deque[PendingRequest]] = [deque() for _ in range(priority_levels)]
        self._max_size = max_size
        self._label = label
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def put(self, request: PendingRequest) -> None:
        """Queue a request, or reject it at once when the queue is full."""
        if self._max_size and self._size >= self._max_size:
            raise ResourceExhaustedError(
                f"the queue of model {self._label} is full ({self._max_size} requests waiting; "
                "max_queue_size in config.toml [batching]); retry later or add instances"
            )
        self._levels[request.priority - 1].append(request)
        self._size += 1

    def discard(self, request: PendingRequest) -> bool:
        """Forget a queued request; False when it is no longer queued (already taken into a batch)."""
        level = self._levels[request.priority - 1]
        try:
            level.remove(request)
        except ValueError:
            return False
        self._size -= 1
        return True

    def take_all(self) -> list[PendingRequest]:
        """Remove and return everything queued (when shutting down)."""
        everything = [request for level in self._levels for request in level]
        for level in self._levels:
            level.clear()
        self._size = 0
        return everything

    def queued_batch_size(self) -> int:
        """Rows waiting that could join a batch with the current head."""
        head = self._head()
        if head is None:
            return 0
        return sum(r.batch_size for level in self._levels for r in level if r.merge_key == head.merge_key)

    def oldest_enqueued_ns(self) -> int | None:
        head = self._head()
        return None if head is None else head.enqueued_ns

    def _head(self) -> PendingRequest | None:
        """The oldest live request of the best level; finished ones at the front are dropped first."""
        for level in self._levels:
            while level and level[0].done:
                level.popleft()
                self._size -= 1
            if level:
                return level[0]
        return None

    def take_batch(self, max_rows: int, merge: bool) -> list[PendingRequest]:
        """Remove and return the head plus compatible requests, in priority order, up to `max_rows` rows.

        With `merge` false every batch is a single request.
        """
        head = self._head()
        if head is None:
            return []
        batch: list[PendingRequest] = []
        rows = 0
        for level in self._levels:
            kept: deque[PendingRequest] = deque()
            while level and rows < max_rows and (merge or not batch):
                request = level.popleft()
                if request.done:  # cancelled or expired, and not yet discarded
                    self._size -= 1
                    continue
                fits = rows + request.batch_size <= max_rows or not batch
                wanted = request.merge_key == head.merge_key and (merge or not batch)
                if wanted and fits:
                    batch.append(request)
                    rows += request.batch_size
                elif wanted:
                    # The next compatible request does not fit: stop here so it heads the next batch.
                    level.appendleft(request)
                    break
                else:
                    kept.append(request)
            level.extendleft(reversed(kept))
            if rows >= max_rows or (batch and not merge):
                break
        self._size -= len(batch)
        return batch
