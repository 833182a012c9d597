"""prefetch: order, early stop of the consumer, errors re-raised, bad depth."""

from __future__ import annotations

import threading
import time

import pytest

from dforce_train import prefetch


def test_prefetch_keeps_order_and_runs_ahead():
    made = []

    def items():
        for i in range(10):
            made.append(i)
            yield i

    out = prefetch(items(), depth=3)
    assert next(out) == 0
    time.sleep(0.2)
    assert 2 <= len(made) <= 5  # the worker built a few ahead, bounded by depth
    assert [0, *list(out)] == list(range(10))


def test_prefetch_reraises_errors_after_the_good_items():
    def items():
        yield 1
        raise RuntimeError("broken shard")

    out = prefetch(items())
    assert next(out) == 1
    with pytest.raises(RuntimeError, match="broken shard"):
        next(out)


def test_prefetch_worker_stops_when_the_consumer_leaves():
    def endless():
        i = 0
        while True:
            yield i
            i += 1

    before = threading.active_count()
    out = prefetch(endless(), depth=2)
    assert [next(out) for _ in range(5)] == [0, 1, 2, 3, 4]
    out.close()
    deadline = time.time() + 2.0
    while threading.active_count() > before and time.time() < deadline:
        time.sleep(0.05)
    assert threading.active_count() == before


def test_prefetch_rejects_bad_depth():
    with pytest.raises(ValueError, match="depth"):
        list(prefetch([1], depth=0))
