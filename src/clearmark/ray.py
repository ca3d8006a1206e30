"""clearmark on Ray: a stateful actor for Ray Data, and folder jobs run over a Ray cluster.

``Cleaner`` is :class:`clearmark.BatchCleaner` made for ``Dataset.map_batches``: Ray creates
it once per actor and feeds it numpy batches::

    ds.map_batches(clearmark.ray.Cleaner, compute=ray.data.ActorPoolStrategy(size=2),
                   batch_size=16, fn_constructor_kwargs={"column": "image"})

:func:`run` is the Ray engine of ``clearmark clean``/``detect``: the same picklable task as the
local process pool (``clearmark._pipeline.run``), run by actors over Ray Data, yielding the
same records in the same (input) order, so journal, resume and report do not know which
engine ran. Its failure policy:

- a task's own failure (unreadable file...) is already a record (the task catches it);
- an actor that dies (segfault, OOM killer) is restarted by Ray and its batch retried, so the
  other files of that batch are not lost; a file that was being processed when its worker died
  twice gets a ``failed`` record instead of a third try (a shared ledger actor counts starts);
- a file Ray could not give back at all still gets a ``failed`` record. Nothing is dropped.

On a real cluster (``address=...``) SRC and DST must be at the same path on every node (a
shared file system): workers read and write the files themselves, and records name paths as
the driver gave them.

This module needs the ``ray`` extra: ``pip install 'clearmark[ray]'``.
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from itertools import islice
from pathlib import Path, PurePosixPath
from typing import Any

try:
    import ray
    import ray.data
except ImportError:
    raise ImportError("clearmark.ray needs Ray: pip install 'clearmark[ray]'") from None

import cv2

from ._batch import BatchCleaner
from ._pipeline import Input, Record

__all__ = ["Cleaner", "run"]

Task = Callable[[Input], Record]

ATTEMPTS = 2  # a file whose worker died this many times while on it is recorded as failed
_DIED = "worker process died while processing it"
_LOST = "lost by the Ray job (no result came back)"


class Cleaner(BatchCleaner):
    """:class:`clearmark.BatchCleaner` as a Ray Data actor (pass the class to ``map_batches``).

    Inside an actor, OpenCV is limited to the actor's CPUs: Ray already runs one actor per
    CPU, and OpenCV's own thread pool would oversubscribe the node.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        _limit_threads()


def run(task: Task, items: Iterable[Input], *, address: str | None = None,
        workers: int | None = None, batch_size: int = 8,
        chunk_size: int = 4096) -> Iterator[Record]:
    """Run ``task`` (a ``CleanTask`` or ``DetectTask``) on every item over Ray Data.

    Yields one record per item, in input order, like ``clearmark._pipeline.run``. Items are
    consumed ``chunk_size`` at a time, so a folder of millions is never listed in memory
    whole. ``address`` is Ray's: ``None`` joins ``RAY_ADDRESS`` or a running local cluster,
    else starts a local one; ``"ray://host:10001"`` or ``"host:6379"`` joins that cluster.
    When Ray is already initialised in this process, that connection is used. ``workers``
    is the number of actors, one CPU each (default, and at most: the cluster's CPUs, since a
    pool that cannot be placed would wait forever).
    """
    if batch_size < 1 or chunk_size < 1 or (workers is not None and workers < 1):
        raise ValueError("workers, batch_size and chunk_size must be positive")
    with _connected(address):
        cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
        size = min(workers or cpus, cpus)
        ledger = _Ledger.remote()  # type: ignore[attr-defined]
        try:
            iterator, offset = iter(items), 0
            while chunk := list(islice(iterator, chunk_size)):
                yield from _run_chunk(task, chunk, offset, ledger, size, batch_size)
                offset += len(chunk)
        finally:
            ray.kill(ledger)


def _run_chunk(task: Task, chunk: list[Input], offset: int, ledger: Any, workers: int,
               batch_size: int) -> Iterator[Record]:
    """One Ray Data pass over a chunk, records put back in input order as they arrive."""
    # names as bytes: Arrow strings must be UTF-8, file names need not be
    rows = [{"index": offset + i, "path": os.fsencode(item.path), "rel": os.fsencode(item.rel)}
            for i, item in enumerate(chunk)]
    dataset = ray.data.from_items(rows).map_batches(
        _RecordWorker, batch_size=batch_size, num_cpus=1,
        compute=ray.data.ActorPoolStrategy(size=min(workers, len(chunk))),
        fn_constructor_kwargs={"task": task, "ledger": ledger, "cwd": os.getcwd()})
    _quiet(dataset.context)
    waiting: dict[int, Record] = {}
    position = 0
    for row in dataset.iter_rows():
        waiting[int(row["index"]) - offset] = json.loads(row["record"])
        while position in waiting:
            yield waiting.pop(position)
            position += 1
    for missing in range(position, len(chunk)):  # holes Ray could not fill
        found = waiting.pop(missing, None)
        yield found if found is not None else _failed(task, chunk[missing], _LOST)


