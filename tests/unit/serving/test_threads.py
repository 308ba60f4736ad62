"""FairLock: waiters get the lock in the order they asked for it, one at a time."""

from __future__ import annotations

import threading
import time

import pytest

from tradepipe.serving.threads import FairLock


def _wait_for(condition: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.001)


def test_waiters_get_the_lock_in_the_order_they_asked() -> None:
    lock, order, inside = FairLock(), [], []

    def take(k: int) -> None:
        with lock:
            inside.append(k)
            assert len(inside) == 1  # never two holders
            order.append(k)
            time.sleep(0.002)
            inside.pop()

    lock.acquire()
    threads = []
    for k in range(12):  # each queued before the next asks
        thread = threading.Thread(target=take, args=(k,))
        thread.start()
        _wait_for(lambda k=k: lock.waiting == k + 1)
        threads.append(thread)
    lock.release()
    for thread in threads:
        thread.join(timeout=10)
    assert order == list(range(12))
    assert lock.waiting == 0
    with lock:  # free again: taken at once
        pass


def test_a_lock_not_held_cannot_be_released() -> None:
    lock = FairLock()
    with pytest.raises(RuntimeError, match="unheld"):
        lock.release()


def test_a_release_hands_the_lock_to_the_waiter_before_its_holder_can_take_it_back() -> None:
    lock, order = FairLock(), []  # a threading.Lock is taken back at once by the thread that let it go

    def waiter() -> None:
        with lock:
            order.append("waiter")

    lock.acquire()
    thread = threading.Thread(target=waiter)
    thread.start()
    _wait_for(lambda: lock.waiting == 1)
    lock.release()
    with lock:
        order.append("holder again")
    thread.join(timeout=10)
    assert order == ["waiter", "holder again"]
