"""Tiles coded on several CPU cores at once: a shared thread pool for work that releases the GIL.

Numba kernels compiled with ``nogil=True`` and large numpy operations run truly in parallel in threads,
with no process start-up nor pickling. Every tile is coded independently of the others and results come
back in input order, so the bytes and samples never depend on the number of threads.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from engine.errors import InputError

THREADS_ENV = "HSIC_THREADS"

T = TypeVar("T")
R = TypeVar("R")

_pool: ThreadPoolExecutor | None = None
_pool_size = 0
_pool_lock = threading.Lock()
_in_worker = threading.local()


def env_count(name: str, what: str) -> int | None:
    """The whole number (at least 1) of ``what`` that environment variable ``name`` gives, None when it is
    unset; InputError, in one line, for anything else."""
    env = os.environ.get(name, "").strip()
    if not env:
        return None
    try:
        n = int(env)
    except ValueError:
        n = 0
    if n < 1:
        raise InputError(f"{name}={env!r}: give a whole number of {what}, at least 1")
    return n


def threads() -> int:
    """Worker threads: ``HSIC_THREADS`` when set, else the CPU cores this process may run on."""
    n = env_count(THREADS_ENV, "threads")
    if n is not None:
        return n
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def _executor(n: int) -> ThreadPoolExecutor:
    global _pool, _pool_size
    with _pool_lock:
        if _pool is None or _pool_size != n:
            _pool, _pool_size = ThreadPoolExecutor(n, thread_name_prefix="hsic"), n
        return _pool


def _run(fn: Callable[[T], R], item: T) -> R:
    _in_worker.active = True
    try:
        return fn(item)
    finally:
        _in_worker.active = False


def thread_map(fn: Callable[[T], R], items: Iterable[T]) -> list[R]:
    """[fn(x) for x in items], spread over the worker threads; serial for one item, one thread, or when
    already inside a worker (no nested pools waiting on themselves)."""
    items = list(items)
    n = threads()
    if len(items) < 2 or n < 2 or getattr(_in_worker, "active", False):
        return [fn(x) for x in items]
    return list(_executor(n).map(_run, [fn] * len(items), items))
