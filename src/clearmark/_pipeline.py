"""Folder jobs: find inputs, run one picklable task per file in a worker pool, yield records.

Every input ends as exactly one record (img2dataset's rule: per-item failures are data). A
record is a plain JSON-ready dict, so the same worker serves the CLI's process pool now and
other distributors later. The runner knows nothing of terminals: it yields records in input
order and the CLI draws progress.
"""

from __future__ import annotations

import json
import os
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field, replace
from functools import lru_cache
from multiprocessing import get_context
from pathlib import Path, PurePosixPath
from typing import Any

import cv2
import numpy as np

from ._detect import (
    DEFAULT_CONFIG,
    DetectorConfig,
    Finding,
    find,
    refine,
    with_marks,
    working_copy,
)
from ._errors import ClearmarkError
from ._folder import FolderMatte, Match, SharedMark, mark_mask, working_gray
from ._imageio import (
    IMAGE_SUFFIXES,
    LoadedImage,
    LoadLimits,
    copy_file_atomic,
    load_image,
    write_bytes_atomic,
    write_image,
)
from ._known import explains as matte_explains
from ._known import place as place_matte
from ._known import support as matte_support
from ._marks import (
    LOOK_AT,
    MarkStore,
    folder_key,
    load_mark,
    matte_fit,
    same_aspect,
    sample_for,
    settle,
)
from ._regions import Detection, Region
from ._remove import LocalRemover
from ._report import Thumbnailer

Record = dict[str, Any]

DONE = frozenset({"cleaned", "copied"})


@dataclass(frozen=True)
class Input:
    """One file found for a job: where it is, and its path relative to the folder named."""

    path: Path  # as given or found (relative paths stay relative)
    rel: PurePosixPath  # relative to the folder it was found in (its name for a file argument)
    in_folder: bool = False  # found in a folder named (folder evidence learns from those)


def find_inputs(paths: Iterable[str | os.PathLike[str]]) -> Iterator[Input]:
    """Files named directly, and every file under folders named (recursive, sorted)."""
    for given in paths:
        path = Path(given)
        if path.is_dir():
            for folder, dirs, files in os.walk(path):
                dirs.sort()
                for name in sorted(files):
                    full = Path(folder, name)
                    yield Input(full, PurePosixPath(full.relative_to(path).as_posix()), True)
        else:
            yield Input(path, PurePosixPath(path.name))


def is_image_name(path: Path | PurePosixPath) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES


# -- detect ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class DetectTask:
    """Detect one file; optionally write its mask as a 0/255 PNG under ``masks``."""

    config: DetectorConfig = DEFAULT_CONFIG
    limits: LoadLimits = field(default_factory=LoadLimits)
    masks: Path | None = None
    marks: Path | None = None  # a MarkStore folder: marks learned from the run's folders

    def failure_record(self, item: Input) -> Record:
        return {"path": str(item.path), "width": None, "height": None, "watermarked": None,
                "score": None, "regions": [], "mask": None, "error": None}

    def __call__(self, item: Input) -> Record:
        return guarded(self.failure_record(item), item, lambda: self._detect(item))

    def sample(self, item: Input) -> Record:
        """The record without folder evidence, plus what learning needs (``_sampled``)."""
        return guarded(self.failure_record(item), item, lambda: self._detect(item, True))

    def refit(self, record: Record, finding: Finding) -> Record | None:
        """The record of ``sample`` with its decision finished by ``finding`` (the same image
        seen with its folder's mark), or None when the image must be done again."""
        return {**record, **finding.to_dict()} if self.masks is None else None

    def _detect(self, item: Input, sampling: bool = False) -> Record:
        small, finding = glance(item.path, self.config, self.limits,
                                _marks_for(self.marks, item, sampling))
        result: Record = {"width": small.size[0], "height": small.size[1], **finding.to_dict(),
                          **_sampled(small, finding, self.config, sampling)}
        if self.masks is not None and finding.watermarked:
            _, detection = look_closer(item.path, small, finding, self.limits)
            result["mask"] = str(self._write_mask(item, detection.mask))
        return result

    def _write_mask(self, item: Input, mask: np.ndarray) -> Path:
        assert self.masks is not None
        target = self.masks / item.rel.with_suffix(".png")
        ok, encoded = cv2.imencode(".png", mask)
        if not ok:
            raise ClearmarkError(f"{target}: could not encode mask")
        write_bytes_atomic(target, encoded.tobytes())
        return target


