"""The batcher's queue in C++ behaves exactly like server/batching/queue.py: one specification, two implementations.

Random sequences of puts, discards and batch takes run on both; every answer must match (refusals, discards,
which requests form each batch and in what order, the rows waiting for the head's batch, the size).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from types import ModuleType

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from server.batching.pending import PendingRequest
from server.batching.queue import RequestQueue
from server.errors import ResourceExhaustedError

LEVELS = 2
Operation = tuple[str, int, int, int]

puts = st.tuples(st.just("put"), st.integers(1, LEVELS), st.integers(1, 4), st.integers(0, 1))  # priority, rows, key
discards = st.tuples(st.just("discard"), st.integers(0, 60), st.just(0), st.just(0))  # which request put so far
takes = st.tuples(st.just("take"), st.integers(1, 6), st.integers(0, 1), st.just(0))  # max rows, merge
# Three puts for each discard and take, so that queues grow deep enough for batches to have choices.
operations = st.lists(st.one_of(puts, puts, puts, discards, takes), max_size=60)


@pytest.fixture(scope="module")
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    created = asyncio.new_event_loop()
    yield created
    created.close()


@settings(max_examples=500, deadline=None, database=None)
@given(max_size=st.integers(0, 12), steps=operations)
# A compatible request that does not fit ends the batch, though a smaller one behind it would fit.
@example(max_size=0, steps=[("put", 1, 3, 0), ("put", 1, 2, 0), ("put", 1, 1, 0), ("take", 4, 1, 0)])
def test_the_native_queue_answers_like_the_python_queue(
    native: ModuleType, loop: asyncio.AbstractEventLoop, max_size: int, steps: list[Operation]
) -> None:
    python_queue = RequestQueue(max_size, LEVELS, "m:1")
    native_queue = native.RequestQueue(max_size, LEVELS)
    requests: list[PendingRequest] = []
    for kind, first, second, third in steps:
        if kind == "put":
            request = PendingRequest(
                inputs={}, output_names=(), batch_size=second, priority=first, enqueued_ns=len(requests),
                deadline=None, future=loop.create_future(), merge_key=(third,),
            )  # fmt: skip
            try:
                python_queue.put(request)
                accepted = True
            except ResourceExhaustedError:
                accepted = False
            assert native_queue.put(len(requests), first, second, third) is accepted
            requests.append(request)
        elif kind == "discard" and requests:
            index = first % len(requests)
            request = requests[index]
            assert native_queue.discard(index, request.priority) is python_queue.discard(request)
        elif kind == "take":
            expected = [requests.index(request) for request in python_queue.take_batch(first, bool(second))]
            assert native_queue.take_batch(first, bool(second)) == expected
        assert native_queue.queued_batch_size() == python_queue.queued_batch_size()
        assert len(native_queue) == len(python_queue)


def test_a_full_queue_refuses_and_a_request_larger_than_a_batch_goes_alone(native: ModuleType) -> None:
    queue = native.RequestQueue(2, 1)
    assert queue.put(1, 1, 10, 7) and queue.put(2, 1, 1, 7)
    assert not queue.put(3, 1, 1, 7)
    assert queue.take_batch(4, True) == [1]  # 10 rows > 4: alone
    assert queue.take_batch(4, True) == [2]
    assert len(queue) == 0 and queue.take_batch(4, True) == []
