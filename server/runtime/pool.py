"""Worker threads that run blocking calls (ONNX Runtime sessions) for the event loop.

A leaner hand-off than ThreadPoolExecutor with `loop.run_in_executor`: a job is one item on a
SimpleQueue and its result returns with one `call_soon_threadsafe`, with no concurrent.futures
Future (lock and condition) and no chaining of two futures. That saved about 27,000 CPU
instructions per batch (callgrind, in process, batches of 4), most of them in Python code that
holds the GIL the event loop needs.

Isolation between models: every loaded instance (session) reserves a thread, so the pool always has
at least as many threads as sessions. An execution holds its session while it runs, so no more jobs
than sessions are ever submitted, and a job never waits for a thread behind another model's
executions: a model whose batches take seconds cannot delay a light model's next batch by one of
them (a fixed pool of cores + 4 threads did, once a busy model had that many instances). How the
cores are shared among the running threads is then the operating system's business.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from server.runtime.priority import lower_this_thread

T = TypeVar("T")

_Job = tuple[asyncio.AbstractEventLoop, "asyncio.Future[Any]", Callable[..., Any], tuple[Any, ...]]


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.cancelled():  # the caller went away; the work was done anyway
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


def _deliver(
    loop: asyncio.AbstractEventLoop, future: asyncio.Future[Any], result: Any, error: BaseException | None
) -> None:
    # A plain try, not contextlib.suppress: this runs once per batch, and suppress builds a context manager.
    try:  # noqa: SIM105
        loop.call_soon_threadsafe(_settle, future, result, error)
    except RuntimeError:  # the loop closed while the job ran: nobody awaits it, and the thread must live on
        pass


class InferencePool:
    """At least `threads` worker threads shared by every model, and one per reserved instance beyond that.

    Threads start with the first job; `reserve` and `release` grow and shrink the pool as versions load
    and unload (a surplus thread leaves after the jobs queued before its release).
    """

    def __init__(self, threads: int, name: str = "infer", nice: int = 0) -> None:
        """`nice`: how many nice steps the threads lower themselves by (server.runtime.priority)."""
        if threads < 1:
            raise ValueError("an inference pool needs at least one thread")
        self._minimum = threads
        self._reserved = 0
        self._name = name
        self._nice = nice
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._staying = 0
        """Threads that will still be running once every stop sentinel already queued has been taken."""
        self._started = 0
        self._resizing = threading.Lock()
        self._closed = False

    @property
    def size(self) -> int:
        """How many threads the pool runs (or will run, once started)."""
        return max(self._minimum, self._reserved)

    def reserve(self, instances: int) -> None:
        """Keep a thread for each of `instances` more sessions (a version was loaded)."""
        with self._resizing:
            self._reserved += instances
            self._resize()

    def release(self, instances: int) -> None:
        """Give back what `reserve(instances)` took (the version was unloaded)."""
        with self._resizing:
            self._reserved = max(0, self._reserved - instances)
            self._resize()

    def submit(self, function: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        """Run `function(*args)` on a worker thread; await the returned future on the calling loop."""
        if self._closed:
            raise RuntimeError("the inference pool is shut down")
        if not self._threads:
            with self._resizing:
                self._resize(start=True)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._jobs.put((loop, future, function, args))
        return future

    def _resize(self, start: bool = False) -> None:
        """Start or stop threads until `size` stay (only once started). Call with `_resizing` held."""
        if self._closed or not (start or self._threads):
            return
        self._threads = [thread for thread in self._threads if thread.is_alive()]
        while self._staying < self.size:
            thread = threading.Thread(target=self._work, name=f"{self._name}_{self._started}", daemon=True)
            self._started += 1
            thread.start()
            self._threads.append(thread)
            self._staying += 1
        while self._staying > self.size:
            self._jobs.put(None)  # whichever thread takes it leaves
            self._staying -= 1

    def _work(self) -> None:
        lower_this_thread(self._nice)
        while (job := self._jobs.get()) is not None:
            loop, future, function, args = job
            try:
                result = function(*args)
            except BaseException as error:  # delivered to the awaiting coroutine, like run_in_executor
                _deliver(loop, future, None, error)
            else:
                _deliver(loop, future, result, None)
            # An idle thread would otherwise keep its last job's inputs and outputs alive until its next job:
            # with large requests, several idle threads held hundreds of MB that never came back.
            del job, loop, future, function, args
            result = None

    def shutdown(self) -> None:
        """Let queued jobs finish, then stop the threads (blocking; call once nothing submits any more)."""
        with self._resizing:
            self._closed = True
            for _ in range(self._staying):
                self._jobs.put(None)
            self._staying = 0
            threads, self._threads = self._threads, []
        for thread in threads:
            thread.join()
