"""Overlap decoding with the work done on what was decoded.

FFmpeg decodes and scales without holding Python's GIL, and numpy's reductions
over whole batches release it too, so a producer thread that decodes the next
batch while the caller computes on this one keeps two cores busy where a plain
loop keeps one and a half.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from typing import TypeVar

T = TypeVar("T")
_END = object()


def prefetched(produce: Callable[[], Iterator[T]], depth: int = 2) -> Iterator[T]:
    """Items of `produce()`, made by a background thread at most `depth` items ahead.

    The iterator is created and advanced only in that thread (a PyAV container
    stays in one thread). An exception there is raised here, at the item where it
    happened. Stopping early (break, an exception in the caller) stops the producer
    and closes its iterator before this generator returns.
    """
    items: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def offer(item: object) -> bool:
        while not stop.is_set():
            try:
                items.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def run() -> None:
        iterator = None
        try:
            iterator = produce()
            for item in iterator:
                if not offer(item):
                    return
            offer(_END)
        except BaseException as error:  # handed to the consumer, raised there
            offer(_Failure(error))
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                close()

    worker = threading.Thread(target=run, name="delcli-prefetch", daemon=True)
    worker.start()
    try:
        while True:
            item = items.get()
            if item is _END:
                return
            if isinstance(item, _Failure):
                raise item.error
            yield item
    finally:
        stop.set()
        worker.join()


def in_background(function: Callable[[], T]) -> Future[T]:
    """`function()` started in a daemon thread; `.result()` returns it or raises its error."""
    future: Future[T] = Future()

    def run() -> None:
        try:
            future.set_result(function())
        except BaseException as error:
            future.set_exception(error)

    threading.Thread(target=run, name="delcli-background", daemon=True).start()
    return future


class _Failure:
    def __init__(self, error: BaseException) -> None:
        self.error = error