class _RecordWorker:
    """The actor behind :func:`run`: builds the task's inputs back and runs the task.

    Hook for folder evidence at scale: a per-group estimate (the shared mark of each folder)
    made once by the driver would arrive here as ``evidence`` (``ray.put`` once, passed in
    ``fn_constructor_kwargs``: one copy per node from the object store, never recomputed per
    worker) and be handed to the task. Today the task carries its own ``marks`` store (a
    folder under DST), which workers read from the shared file system, so nothing is passed.
    """

    def __init__(self, task: Task, ledger: Any, cwd: str, evidence: Any = None) -> None:
        _limit_threads()
        self.task, self.ledger, self.evidence = task, ledger, evidence
        _follow_driver(cwd)

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        records = [self._record(int(index), _input(path, rel))
                   for index, path, rel in zip(batch["index"], batch["path"], batch["rel"],
                                               strict=True)]
        return {"index": batch["index"], "record": [json.dumps(r) for r in records]}

    def _record(self, index: int, item: Input) -> Record:
        if ray.get(self.ledger.start.remote(index)) >= ATTEMPTS:
            return _failed(self.task, item, _DIED)
        record = self.task(item)
        self.ledger.finish.remote(index)
        return record


@ray.remote(num_cpus=0)
class _Ledger:
    """How often each file was started and not finished: the deaths it may have caused.

    An actor outlives the workers it counts for; finished files are forgotten, so its size is
    bounded by the files in flight plus the poison ones.
    """

    def __init__(self) -> None:
        self.started: dict[int, int] = {}

    def start(self, index: int) -> int:
        """Count one start; return how many starts came before this one."""
        before = self.started.get(index, 0)
        self.started[index] = before + 1
        return before

    def finish(self, index: int) -> None:
        self.started.pop(index, None)


def _input(path: bytes, rel: bytes) -> Input:
    return Input(Path(os.fsdecode(path)), PurePosixPath(os.fsdecode(rel)))


def _failed(task: Task, item: Input, reason: str) -> Record:
    """The task's own blank record, marked failed, like the local engine's."""
    blank = getattr(task, "failure_record", None)
    record: Record = blank(item) if blank else {"path": str(item.path)}
    record["error"] = f"{item.path}: {reason}"
    return record


def _limit_threads() -> None:
    """Inside a Ray actor, let OpenCV use only the CPUs Ray gave it (outside, change nothing)."""
    if not ray.is_initialized() or ray.get_runtime_context().get_actor_id() is None:
        return
    cpus = ray.get_runtime_context().get_assigned_resources().get("CPU", 1)
    cv2.setNumThreads(max(1, int(cpus)))


def _follow_driver(cwd: str) -> None:
    """Work in the driver's folder, so relative paths mean what they meant there.

    The actor's process is its own; on a node without that folder, relative paths cannot
    resolve and those files come back as failed records (absolute paths work as they are).
    """
    with suppress(OSError):
        os.chdir(cwd)


def _quiet(context: Any) -> None:
    """This job's Ray Data settings: no progress bars or banners (the CLI draws its own), and
    no block error aborts the job (a missing result becomes a failed record instead)."""
    context.enable_progress_bars = False
    context.print_on_execution_start = False
    context.max_errored_blocks = -1
    context.execution_options.preserve_order = True  # fewer records held back for ordering


@contextmanager
def _connected(address: str | None) -> Iterator[None]:
    """Use this process's Ray connection, or open one for the job and close it after."""
    with warnings.catch_warnings():
        # Ray Data warns about its own deprecated settings when it makes its first context
        warnings.simplefilter("ignore", DeprecationWarning)
        ray.data.DataContext.get_current()
    with _ray_data_logs(logging.ERROR):
        if ray.is_initialized():
            yield
            return
        ray.init(address=address, include_dashboard=False, log_to_driver=False,
                 logging_level=logging.WARNING)
        try:
            yield
        finally:
            ray.shutdown()


@contextmanager
def _ray_data_logs(level: int) -> Iterator[None]:
    """Ray Data logs each execution's start, end and settings; the job's caller reports
    progress itself, so only Ray Data's errors are let through while the job runs."""
    logger = logging.getLogger("ray.data")
    before = logger.level
    logger.setLevel(level)
    try:
        yield
    finally:
        logger.setLevel(before)