# -- clean ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class CleanTask:
    """Clean one file of SRC into DST at the same relative path and format.

    A remover that can say which method each region got (``remove_explained``, as
    ``LocalRemover`` does) is asked to, and the record's regions carry it (``"method"``).
    With ``thumbs``, the images the review page shows are made here, from the pixels already
    in memory, and the record names them (``"thumbs"``, see ``_report``).
    """

    src: Path
    dst: Path
    config: DetectorConfig = DEFAULT_CONFIG
    remover: Any = field(default_factory=LocalRemover)
    limits: LoadLimits = field(default_factory=LoadLimits)
    marks: Path | None = None  # a MarkStore folder: marks learned from the run's folders
    thumbs: bool = False  # write previews for the review page under DST/.clearmark/thumbs

    def failure_record(self, item: Input) -> Record:
        return {"path": str(item.path), "rel": str(item.rel), "output": str(self.dst / item.rel),
                "status": "failed", "width": None, "height": None, "watermarked": None,
                "score": None, "regions": [], "error": None,
                "fingerprint": fingerprint(item.path)}

    def __call__(self, item: Input) -> Record:
        return self._timed(item, False)

    def sample(self, item: Input) -> Record:
        """The record without folder evidence, plus what learning needs (``_sampled``)."""
        return self._timed(item, True)

    @property
    def fits_mattes(self) -> bool:
        """Whether learning should estimate each folder mark's matte: the remover can invert
        a known mark (an endpoint cannot take one)."""
        return hasattr(self.remover, "remove_known")

    def _timed(self, item: Input, sampling: bool) -> Record:
        started = time.perf_counter()
        record = guarded(self.failure_record(item), item,
                         lambda: self._clean(item, self.dst / item.rel, sampling))
        record["seconds"] = round(time.perf_counter() - started, 4)
        return record

    def refit(self, record: Record, finding: Finding) -> Record | None:
        """None: an image its folder's mark changes is cleaned again (its output is rewritten
        with the mark removed)."""
        return None

    def _clean(self, item: Input, output: Path, sampling: bool = False) -> Record:
        if not is_image_name(item.rel):
            return {"status": "skipped", "error": f"{item.path}: not an image file name"}
        _refuse_inside(output, self.src)
        small, finding = glance(item.path, self.config, self.limits,
                                _marks_for(self.marks, item, sampling))
        result: Record = {"width": small.size[0], "height": small.size[1], **finding.to_dict(),
                          **_sampled(small, finding, self.config, sampling)}
        rel = str(item.rel)
        if not finding.watermarked:
            copy_file_atomic(item.path, output)
            return {**result, "status": "copied",
                    **self.previews(lambda thumbs: thumbs.unchanged(rel, small.rgb))}
        loaded, detection = look_closer(item.path, small, finding, self.limits)
        cleaned, methods = remove_explained(self.remover, loaded.rgb, detection, finding.shared)
        write_image(output, cleaned, loaded.meta, alpha=loaded.alpha)
        return {**result, "regions": with_methods(result["regions"], methods),
                "status": "cleaned", **self.previews(lambda thumbs: thumbs.cleaned(
                    rel, loaded.rgb, cleaned, detection.regions))}

    def previews(self, make: Callable[[Thumbnailer], Record]) -> Record:
        """``{"thumbs": make(...)}`` when previews are asked for, else nothing. Best effort:
        a preview that cannot be written costs the page a picture, not the image its record
        (``{"thumbs": {"error": reason}}``)."""
        if not self.thumbs:
            return {}
        try:
            return {"thumbs": make(Thumbnailer(self.dst))}
        except (ClearmarkError, cv2.error) as exc:
            return {"thumbs": {"error": str(exc)}}


