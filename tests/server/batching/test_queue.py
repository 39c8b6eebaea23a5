"""server.batching.queue.RequestQueue (and pending.merge_key): ordering, bounds and batch selection."""

from __future__ import annotations

import numpy as np
import pytest

from server.batching.pending import merge_key
from server.batching.queue import RequestQueue
from server.errors import ResourceExhaustedError
from tests.server.batching.conftest import MakeRequest
from tests.server.batching.support import rows


def queue(max_size: int = 0, levels: int = 1) -> RequestQueue:
    return RequestQueue(max_size=max_size, priority_levels=levels, label="resnet:3")


def test_merge_key_ignores_batch_rows_but_not_dtype_inner_dims_or_outputs() -> None:
    key = merge_key({"x": rows(1.0)}, ("y",))
    assert merge_key({"x": rows(1.0, 2.0, 3.0)}, ("y",)) == key
    assert merge_key({"x": rows(1.0, width=5)}, ("y",)) != key
    assert merge_key({"x": rows(1.0).astype(np.float64)}, ("y",)) != key
    assert merge_key({"x": rows(1.0)}, ("y", "z")) != key
    assert merge_key({"x": rows(1.0), "z": rows(1.0)}, ("y",)) == merge_key({"z": rows(1.0), "x": rows(1.0)}, ("y",))


async def test_fifo_within_a_level(make_request: MakeRequest) -> None:
    q = queue()
    requests = [make_request() for _ in range(5)]
    for request in requests:
        q.put(request)
    taken = [q.take_batch(max_rows=1, merge=True) for _ in requests]
    assert taken == [[request] for request in requests]
    assert len(q) == 0
    assert q.take_batch(max_rows=1, merge=True) == []


async def test_priority_one_is_served_before_two_regardless_of_arrival(make_request: MakeRequest) -> None:
    q = queue(levels=3)
    low, mid, high, high_later = (make_request(priority=p) for p in (3, 2, 1, 1))
    for request in (low, mid, high, high_later):
        q.put(request)
    order = [q.take_batch(max_rows=1, merge=False)[0] for _ in range(4)]
    assert order == [high, high_later, mid, low]


async def test_full_queue_rejects_naming_model_and_limit(make_request: MakeRequest) -> None:
    q = queue(max_size=2)
    q.put(make_request())
    q.put(make_request())
    with pytest.raises(ResourceExhaustedError, match=r"resnet:3.*\b2 requests") as caught:
        q.put(make_request())
    assert "max_queue_size" in str(caught.value)
    assert len(q) == 2
    q.take_batch(max_rows=1, merge=True)
    q.put(make_request())  # room again once one left
    assert len(q) == 2


async def test_max_size_zero_is_unbounded(make_request: MakeRequest) -> None:
    q = queue(max_size=0)
    for _ in range(3000):
        q.put(make_request())
    assert len(q) == 3000


async def test_take_batch_groups_equal_keys_and_leaves_others_queued_in_order(make_request: MakeRequest) -> None:
    q = queue()
    a1, b1, a2, c1, b2, a3 = (
        make_request({"x": rows(1.0, width=w)}) for w in (3, 5, 3, 7, 5, 3)
    )  # a: width 3, b: width 5, c: width 7
    for request in (a1, b1, a2, c1, b2, a3):
        q.put(request)
    assert q.take_batch(max_rows=10, merge=True) == [a1, a2, a3]
    assert len(q) == 3
    assert q.take_batch(max_rows=10, merge=True) == [b1, b2]
    assert q.take_batch(max_rows=10, merge=True) == [c1]
    assert len(q) == 0


async def test_take_batch_respects_max_rows_and_stops_at_first_compatible_misfit(make_request: MakeRequest) -> None:
    q = queue()
    two, three, one, also_one = (make_request({"x": rows(*([0.0] * n))}) for n in (2, 3, 1, 1))
    for request in (two, three, one, also_one):
        q.put(request)
    # `three` does not fit next to `two` (max 4): the batch ends there, `one` does not jump ahead of it.
    assert q.take_batch(max_rows=4, merge=True) == [two]
    assert len(q) == 3
    # ...and `three` heads the next batch, which the later small ones fill up.
    assert q.take_batch(max_rows=4, merge=True) == [three, one]
    assert q.take_batch(max_rows=4, merge=True) == [also_one]


async def test_misfit_keeps_incompatible_requests_in_place(make_request: MakeRequest) -> None:
    q = queue()
    a_big = make_request({"x": rows(0.0, 0.0, 0.0)})
    b = make_request({"x": rows(0.0, width=5)})
    a_too_big = make_request({"x": rows(0.0, 0.0)})
    c = make_request({"x": rows(0.0, width=7)})
    for request in (a_big, b, a_too_big, c):
        q.put(request)
    assert q.take_batch(max_rows=4, merge=True) == [a_big]
    assert [q.take_batch(max_rows=4, merge=True) for _ in range(3)] == [[b], [a_too_big], [c]]


