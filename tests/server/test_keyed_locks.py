"""server.keyed_locks.KeyedLocks: one lock per key, and no entry left once nobody holds or waits."""

from __future__ import annotations

import asyncio

import pytest

from server.keyed_locks import KeyedLocks


async def test_an_entry_lives_only_while_the_key_is_held() -> None:
    locks = KeyedLocks()
    async with locks.hold("a"):
        assert len(locks) == 1
    assert len(locks) == 0


async def test_distinct_keys_leave_nothing_behind() -> None:
    locks = KeyedLocks()
    for index in range(1_000):
        async with locks.hold(f"name-{index}"):
            pass
    assert len(locks) == 0


async def test_one_key_is_held_by_one_task_at_a_time_in_arrival_order() -> None:
    locks = KeyedLocks()
    order: list[str] = []
    inside = 0

    async def use(label: str) -> None:
        nonlocal inside
        async with locks.hold("model"):
            inside += 1
            assert inside == 1
            order.append(label)
            await asyncio.sleep(0)
            inside -= 1

    await asyncio.gather(*(use(str(i)) for i in range(5)))
    assert order == ["0", "1", "2", "3", "4"]
    assert len(locks) == 0


async def test_other_keys_do_not_wait() -> None:
    locks = KeyedLocks()
    async with locks.hold("a"):
        await asyncio.wait_for(_enter_and_leave(locks, "b"), timeout=1.0)


async def test_a_cancelled_waiter_leaves_no_entry() -> None:
    locks = KeyedLocks()
    entered = asyncio.Event()
    release = asyncio.Event()

    async def holder() -> None:
        async with locks.hold("a"):
            entered.set()
            await release.wait()

    holding = asyncio.create_task(holder())
    await entered.wait()
    waiter = asyncio.create_task(_enter_and_leave(locks, "a"))
    await asyncio.sleep(0)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    release.set()
    await holding
    assert len(locks) == 0


async def test_an_error_in_the_body_releases_the_key() -> None:
    locks = KeyedLocks()
    with pytest.raises(ValueError, match="boom"):
        async with locks.hold("a"):
            raise ValueError("boom")
    assert len(locks) == 0
    await asyncio.wait_for(_enter_and_leave(locks, "a"), timeout=1.0)


async def _enter_and_leave(locks: KeyedLocks, key: str) -> None:
    async with locks.hold(key):
        pass