def remove_explained(remover: Any, rgb: np.ndarray, detection: Detection,
                     shared: Sequence[tuple[Region, SharedMark, Match]] = ()
                     ) -> tuple[np.ndarray, list[str | None]]:
    """The cleaned image, and the method each region got (None where the remover cannot say:
    it has ``remove`` only).

    ``shared``: the folder marks found in the image (``Finding.shared``). Where such a mark
    comes with its folder's matte and the remover can invert a known mark (``remove_known``),
    its pixels are inverted with that matte (``"folder-matte"``), which many photos
    estimated better than this one photo can; the remover gets the rest of the mask.
    """
    placed = _placed_mattes(remover, rgb, shared)
    height, width = rgb.shape[:2]
    cover = np.zeros((height, width), bool)
    if placed:
        margin = np.zeros_like(cover)
        keep_off = _MATTE_MARGIN + int(getattr(remover, "grow", 0))  # the remover grows masks
        for (matte, x, y), (_, mark, match) in placed:
            inverted = remover.remove_known(rgb, matte.colour, matte.alpha, x, y)
            if not matte_explains(matte, x, y, rgb, inverted):
                continue  # the remover judges this photo by itself
            rgb = inverted
            cover |= matte_support(matte, x, y, (height, width))
            margin |= matte_support(matte, x, y, (height, width), keep_off)
            # the detector's mask of this mark is the matte's to judge: where its alpha is 0
            # the photo is not marked, and no fill may have it
            margin |= mark_mask(mark, match, width, height) > 0
        detection = replace(detection, mask=np.where(margin, 0, detection.mask).astype(np.uint8))
    explain = getattr(remover, "remove_explained", None)
    if explain is None:
        return remover.remove(rgb, detection), [None] * len(detection.regions)
    cleaned, regions = explain(rgb, detection)
    methods = []
    for region, done in zip(detection.regions, regions, strict=True):
        inside = region.clamped(width, height)
        by_matte = 0 if inside is None else int(
            cover[inside.y:inside.y2, inside.x:inside.x2].sum())
        methods.append(_FOLDER_MATTE if by_matte > done.get("pixels", 0) else done.get("method"))
    return cleaned, methods


_FOLDER_MATTE = "folder-matte"  # a region inverted with its folder's matte
_MATTE_MARGIN = 2  # px between the matte's pixels and the mask left to the remover


def _placed_mattes(remover: Any, rgb: np.ndarray,
                   shared: Sequence[tuple[Region, SharedMark, Match]]
                   ) -> list[tuple[tuple[FolderMatte, int, int], tuple[Region, SharedMark, Match]]]:
    """The folder mattes that fit this image, each with its top-left there and its hit."""
    if not hasattr(remover, "remove_known"):
        return []
    placed = []
    for hit in shared:
        _, mark, match = hit
        if mark.matte is None:
            continue
        at = place_matte(mark.matte, rgb, match, mark)
        if at is not None:
            placed.append(((mark.matte, *at), hit))
    return placed


def with_methods(regions: list[Record], methods: Sequence[str | None]) -> list[Record]:
    """The record's regions, each with the method that removed it (``"method"``)."""
    return [{**region, "method": methods[i] if i < len(methods) else None}
            for i, region in enumerate(regions)]


def glance(source: Any, config: DetectorConfig, limits: LoadLimits,
           marks: Callable[[tuple[int, int]], Sequence[SharedMark]] = lambda size: ()
           ) -> tuple[LoadedImage, Finding]:
    """Decode at the detector's working size (cheap for JPEG) and run the finding pass.

    ``marks`` gives the shared marks for an image of a (width, height).
    """
    small = load_image(source, limits=limits, max_side=config.working_side)
    return small, find(small.rgb, small.size, config, marks(small.size))


def full_image(source: Any, small: LoadedImage, limits: LoadLimits) -> LoadedImage:
    """The full-resolution image behind a ``glance`` (the same object when it was full)."""
    if small.rgb.shape[1::-1] == small.size:
        return small
    return load_image(source, limits=limits)


def look_closer(source: Any, small: LoadedImage, finding: Finding,
                limits: LoadLimits) -> tuple[LoadedImage, Detection]:
    """After a ``glance`` that found something: the full image and its full-size detection."""
    loaded = full_image(source, small, limits)
    return loaded, refine(loaded.rgb, finding)


def guarded(record: Record, item: Input, work: Callable[[], Record]) -> Record:
    """``record`` updated with what ``work`` returns, or with the error it raised: per-file
    failures are data, and one file's bug must not stop a run of millions."""
    try:
        record.update(work())
    except ClearmarkError as exc:
        record["error"] = str(exc)
    except Exception as exc:
        record["error"] = f"{item.path}: unexpected {type(exc).__name__}: {exc}"
    return record


def shared_marks(store: Path | None, folder: str, size: tuple[int, int]) -> list[SharedMark]:
    """The mark learned for an image of ``size`` in ``folder`` (its ``folder_key``), if any.
    The store's index is read again only when it changed (a run learns as it goes)."""
    if store is None:
        return []
    _, path = _mark_store(str(store), _stamp(store / "index.json")).lookup(
        folder, size[0] / size[1])
    return [] if path is None else [load_mark(path)]


