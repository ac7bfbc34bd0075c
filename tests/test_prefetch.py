"""The decode-ahead thread: same items in the same order, errors where they happened,
nothing left running after an early stop."""

from __future__ import annotations

import threading

import pytest

from delcli.io.prefetch import in_background, prefetched


def test_items_arrive_in_order_and_are_made_in_another_thread():
    makers = set()

    def produce():
        for i in range(50):
            makers.add(threading.current_thread().name)
            yield i

    assert list(prefetched(produce, depth=3)) == list(range(50))
    assert makers == {"delcli-prefetch"}


def test_an_error_in_the_producer_is_raised_after_the_items_before_it():
    def produce():
        yield 1
        yield 2
        raise ValueError("truncated at 2")

    seen = []
    with pytest.raises(ValueError, match="truncated at 2"):
        for item in prefetched(produce):
            seen.append(item)
    assert seen == [1, 2]


def test_stopping_early_closes_the_producer_and_ends_its_thread():
    closed = threading.Event()

    def produce():
        try:
            yield from range(10_000)
        finally:
            closed.set()

    before = threading.active_count()
    for item in prefetched(produce, depth=2):
        if item == 3:
            break
    assert closed.is_set()
    assert threading.active_count() == before


def test_in_background_returns_the_value_or_raises_the_error():
    assert in_background(lambda: 6 * 7).result() == 42
    with pytest.raises(ZeroDivisionError):
        in_background(lambda: 1 / 0).result()
