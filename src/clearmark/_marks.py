"""Where a run keeps the marks it learned from its folders, and how they are learned.

Marks are learned once per group (a folder's images of one aspect ratio) from a sample of at
most ``MAX_SAMPLE`` images at reduced size, saved as small ``.npz`` files, and read by the
workers from there: the estimate is made once and shared, never recomputed per worker, and a
rerun (or a later run into the same DST) reuses it. A folder is known by its path
(``folder_key``).

The local runner learns from the working copies its decision pass makes anyway
(``_pipeline.run`` with ``learn=``); ``learn_marks`` is a separate pass that decodes each
folder's sample for engines that cannot hold records back (Ray, the endpoint). Either walks one
folder at a time, so memory is bounded by one folder's sample, not by the size of the run.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from ._errors import ClearmarkError
from ._folder import (
    MATCHED,
    MAX_SAMPLE,
    WORKING_WIDTH,
    SharedMark,
    estimate_shared_mark,
    match_shared_mark,
    working_gray,
)
from ._imageio import LoadLimits, load_image, write_bytes_atomic
from ._known import MAX_PHOTOS, estimate_folder_matte


def folder_key(path: Path) -> str:
    """The name a file's folder has in a ``MarkStore``."""
    return path.parent.as_posix()


def same_aspect(a: float, b: float) -> bool:
    """Aspect ratios within 1 %: a reduced-size decode rounds sizes a little."""
    return abs(a - b) <= 0.01 * max(a, b)


class MarkStore:
    """A folder of learned marks. ``index.json`` maps each source folder to the groups learned
    there: ``[aspect, file]`` pairs, the file null when the group had no shared mark."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._index_path = folder / "index.json"
        self.index: dict[str, list[list[Any]]] = {}
        if self._index_path.exists():
            try:
                self.index = json.loads(self._index_path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                self.index = {}  # a torn index only costs relearning

    def lookup(self, folder: str, aspect: float) -> tuple[bool, str | None]:
        """(learned?, mark file or None) for an image of ``aspect`` in ``folder`` (its
        ``folder_key``)."""
        for known_aspect, name in self.index.get(folder, []):
            if same_aspect(known_aspect, aspect):
                return True, None if name is None else str(self.folder / name)
        return False, None

    def put(self, folder: str, aspect: float, mark: SharedMark | None) -> None:
        name = None
        if mark is not None:
            self.folder.mkdir(parents=True, exist_ok=True)
            key = f"{folder}|{aspect:.4f}"
            name = hashlib.sha1(key.encode("utf-8")).hexdigest()[:16] + ".npz"
            mark.save(self.folder / name)
        self.index.setdefault(folder, []).append([aspect, name])

    def save_index(self) -> None:
        write_bytes_atomic(self._index_path, json.dumps(self.index, indent=1).encode("utf-8"))


@lru_cache(maxsize=64)
def load_mark(path: str) -> SharedMark:
    """A worker reads each mark file once (cached per process)."""
    return SharedMark.load(path)


@lru_cache(maxsize=64)
def load_template(path: str) -> SharedMark:
    """A user's mark file (``clearmark learn``), read once per process; a file that is not
    one is an error naming it."""
    try:
        return SharedMark.load(path)
    except (OSError, ValueError, KeyError, EOFError) as exc:
        raise ClearmarkError(f"{path}: not a clearmark mark file ({exc})") from exc


def learn_template(paths: Iterable[Path], limits: LoadLimits) -> SharedMark | None:
    """The mark shared by the largest same-aspect group among ``paths`` (its first
    ``MAX_SAMPLE`` images, decoded at reduced size), or None when it has no shared mark."""
    groups: list[tuple[float, list[np.ndarray]]] = []
    for path in paths:
        try:
            loaded = load_image(path, limits=limits, max_side=WORKING_WIDTH)
        except ClearmarkError:
            continue
        _add_to_group(groups, loaded.rgb)
    if not groups:
        return None
    largest = max((sample for _, sample in groups), key=lambda sample: len(sample))
    return estimate_shared_mark(largest)


def save_template(mark: SharedMark, path: Path) -> None:
    """Write a mark file atomically (``.npz``; ``load_template`` reads it)."""
    buffer = io.BytesIO()
    mark.save(buffer)
    write_bytes_atomic(path, buffer.getvalue())


LOOK_AT = 4 * MAX_SAMPLE  # a folder's first files are its sample; a known folder is skipped


Fit = Callable[[float, SharedMark], SharedMark]  # a group's mark (by aspect), made final


def learn_marks(paths: Iterable[Path], store: MarkStore, limits: LoadLimits,
                on_file: Callable[[], None] | None = None, mattes: bool = False) -> int:
    """Estimate the shared mark of every group not yet in ``store``, decoding each folder's
    sample; return how many were found. ``paths`` must come folder by folder (as
    ``find_inputs`` yields them). ``mattes``: also estimate each mark's matte for removal
    (``with_matte``)."""
    found, seen = 0, 0
    folder: str | None = None
    samples: list[tuple[float, list[np.ndarray]]] = []
    sampled: list[tuple[Path, float]] = []

    def done(folder: str) -> int:
        fit = matte_fit(sampled, limits) if mattes else None
        sampled.clear()
        return len(settle(folder, samples, store, fit))

    for path in paths:
        key = folder_key(path)
        if key != folder:
            if folder is not None:
                found += done(folder)
            folder, seen = key, 0
        if on_file is not None:
            on_file()
        seen += 1
        if seen <= LOOK_AT and key not in store.index:
            aspect = _sample(path, key, samples, store, limits)
            if aspect is not None:
                sampled.append((path, aspect))
    if folder is not None:
        found += done(folder)
    store.save_index()
    return found


def _sample(path: Path, folder: str, samples: list[tuple[float, list[np.ndarray]]],
            store: MarkStore, limits: LoadLimits) -> float | None:
    """Add the image (decoded at reduced size) to its aspect group's sample, if it needs one;
    return its aspect ratio (None when it cannot be read)."""
    try:
        loaded = load_image(path, limits=limits, max_side=WORKING_WIDTH)
    except ClearmarkError:
        return None  # the main pass reports it
    height, width = loaded.rgb.shape[:2]
    if not store.lookup(folder, width / height)[0]:
        _add_to_group(samples, loaded.rgb)
    return width / height


def matte_fit(sampled: Iterable[tuple[Path, float]], limits: LoadLimits) -> Fit:
    """A ``settle`` fit that gives each group's mark its matte (``with_matte``), from the
    files of ``sampled`` ((path, aspect ratio) pairs) of that group's aspect."""
    files = list(sampled)
    return lambda aspect, mark: with_matte(
        mark, [path for path, known in files if same_aspect(known, aspect)], limits)