@lru_cache(maxsize=4)
def _mark_store(folder: str, stamp: tuple[int, int, int] | None) -> MarkStore:
    return MarkStore(Path(folder))


def _stamp(path: Path) -> tuple[int, int, int] | None:
    """Which version of a file this is: an atomic rewrite is a new inode."""
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_ino, stat.st_mtime_ns, stat.st_size


def _marks_for(store: Path | None, item: Input, sampling: bool
               ) -> Callable[[tuple[int, int]], Sequence[SharedMark]]:
    """The shared marks an image is decided with: none while its folder is being learned."""
    if sampling:
        return lambda size: ()
    return lambda size: shared_marks(store, folder_key(item.path), size)


def _sampled(small: LoadedImage, finding: Finding, config: DetectorConfig,
             sampling: bool) -> Record:
    """What a sampled image gives the run's learning: its working gray and its finding, under
    private keys (``_GRAY``, ``_FINDING``) that ``run`` takes out before yielding."""
    if not sampling:
        return {}
    gray = working_gray(working_copy(small.rgb, small.size, config))
    return {_GRAY: gray.astype(np.uint8), _FINDING: finding}  # the gray is whole levels


def _refuse_inside(output: Path, src: Path) -> None:
    resolved = output.resolve()
    if resolved == src.resolve() or resolved.is_relative_to(src.resolve()):
        raise ClearmarkError(f"{output}: refusing to write inside the source folder")


def fingerprint(path: Path) -> list[int] | None:
    """Size and modification time: a source that changed since it was done is done again."""
    try:
        stat = path.stat()
    except OSError:
        return None
    return [stat.st_size, stat.st_mtime_ns]


# -- the journal: resume from completion records ----------------------------------------------


class Journal:
    """Append-only completion records in ``DST/.clearmark/journal.jsonl``.

    A record is appended (and fsynced) only after its output was renamed into place, so a
    record means the work is done; an output without a record is redone. A torn last line from
    a killed run is ignored.
    """

    def __init__(self, dst: Path) -> None:
        self.path = dst / ".clearmark" / "journal.jsonl"
        self._handle: Any = None

    def load(self) -> dict[str, Record]:
        """The last record of each relative path."""
        records: dict[str, Record] = {}
        if not self.path.exists():
            return records
        with open(self.path, encoding="utf-8", errors="replace") as handle:
            for line in handle:
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if isinstance(record, dict) and isinstance(record.get("rel"), str):
                    records[record["rel"]] = record
        return records

    def append(self, record: Record) -> None:
        if self._handle is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._handle = open(self.path, "a", encoding="utf-8")  # noqa: SIM115
            if self._ends_torn():
                self._handle.write("\n")  # seal a killed run's torn line off from ours
        self._handle.write(json.dumps(record, ensure_ascii=False) + "\n")
        self._handle.flush()
        os.fsync(self._handle.fileno())

    def _ends_torn(self) -> bool:
        with open(self.path, "rb") as handle:
            if handle.seek(0, os.SEEK_END) == 0:
                return False
            handle.seek(-1, os.SEEK_END)
            return handle.read(1) != b"\n"

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None


def is_done(record: Record | None, item: Input, dst: Path) -> bool:
    """A record counts if it says done, the source is unchanged and the output is there."""
    return (record is not None and record.get("status") in DONE
            and record.get("fingerprint") == fingerprint(item.path)
            and (dst / item.rel).is_file())


def remove_stale_temp_files(dst: Path) -> int:
    """Delete temp files a killed run left behind (only names our atomic writer makes)."""
    removed = 0
    if not dst.is_dir():
        return removed
    for folder, _, files in os.walk(dst):
        for name in files:
            if name.startswith(".") and name.endswith(".clearmark-tmp"):
                Path(folder, name).unlink(missing_ok=True)
                removed += 1
    return removed


# -- running tasks ----------------------------------------------------------------------------