async def test_a_head_larger_than_max_rows_is_taken_alone(make_request: MakeRequest) -> None:
    q = queue()
    big, small = make_request({"x": rows(*([0.0] * 6))}), make_request()
    q.put(big)
    q.put(small)
    assert q.take_batch(max_rows=4, merge=True) == [big]
    assert q.take_batch(max_rows=4, merge=True) == [small]


async def test_take_batch_fills_from_lower_priority_levels_after_the_head_level(make_request: MakeRequest) -> None:
    q = queue(levels=2)
    low1, high1, low2, high2 = (make_request(priority=p) for p in (2, 1, 2, 1))
    for request in (low1, high1, low2, high2):
        q.put(request)
    assert q.take_batch(max_rows=3, merge=True) == [high1, high2, low1]
    assert q.take_batch(max_rows=3, merge=True) == [low2]


async def test_merge_false_gives_single_request_batches(make_request: MakeRequest) -> None:
    q = queue(levels=2)
    requests = [make_request(priority=p) for p in (2, 1, 1, 2)]
    for request in requests:
        q.put(request)
    batches = [q.take_batch(max_rows=32, merge=False) for _ in range(4)]
    assert batches == [[requests[1]], [requests[2]], [requests[0]], [requests[3]]]
    assert len(q) == 0


async def test_done_requests_are_skipped_and_counted_out(make_request: MakeRequest) -> None:
    q = queue()
    first, cancelled, expired, last = (make_request() for _ in range(4))
    for request in (first, cancelled, expired, last):
        q.put(request)
    cancelled.future.cancel()
    expired.future.set_exception(TimeoutError())
    expired.future.exception()  # retrieved, so the loop does not warn about it
    assert q.take_batch(max_rows=8, merge=True) == [first, last]
    assert len(q) == 0
    q.discard(cancelled)  # the batcher's later discard of an already-skipped request is harmless
    assert len(q) == 0


async def test_a_done_head_does_not_choose_the_batch(make_request: MakeRequest) -> None:
    """A cancelled head must not decide which key the batch takes: the oldest live request heads it."""
    q = queue()
    gone = make_request({"x": rows(1.0, width=3)})
    older = make_request({"x": rows(2.0, width=5)})
    younger = make_request({"x": rows(3.0, width=3)})
    for request in (gone, older, younger):
        q.put(request)
    gone.future.cancel()
    assert q.take_batch(max_rows=8, merge=True) == [older]
    assert q.take_batch(max_rows=8, merge=True) == [younger]
    assert len(q) == 0


async def test_discard(make_request: MakeRequest) -> None:
    q = queue(max_size=2, levels=2)
    keep, drop = make_request(priority=2), make_request(priority=1)
    q.put(keep)
    q.put(drop)
    q.discard(drop)
    assert len(q) == 1
    q.discard(drop)  # twice: no effect
    q.discard(make_request())  # never queued: no effect
    assert len(q) == 1
    again = make_request()
    q.put(again)  # the freed slot is usable
    assert q.take_all() == [again, keep]


async def test_discard_after_take_is_a_no_op(make_request: MakeRequest) -> None:
    q = queue()
    taken, waiting = make_request(), make_request()
    q.put(taken)
    q.put(waiting)
    assert q.take_batch(max_rows=1, merge=True) == [taken]
    q.discard(taken)
    assert len(q) == 1
    assert q.take_batch(max_rows=1, merge=True) == [waiting]


async def test_take_all_empties_every_level(make_request: MakeRequest) -> None:
    q = queue(levels=3)
    requests = [make_request(priority=p) for p in (3, 1, 2, 1)]
    for request in requests:
        q.put(request)
    everything = q.take_all()
    assert everything == [requests[1], requests[3], requests[2], requests[0]]
    assert len(q) == 0
    assert q.take_all() == []
    assert q.take_batch(max_rows=8, merge=True) == []
    assert q.oldest_enqueued_ns() is None


async def test_queued_batch_size_counts_rows_compatible_with_the_head(make_request: MakeRequest) -> None:
    q = queue(levels=2)
    assert q.queued_batch_size() == 0
    q.put(make_request({"x": rows(0.0, 0.0)}, priority=2))
    q.put(make_request({"x": rows(0.0, width=5)}, priority=1))  # the head: width 5
    q.put(make_request({"x": rows(0.0, 0.0, 0.0, width=5)}, priority=2))
    assert q.queued_batch_size() == 4
    q.take_batch(max_rows=8, merge=True)
    assert q.queued_batch_size() == 2


async def test_oldest_enqueued_ns_is_the_heads(make_request: MakeRequest) -> None:
    q = queue(levels=2)
    assert q.oldest_enqueued_ns() is None
    early_low, later_high = make_request(priority=2), make_request(priority=1)
    q.put(early_low)
    assert q.oldest_enqueued_ns() == early_low.enqueued_ns
    q.put(later_high)
    assert q.oldest_enqueued_ns() == later_high.enqueued_ns  # the head of the best level
    q.take_batch(max_rows=1, merge=True)
    assert q.oldest_enqueued_ns() == early_low.enqueued_ns