def with_matte(mark: SharedMark, paths: Iterable[Path], limits: LoadLimits) -> SharedMark:
    """``mark`` with its colour and alpha at full size (``_known.estimate_folder_matte``),
    estimated from the files among the first ``2 * MAX_PHOTOS`` of ``paths`` that clearly
    carry it; ``mark`` unchanged when they are too few. Each is decoded in full once."""

    def carriers() -> Iterator[tuple[np.ndarray, Any]]:
        for path in list(paths)[:2 * MAX_PHOTOS]:
            try:
                rgb = load_image(path, limits=limits).rgb
            except ClearmarkError:
                continue  # the main pass reports it
            match = match_shared_mark(working_gray(rgb), mark)
            if match.score >= MATCHED:  # as clearly as detection asks
                yield rgb, match

    matte = estimate_folder_matte(carriers(), mark)
    return mark if matte is None else replace(mark, matte=matte)


def _add_to_group(samples: list[tuple[float, list[np.ndarray]]], rgb: np.ndarray) -> None:
    """Put the image's working gray in the sample of its aspect ratio, unless that is full."""
    height, width = rgb.shape[:2]
    sample = sample_for(samples, width / height)
    if sample is not None:
        sample.append(working_gray(rgb))


def sample_for(samples: list[tuple[float, list[np.ndarray]]],
               aspect: float) -> list[np.ndarray] | None:
    """The sample of the group of ``aspect`` among ``samples`` (a new one if none fits), or
    None when it already holds ``MAX_SAMPLE`` images."""
    for known, sample in samples:
        if same_aspect(known, aspect):
            return sample if len(sample) < MAX_SAMPLE else None
    samples.append((aspect, []))
    return samples[-1][1]


def settle(folder: str, samples: list[tuple[float, list[np.ndarray]]],
           store: MarkStore, fit: Fit | None = None) -> list[tuple[float, SharedMark]]:
    """Estimate each sampled group of ``folder`` and record it in ``store`` (also a group
    with no mark: it is then known to have none); forget the samples; return the marks found
    with their aspect ratios. ``fit`` finishes each mark found before it is stored."""
    found = []
    for aspect, sample in samples:
        mark = estimate_shared_mark(sample)
        if mark is not None and fit is not None:
            mark = fit(aspect, mark)
        store.put(folder, aspect, mark)
        if mark is not None:
            found.append((aspect, mark))
    samples.clear()
    return found