def run(task: Callable[[Input], Record], items: Iterable[Input], *, jobs: int = 1,
        learn: MarkStore | None = None) -> Iterator[Record]:
    """Run ``task`` on every item, yielding records in input order.

    With ``jobs > 1`` the work goes to a pool of worker processes, with a bounded number of
    files in flight, so memory stays flat however many files there are. A worker that dies
    (a crash, the OOM killer) costs a new pool, not the run: the files that were in flight
    are then run one at a time, so the one that kills its worker alone is recorded as failed
    and the others are done.

    With ``learn`` (a task with ``sample`` and ``refit``, such as ``DetectTask`` and
    ``CleanTask``, whose ``marks`` is that store's folder), folder evidence is learned from the
    decision pass itself, so no image is decoded twice for it: the first ``LOOK_AT`` files of
    each folder not yet in the store are decided without evidence, and their records are held
    back with the working copy of each image. When those files are in, each aspect group's
    mark is estimated from them and written to the store (for a task that ``fits_mattes``,
    with its matte, from up to 16 of those files decoded again); the images the mark changes,
    or that carry a mark with a matte, are finished with it (``refit``) or done again, and the
    folder's later files are decided with it. At most ``LOOK_AT`` records more are in memory.
    """
    if learn is not None and not (hasattr(task, "sample") and hasattr(task, "refit")):
        raise TypeError(f"{type(task).__name__} cannot learn folder marks as it goes "
                        "(it has no sample and refit): learn them first (_marks.learn_marks)")
    runner = _Runner(task, jobs)
    learning = _Learning(task, learn) if learn is not None else None
    window: deque[_Entry] = deque()
    try:
        for item in items:
            if learning is not None and learning.route(item, window, runner):
                window.append(_Entry(item, runner.submit(_Sample(task), item),
                                     held=folder_key(item.path)))
            else:
                window.append(_Entry(item, runner.submit(task, item)))
            while len(window) >= 4 * jobs and not (
                    learning is not None and learning.is_open(window[0])):
                yield _next_record(window, runner, learning)
        while window:
            yield _next_record(window, runner, learning)
    finally:
        runner.close()


@dataclass
class _Entry:
    """A file in flight: what was asked of it, and the future record. ``held`` names the
    folder whose marks the record waits for (a sampled image), None when it is final."""

    item: Input
    future: Future[Record]
    held: str | None = None


@dataclass(frozen=True)
class _Sample:
    """``task.sample`` as a picklable callable."""

    task: Any

    def __call__(self, item: Input) -> Record:
        return self.task.sample(item)

    def failure_record(self, item: Input) -> Record:
        return self.task.failure_record(item)


_GRAY, _FINDING = "_gray", "_finding"  # a sampled record's private keys, never yielded


def _next_record(window: deque[_Entry], runner: _Runner, learning: _Learning | None) -> Record:
    """The head item's record, once it is final."""
    head = window[0]
    if head.held is not None and learning is not None:
        learning.settle(head.held, window, runner)
    record = runner.outcome(window, head)
    window.popleft()
    record.pop(_GRAY, None)
    record.pop(_FINDING, None)
    return record


class _Runner:
    """Where tasks run: a pool of worker processes, or this process when ``jobs`` is 1."""

    def __init__(self, task: Callable[[Input], Record], jobs: int) -> None:
        self.task, self.jobs = task, jobs
        self.pool: Executor | None = _pool(jobs) if jobs > 1 else None

    def submit(self, call: Callable[[Input], Record], item: Input) -> Future[Record]:
        """Submit, or hand back the pool's breakage as this item's outcome (a worker can die
        between two submissions): ``outcome`` then redoes it."""
        future: Future[Record] = Future()
        if self.pool is None:
            future.set_result(call(item))
            return future
        try:
            return self.pool.submit(call, item)
        except BrokenProcessPool as exc:
            future.set_exception(exc)
            return future

    def outcome(self, window: deque[_Entry], entry: _Entry) -> Record:
        """``entry``'s record; after a worker death, the window is redone in isolation."""
        try:
            return entry.future.result()
        except BrokenProcessPool:
            self._isolate(window)
            return entry.future.result()

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=False, cancel_futures=True)

    def _isolate(self, window: deque[_Entry]) -> None:
        """Redo every unfinished item of the window alone in a fresh pool; an item whose
        worker dies even alone gets a failure record."""
        assert self.pool is not None
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.pool = _pool(self.jobs)
        for entry in window:
            future = entry.future
            if future.done() and not future.cancelled() and future.exception() is None:
                continue
            call: Callable[[Input], Record] = _Sample(self.task) if entry.held else self.task
            alone = self.submit(call, entry.item)
            try:
                alone.result()
            except BrokenProcessPool:
                self.pool.shutdown(wait=False, cancel_futures=True)
                self.pool = _pool(self.jobs)
                alone = Future()
                alone.set_result(_failed(call, entry.item,
                                         "worker process died while processing it"))
            entry.future = alone


class _Learning:
    """Folder evidence learned from the decision pass (see ``run``)."""

    def __init__(self, task: Any, store: MarkStore) -> None:
        self.task, self.store = task, store
        self.folder: str | None = None  # the folder items are coming from
        self.seen = 0  # its files so far
        self.learning = False  # whether its first files are being sampled

    def route(self, item: Input, window: deque[_Entry], runner: _Runner) -> bool:
        """Whether ``item`` is to be sampled; settles its folder first when it is the first
        file past the sample."""
        if not item.in_folder:
            return False
        key = folder_key(item.path)
        if key != self.folder:
            self.folder, self.seen = key, 0
            self.learning = key not in self.store.index
        self.seen += 1
        if not self.learning:
            return False
        if self.seen <= LOOK_AT:
            return True
        self.settle(key, window, runner)
        return False

    def is_open(self, entry: _Entry) -> bool:
        """Whether ``entry`` waits for a folder that may still get sampled files."""
        return entry.held is not None and entry.held == self.folder and self.learning \
            and self.seen <= LOOK_AT

    def settle(self, folder: str, window: deque[_Entry], runner: _Runner) -> None:
        """Learn ``folder``'s marks from its held records, then make those records final."""
        if folder == self.folder:
            self.learning = False
        held = [entry for entry in window if entry.held == folder]
        records = [runner.outcome(window, entry) for entry in held]
        marks = self._learn(folder, records)
        for entry, record in zip(held, records, strict=True):
            entry.held = None
            mark = _mark_of(marks, record)
            finding = record.pop(_FINDING, None)
            gray = record.pop(_GRAY, None)
            if mark is None or finding is None or gray is None:
                continue
            seen = with_marks(finding, gray.astype(np.float32), [mark], self.task.config)
            if seen.regions == finding.regions and not (mark.matte is not None and seen.shared):
                continue  # the mark adds nothing the image alone did not show
            refitted = self.task.refit(record, seen)
            if refitted is None:
                entry.future = runner.submit(self.task, entry.item)
            else:
                entry.future = Future()
                entry.future.set_result(refitted)

    def _learn(self, folder: str, records: list[Record]) -> list[tuple[float, SharedMark]]:
        """Estimate each aspect group's mark (from its first ``MAX_SAMPLE`` images) and
        record every group in the store, before any of the folder's records is yielded."""
        groups: list[tuple[float, list[np.ndarray]]] = []
        sampled: list[tuple[Path, float]] = []  # every sampled file: the matte's candidates
        for record in records:
            gray = record.get(_GRAY)
            if gray is None:
                continue
            aspect = record["width"] / record["height"]
            sampled.append((Path(record["path"]), aspect))
            sample = sample_for(groups, aspect)
            if sample is not None:
                sample.append(gray.astype(np.float32))
        fit = matte_fit(sampled, self.task.limits) if getattr(self.task, "fits_mattes",
                                                              False) else None
        marks = settle(folder, groups, self.store, fit)  # a group below MIN_IMAGES has no mark
        if folder not in self.store.index:
            self.store.index[folder] = []  # learned: nothing to learn there
        self.store.save_index()
        return marks


def _mark_of(marks: list[tuple[float, SharedMark]], record: Record) -> SharedMark | None:
    if not marks or not record.get("width") or not record.get("height"):
        return None
    aspect = record["width"] / record["height"]
    return next((mark for known, mark in marks if same_aspect(known, aspect)), None)


def _failed(task: Callable[[Input], Record], item: Input, reason: str) -> Record:
    blank = getattr(task, "failure_record", None)
    record: Record = blank(item) if blank else {"path": str(item.path)}
    record["error"] = f"{item.path}: {reason}"
    return record


def _pool(jobs: int) -> Executor:
    # spawn: workers must not inherit the parent's threads (progress bar) or locks
    return ProcessPoolExecutor(max_workers=jobs, mp_context=get_context("spawn"),
                               initializer=_init_worker)


def _init_worker() -> None:
    cv2.setNumThreads(1)  # one process per core already; OpenCV's own threads would oversubscribe


def default_jobs() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
               else os.cpu_count() or 1)
