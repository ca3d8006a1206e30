"""Regions, detections, and the rectangles the removal endpoint accepts.

Detectors find boxes; the endpoint takes at most 50 rectangles as a JSON *string*; a mask is the
other form a remover accepts. This module converts between the three, and validates rectangles
strictly where they come in from outside (the server, journals).

Merging (`merge_regions`) works in two phases. First, boxes that share pixels are folded together
until no two boxes overlap (a union of two boxes can reach a third, so it repeats). Then, while
there are more boxes than the limit, the pair whose union adds the least new area is merged: a
heap of each box's ``_NEIGHBOURS`` cheapest partners, invalidated lazily, makes that about
O(n^2) cheap numpy work instead of O(n^3) Python work. Unions made in that phase may overlap
other boxes; they are not folded again, since that cascades into needlessly large boxes.
Inputs above ``_EXACT_MAX`` boxes (a noisy mask can have 100 000 components) are first pooled
on a coarse grid, which keeps coverage but not minimality: such inputs end as a few broad
rectangles anyway, and the overlap sweep alone would take seconds on them.
"""

from __future__ import annotations

import heapq
import json
import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

import cv2
import numpy as np

__all__ = [
    "MAX_RECTANGLES",
    "Detection",
    "Region",
    "mask_to_regions",
    "merge_regions",
    "pad_regions",
    "parse_rectangles",
    "rectangles_json",
    "regions_to_mask",
]

MAX_RECTANGLES = 50
"""The removal endpoint accepts at most this many rectangles per task."""

MIXED = "mixed"
_RECT_KEYS = ("x", "y", "width", "height")
_MAX_COORD = 2**31 - 1  # a sane bound for untrusted input; keeps numpy int64 maths exact
_NEIGHBOURS = 4  # candidate partners kept per box in the merge heap
_EXACT_MAX = 6000  # above this many boxes, pool on a grid before the exact greedy merge
_BLOCK = 256  # rows per block when testing all pairs for overlap
_PRICE_BLOCK = 32  # owners priced at once: small enough for the temporaries to stay in cache
_CHUNK = 16  # chunk width when bounding a row's cheapest costs (see _cheapest)


@dataclass(frozen=True, slots=True)
class Region:
    """An axis-aligned box in pixels: columns ``x <= c < x2``, rows ``y <= r < y2``.

    Coordinates are normalised to Python ``int`` (numpy integers accepted) so that every
    region is JSON-ready and hashes consistently. Negative ``x``/``y`` are allowed because
    padding a box at the border produces them; `clamped` brings it back inside the image.
    """

    x: int
    y: int
    width: int
    height: int
    score: float = 1.0
    kind: str = "text"

    def __post_init__(self) -> None:
        for name in _RECT_KEYS:
            object.__setattr__(self, name, _as_int(getattr(self, name), f"Region.{name}"))
        if self.width < 0 or self.height < 0:
            raise ValueError(f"Region size must be >= 0, got {self.width}x{self.height}")
        object.__setattr__(self, "score", float(self.score))
        if not isinstance(self.kind, str):
            raise TypeError(f"Region.kind must be a str, got {type(self.kind).__name__}")

    @property
    def x2(self) -> int:
        """One past the last column."""
        return self.x + self.width

    @property
    def y2(self) -> int:
        """One past the last row."""
        return self.y + self.height

    @property
    def area(self) -> int:
        """Number of pixels covered."""
        return self.width * self.height

    def to_dict(self) -> dict[str, Any]:
        """The journal / CLI form; the score is rounded so output lines stay short."""
        return {**self.rectangle(), "score": round(self.score, 4), "kind": self.kind}

    def rectangle(self) -> dict[str, int]:
        """The endpoint's form: the four integers and nothing else."""
        return {"x": self.x, "y": self.y, "width": self.width, "height": self.height}

    def padded(self, pad: int) -> Region:
        """Grow by ``pad`` pixels on every side (shrink if negative); may leave the image."""
        width, height = max(0, self.width + 2 * pad), max(0, self.height + 2 * pad)
        return Region(self.x - pad, self.y - pad, width, height, self.score, self.kind)

    def clamped(self, width: int, height: int) -> Region | None:
        """The part inside a ``width`` x ``height`` image, or None when nothing is left."""
        x, y = max(self.x, 0), max(self.y, 0)
        x2, y2 = min(self.x2, width), min(self.y2, height)
        if x2 <= x or y2 <= y:
            return None
        return Region(x, y, x2 - x, y2 - y, self.score, self.kind)

    def union(self, other: Region) -> Region:
        """The bounding box of both; a union is as sure as its surest part."""
        x, y = min(self.x, other.x), min(self.y, other.y)
        x2, y2 = max(self.x2, other.x2), max(self.y2, other.y2)
        kind = self.kind if self.kind == other.kind else MIXED
        return Region(x, y, x2 - x, y2 - y, max(self.score, other.score), kind)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Region:
        """Read `to_dict` output back (journals, JSONL) with strict checks.

        Raises ValueError naming the field: missing or unknown keys, non-integers (bools and
        floats included), negative positions, empty sizes, a score outside 0..1.
        """
        if not isinstance(data, Mapping):
            raise ValueError(f"Region: must be a mapping, got {type(data).__name__}")
        _check_keys(data, "Region", required=_RECT_KEYS, optional=("score", "kind"))
        x, y, width, height = _read_rectangle(data, "Region.")
        score = _read_score(data.get("score", 1.0), "Region.score")
        kind = data.get("kind", "text")
        if not isinstance(kind, str) or not kind:
            raise ValueError("Region.kind: must be a non-empty string")
        return cls(x, y, width, height, score, kind)


@dataclass(frozen=True, eq=False)
class Detection:
    """What a detector concluded about one image.

    ``mask`` is H x W uint8 (0/255) at the image's size; ``regions`` are boxes inside it.
    Equality is identity: comparing masks element-wise is never what a caller means.
    """

    watermarked: bool
    score: float
    regions: tuple[Region, ...]
    mask: np.ndarray

    def __post_init__(self) -> None:
        object.__setattr__(self, "regions", tuple(self.regions))
        object.__setattr__(self, "watermarked", bool(self.watermarked))
        object.__setattr__(self, "score", float(self.score))
        if not 0.0 <= self.score <= 1.0:
            raise ValueError(f"Detection.score must be within 0..1, got {self.score}")
        mask = self.mask
        if not isinstance(mask, np.ndarray) or mask.ndim != 2 or mask.dtype != np.uint8:
            raise ValueError("Detection.mask must be a 2-D uint8 array (H x W, 0/255)")

    def rectangles(self, limit: int = MAX_RECTANGLES) -> list[dict[str, int]]:
        """The regions as the endpoint wants them: clamped to the image, merged to ``limit``."""
        height, width = self.mask.shape
        inside = pad_regions(self.regions, 0, width, height)
        return [region.rectangle() for region in merge_regions(inside, limit)]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary; the mask is left out (it is written as a PNG when asked)."""
        return {
            "watermarked": self.watermarked,
            "score": round(self.score, 4),
            "regions": [region.to_dict() for region in self.regions],
        }

    def __repr__(self) -> str:
        height, width = self.mask.shape
        return (
            f"Detection(watermarked={self.watermarked}, score={self.score:.4f}, "
            f"regions={len(self.regions)}, mask={height}x{width} {self.mask.dtype})"
        )


# --- public helpers -------------------------------------------------------------------------


def merge_regions(regions: Iterable[Region], limit: int = MAX_RECTANGLES) -> list[Region]:
    """Cover every pixel of ``regions`` with at most ``limit`` boxes, adding little area.

    Overlapping boxes are folded first; then the cheapest pairs (least added area) merge until
    the count fits, and boxes a union swallowed are dropped. Outputs are unions of inputs, so
    inputs inside an image give outputs inside it. Outputs only overlap when the limit forced
    merging. Empty regions are dropped. Deterministic: sorted by y, then x; input order is
    ignored.
    """
    _check_limit(limit)
    boxes, kinds = _boxes_from_regions(regions)
    return _merge_boxes(boxes, kinds, limit)


def pad_regions(regions: Iterable[Region], pad: int, width: int, height: int) -> list[Region]:
    """Pad every region, clamp it into the image, and drop what falls outside entirely."""
    clamped = (region.padded(pad).clamped(width, height) for region in regions)
    return [region for region in clamped if region is not None]


def regions_to_mask(regions: Iterable[Region], height: int, width: int) -> np.ndarray:
    """Paint regions white (255) on a black ``height`` x ``width`` uint8 mask, clamped."""
    if height < 0 or width < 0:
        raise ValueError(f"mask size must be >= 0, got {height}x{width}")
    mask = np.zeros((height, width), dtype=np.uint8)
    for region in pad_regions(regions, 0, width, height):
        mask[region.y : region.y2, region.x : region.x2] = 255
    return mask


def mask_to_regions(
    mask: np.ndarray, *, limit: int = MAX_RECTANGLES, min_area: int = 1, kind: str = "mask"
) -> list[Region]:
    """Boxes around the mask's 8-connected components, merged to at most ``limit``.

    mask : (H, W) array; any non-zero pixel counts as marked. Components with fewer than
    ``min_area`` pixels are dropped (speckle), so those pixels are not guaranteed covered.
    """
    _check_limit(limit)
    if not isinstance(mask, np.ndarray) or mask.ndim != 2:
        raise ValueError("mask must be a 2-D array (H x W)")
    if min_area < 0:
        raise ValueError(f"min_area must be >= 0, got {min_area}")
    if mask.size == 0:
        return []
    binary = np.ascontiguousarray(mask if mask.dtype == np.uint8 else mask != 0, np.uint8)
    _, _, stats, _ = cv2.connectedComponentsWithStats(binary, connectivity=8, ltype=cv2.CV_32S)
    stats = stats[1:].astype(np.int64)  # label 0 is the background
    stats = stats[stats[:, cv2.CC_STAT_AREA] >= min_area]
    x, y, w, h = (stats[:, i] for i in range(4))  # left, top, width, height
    boxes = _Boxes(x, y, x + w, y + h, np.ones(len(x)), np.zeros(len(x), dtype=np.intp))
    return _merge_boxes(_sorted(boxes), [kind], limit)


def rectangles_json(regions: Iterable[Region]) -> str:
    """The endpoint's ``rectangles`` field: compact JSON of the bare rectangles."""
    return json.dumps([region.rectangle() for region in regions], separators=(",", ":"))


def parse_rectangles(
    text: str | bytes,
    *,
    width: int | None = None,
    height: int | None = None,
    limit: int = MAX_RECTANGLES,
) -> list[Region]:
    """Validate a ``rectangles`` field as a server must, before doing any work.

    Raises ValueError whose message names the problem and where, e.g.
    ``rectangles[3].width: must be a positive integer``. With ``width``/``height``, every
    rectangle must lie inside the image. Returns regions of kind ``"rectangle"``.
    """
    _check_limit(limit)
    items = _load_json_list(text)
    if len(items) > limit:
        raise ValueError(f"rectangles: at most {limit} rectangles allowed, got {len(items)}")
    regions = [_parse_rectangle(item, f"rectangles[{i}]") for i, item in enumerate(items)]
    if width is not None or height is not None:
        for i, region in enumerate(regions):
            _check_inside(region, width, height, f"rectangles[{i}]")
    return regions


# --- validation helpers ---------------------------------------------------------------------


def _as_int(value: object, where: str) -> int:
    """Accept Python and numpy integers only: a float or bool here is a caller's bug."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{where} must be an int, got {type(value).__name__}")
    return int(value)


def _check_limit(limit: int) -> None:
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ValueError(f"limit must be an integer >= 1, got {limit!r}")


def _check_keys(
    data: Mapping[str, Any], where: str, required: tuple[str, ...], optional: tuple[str, ...]
) -> None:
    for key in required:
        if key not in data:
            raise ValueError(f"{where}: missing key {key!r}")
    for key in data:
        if key not in required and key not in optional:
            raise ValueError(f"{where}: unexpected key {key!r}")


def _read_int(value: object, where: str, minimum: int) -> int:
    """A JSON integer within [minimum, 2**31 - 1]; ``true`` and ``1.0`` are not integers."""
    what = "a positive integer" if minimum > 0 else "a non-negative integer"
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{where}: must be {what}, got {_shown(value)}")
    if value > _MAX_COORD:
        raise ValueError(f"{where}: must be at most {_MAX_COORD}, got {value}")
    return value


def _read_rectangle(data: Mapping[str, Any], prefix: str) -> tuple[int, int, int, int]:
    x = _read_int(data["x"], f"{prefix}x", 0)
    y = _read_int(data["y"], f"{prefix}y", 0)
    width = _read_int(data["width"], f"{prefix}width", 1)
    height = _read_int(data["height"], f"{prefix}height", 1)
    return x, y, width, height


def _read_score(value: object, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise ValueError(f"{where}: must be a number between 0 and 1, got {_shown(value)}")
    return float(value)


def _shown(value: object) -> str:
    """The offending value as JSON, cut short: it may be a client's megabyte of garbage."""
    text = json.dumps(value, default=repr)
    return text if len(text) <= 40 else text[:37] + "..."


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not valid JSON")


def _load_json_list(text: str | bytes) -> list[Any]:
    try:
        data = json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and bad UTF-8 included
        raise ValueError(f"rectangles: not valid JSON ({exc})") from None
    if not isinstance(data, list):
        raise ValueError(f"rectangles: must be a JSON list of objects, got {type(data).__name__}")
    return data


def _parse_rectangle(item: object, where: str) -> Region:
    if not isinstance(item, dict):
        raise ValueError(f"{where}: must be an object with x, y, width, height")
    _check_keys(item, where, required=_RECT_KEYS, optional=())
    return Region(*_read_rectangle(item, f"{where}."), kind="rectangle")


def _check_inside(region: Region, width: int | None, height: int | None, where: str) -> None:
    if width is not None and region.x2 > width:
        raise ValueError(f"{where}: x + width = {region.x2} is outside the image width {width}")
    if height is not None and region.y2 > height:
        raise ValueError(f"{where}: y + height = {region.y2} is outside the image height {height}")


# --- merging: boxes as arrays ---------------------------------------------------------------


class _Boxes(NamedTuple):
    """Boxes as parallel arrays: int64 corners (x2/y2 exclusive), scores, kind codes."""

    x1: np.ndarray
    y1: np.ndarray
    x2: np.ndarray
    y2: np.ndarray
    score: np.ndarray
    kind: np.ndarray

    def take(self, index: Any) -> _Boxes:
        return _Boxes(*(column[index] for column in self))


def _boxes_from_regions(regions: Iterable[Region]) -> tuple[_Boxes, list[str]]:
    kept = [region for region in regions if region.area > 0]
    kinds = sorted({region.kind for region in kept})
    code = {kind: i for i, kind in enumerate(kinds)}
    corners = np.array([(r.x, r.y, r.x2, r.y2) for r in kept], dtype=np.int64).reshape(-1, 4)
    scores = np.array([r.score for r in kept], dtype=np.float64)
    codes = np.array([code[r.kind] for r in kept], dtype=np.intp)
    return _sorted(_from_corners(corners, scores, codes)), kinds


def _from_corners(corners: np.ndarray, scores: np.ndarray, kinds: np.ndarray) -> _Boxes:
    """Boxes from an n x 4 array of (x1, y1, x2, y2)."""
    x1, y1, x2, y2 = corners.T
    return _Boxes(x1, y1, x2, y2, scores, kinds)


def _sorted(boxes: _Boxes) -> _Boxes:
    """Order by (y, x, y2, x2, kind, score) so results never depend on input order."""
    order = np.lexsort((boxes.score, boxes.kind, boxes.x2, boxes.y2, boxes.x1, boxes.y1))
    return boxes.take(order)


def _to_regions(boxes: _Boxes, kinds: list[str]) -> list[Region]:
    columns = [column.tolist() for column in _sorted(boxes)]
    return [
        Region(x, y, x2 - x, y2 - y, score, kinds[kind])
        for x, y, x2, y2, score, kind in zip(*columns, strict=True)
    ]


def _merge_boxes(boxes: _Boxes, kinds: list[str], limit: int) -> list[Region]:
    kinds = [*kinds, MIXED] if MIXED not in kinds else kinds
    mixed = kinds.index(MIXED)
    if len(boxes.x1) > _EXACT_MAX:
        boxes = _group(boxes, _grid_labels(boxes), mixed)
    boxes = _fold(boxes, mixed)
    if len(boxes.x1) > limit:
        boxes = _drop_contained(_GreedyMerge(boxes, mixed).run(limit))
    return _to_regions(boxes, kinds)


def _drop_contained(boxes: _Boxes) -> _Boxes:
    """Drop boxes inside another: greedy unions can swallow a box without merging it.

    Of identical boxes the first is kept. Only run on at most ``limit`` boxes, so the
    n x n comparison is small.
    """
    x1, y1, x2, y2 = (column[:, None] for column in boxes[:4])
    inside = (boxes.x1 <= x1) & (boxes.y1 <= y1) & (x2 <= boxes.x2) & (y2 <= boxes.y2)
    index = np.arange(len(boxes.x1))
    same = inside & inside.T
    inside &= ~same | (index < index[:, None])  # of equal boxes, only later ones count as inside
    return boxes.take(~inside.any(axis=1))


def _group(boxes: _Boxes, labels: np.ndarray, mixed: int) -> _Boxes:
    """One bounding box per label (labels are 0..g-1): max score, kind or ``mixed``."""
    count = int(labels.max()) + 1
    big, small = np.iinfo(np.int64).max, np.iinfo(np.int64).min

    def reduce(ufunc: np.ufunc, values: np.ndarray, start: float) -> np.ndarray:
        out = np.full(count, start, dtype=values.dtype)
        ufunc.at(out, labels, values)
        return out

    kind_lo = reduce(np.minimum, boxes.kind, big)
    kind_hi = reduce(np.maximum, boxes.kind, small)
    return _Boxes(
        reduce(np.minimum, boxes.x1, big),
        reduce(np.minimum, boxes.y1, big),
        reduce(np.maximum, boxes.x2, small),
        reduce(np.maximum, boxes.y2, small),
        reduce(np.maximum, boxes.score, -np.inf),
        np.where(kind_lo == kind_hi, kind_lo, mixed),
    )


def _fold(boxes: _Boxes, mixed: int) -> _Boxes:
    """Union overlapping boxes until none overlap; unions can reach new boxes, so repeat."""
    while len(boxes.x1) > 1:
        labels = _components(len(boxes.x1), _overlapping_pairs(boxes))
        if int(labels.max()) + 1 == len(boxes.x1):
            break
        boxes = _group(boxes, labels, mixed)
    return boxes


def _overlapping_pairs(boxes: _Boxes) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Index pairs of boxes sharing at least one pixel, a block of rows at a time.

    Sorted by x1, the partners of a block can only lie between the block's start and the first
    box starting right of the block's widest x2: a cheap sweep for spread-out boxes.
    """
    order = np.argsort(boxes.x1, kind="stable")
    x1, y1, x2, y2 = (column[order] for column in boxes[:4])
    for start in range(0, len(x1), _BLOCK):
        stop = min(start + _BLOCK, len(x1))
        end = int(np.searchsorted(x1, x2[start:stop].max(), side="left"))
        rows, cols = slice(start, stop), slice(start, end)
        # x1[row] < x2[col] holds for col > row: sorted by x1, and boxes are not empty.
        hit = (x1[cols] < x2[rows, None]) & (y1[cols] < y2[rows, None])
        hit &= y1[rows, None] < y2[cols]
        hit &= np.arange(start, end) > np.arange(start, stop)[:, None]
        row, col = np.nonzero(hit)
        if row.size:
            yield order[row + start], order[col + start]


def _components(count: int, pairs: Iterable[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """Connected-component labels 0..g-1 of a graph given as edge blocks (numpy union-find)."""
    parent = np.arange(count)
    for a, b in pairs:
        _union(parent, a, b)
    _compress(parent)
    return np.unique(parent, return_inverse=True)[1].reshape(-1)


def _compress(parent: np.ndarray) -> None:
    """Point every node straight at its root (roots are the smallest index of their tree)."""
    while True:
        grand = parent[parent]
        if np.array_equal(grand, parent):
            return
        parent[:] = grand


def _union(parent: np.ndarray, a: np.ndarray, b: np.ndarray) -> None:
    """Link the trees of every edge (a[i], b[i]); hooks the larger root under the smaller."""
    while a.size:
        _compress(parent)
        root_a, root_b = parent[a], parent[b]
        apart = root_a != root_b
        a, b, root_a, root_b = a[apart], b[apart], root_a[apart], root_b[apart]
        np.minimum.at(parent, np.maximum(root_a, root_b), np.minimum(root_a, root_b))


def _grid_labels(boxes: _Boxes) -> np.ndarray:
    """Pool boxes by the grid cell of their centre, about _EXACT_MAX / 2 cells in all."""
    side = math.isqrt(_EXACT_MAX // 2)

    def cell(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        centre = (lo + hi) // 2
        span = int(centre.max() - centre.min()) + 1
        return (centre - centre.min()) * side // span

    labels = cell(boxes.y1, boxes.y2) * side + cell(boxes.x1, boxes.x2)
    return np.unique(labels, return_inverse=True)[1].reshape(-1)


# --- merging: greedy least-added-area ---------------------------------------------------------


def _added_area(box: np.ndarray, cols: np.ndarray, overlaps: bool = True) -> np.ndarray:
    """Area a union adds beyond what the two boxes cover: union - a - b + overlap.

    ``box`` and ``cols`` are stacks of (x1, y1, x2, y2, area) along the first axis that
    broadcast against each other, so a block of boxes can be priced against all at once.
    float64 keeps this exact for images below 2**26 pixels a side and cannot overflow.
    ``overlaps=False`` skips the overlap term when the caller knows the boxes are disjoint
    (right after folding), saving a third of the work.
    """
    span = np.maximum(cols[2:4], box[2:4])
    span -= np.minimum(cols[:2], box[:2])
    added = span[0] * span[1]
    added -= cols[4]
    added -= box[4]
    if overlaps:
        common = np.minimum(cols[2:4], box[2:4])
        common -= np.maximum(cols[:2], box[:2])
        np.maximum(common, 0, out=common)
        added += common[0] * common[1]
    return added


class _GreedyMerge:
    """Merge the cheapest pair until few enough boxes remain.

    Live boxes sit packed in float64 slot arrays (a dead box's slot takes the last one), so
    each pricing pass is one numpy sweep over exactly the live boxes. Boxes have stable ids;
    the heap holds (cost, owner, partner, version) for each owner's ``_NEIGHBOURS`` cheapest
    partners at the time its list was made. A pair's cost never changes while both live, so
    the first live pair popped is a cheapest pair, provided an owner whose whole list went
    stale is re-priced: that is what ``remaining`` tracks.
    """

    def __init__(self, boxes: _Boxes, mixed: int) -> None:
        count = len(boxes.x1)
        self.mixed = mixed
        corners = np.stack(boxes[:4], axis=1).tolist()
        self.coords: list[tuple[int, int, int, int]] = [tuple(row) for row in corners]
        self.scores: list[float] = boxes.score.tolist()
        self.kinds: list[int] = boxes.kind.tolist()
        x1, y1, x2, y2 = boxes[:4]
        area = (x2 - x1) * (y2 - y1)
        self.slots = np.array([x1, y1, x2, y2, area], dtype=np.float64)  # 5 x n
        self.id_at = list(range(count))
        self.slot_of = list(range(count))
        self.live = count
        self.version = [0] * count
        self.remaining = [0] * count
        self.heap: list[tuple[float, int, int, int]] = []
        self._price_all()

    def run(self, limit: int) -> _Boxes:
        while self.live > limit:  # every live box keeps >= 1 entry, so the heap never empties
            _, owner, partner, version = heapq.heappop(self.heap)
            if self.slot_of[owner] < 0 or version != self.version[owner]:
                continue
            self.remaining[owner] -= 1
            if self.slot_of[partner] >= 0:
                self._merge(owner, partner)
            elif self.remaining[owner] == 0:
                self._reprice(owner)
        return self._result()

    def _reprice(self, box_id: int) -> None:
        """Price one live box against all live boxes and push its cheapest partners."""
        slot = self.slot_of[box_id]
        costs = _added_area(self.slots[:, slot, None], self.slots[:, : self.live])
        costs[slot] = np.inf
        best = _cheapest_in_row(costs, min(_NEIGHBOURS, self.live - 1))
        for entry in self._entries(box_id, best.tolist(), costs[best].tolist()):
            heapq.heappush(self.heap, entry)

    def _price_all(self) -> None:
        """Initial lists, a block of owners at a time; all boxes are disjoint after folding."""
        keep = min(_NEIGHBOURS, self.live - 1)
        for start in range(0, self.live, _PRICE_BLOCK):
            stop = min(start + _PRICE_BLOCK, self.live)
            block = self.slots[:, start:stop, None]
            costs = _added_area(block, self.slots[:, None, :], overlaps=False)
            rows = np.arange(stop - start)
            costs[rows, rows + start] = np.inf
            rows, cols = _cheapest(costs, keep)
            slots, values = cols.reshape(-1, keep).tolist(), costs[rows, cols].reshape(-1, keep)
            for row, (row_slots, row_costs) in enumerate(zip(slots, values.tolist(), strict=True)):
                self.heap += self._entries(start + row, row_slots, row_costs)
        heapq.heapify(self.heap)

    def _entries(
        self, box_id: int, slots: list[int], costs: list[float]
    ) -> list[tuple[float, int, int, int]]:
        """Heap entries of a new list version for ``box_id``; older versions become stale."""
        version = self.version[box_id] + 1
        self.version[box_id] = version
        self.remaining[box_id] = len(slots)
        id_at = self.id_at
        pairs = zip(slots, costs, strict=True)
        return [(cost, box_id, id_at[slot], version) for slot, cost in pairs]

    def _merge(self, a: int, b: int) -> None:
        box = _bounding(self.coords[a], self.coords[b])
        self._kill(a)
        self._kill(b)
        self._add(box, [a, b])

    def _kill(self, box_id: int) -> None:
        slot, last = self.slot_of[box_id], self.live - 1
        moved = self.id_at[last]
        self.slots[:, slot] = self.slots[:, last]
        self.id_at[slot], self.slot_of[moved] = moved, slot
        self.slot_of[box_id] = -1
        self.live = last

    def _add(self, box: tuple[int, int, int, int], members: list[int]) -> None:
        box_id = len(self.coords)
        kinds = {self.kinds[m] for m in members}
        self.coords.append(box)
        self.scores.append(max(self.scores[m] for m in members))
        self.kinds.append(kinds.pop() if len(kinds) == 1 else self.mixed)
        self.version.append(0)
        self.remaining.append(0)
        slot = self.live
        self.slots[:, slot] = (*box, (box[2] - box[0]) * (box[3] - box[1]))
        self.id_at[slot:] = [box_id]  # slots past `live` are free
        self.slot_of.append(slot)
        self.live += 1
        self._reprice(box_id)

    def _result(self) -> _Boxes:
        ids = self.id_at[: self.live]
        corners = np.array([self.coords[i] for i in ids], dtype=np.int64).reshape(-1, 4)
        scores = np.array([self.scores[i] for i in ids], dtype=np.float64)
        return _from_corners(corners, scores, np.array([self.kinds[i] for i in ids], dtype=np.intp))


def _cheapest(costs: np.ndarray, keep: int) -> tuple[np.ndarray, np.ndarray]:
    """(rows, cols) of the ``keep`` smallest costs of every row, row by row, cheapest first.

    Exact but cheaper than argpartition over whole rows: the keep-th smallest of the minima
    of ``_CHUNK``-wide chunks bounds the keep-th smallest cost from above, and usually leaves
    a handful of candidates to sort. Ties go to the lower column, so results are stable.
    """
    count, width = costs.shape
    full = width - width % _CHUNK
    threshold = np.full(count, np.inf)
    if full // _CHUNK > keep:
        minima = costs[:, :full].reshape(count, -1, _CHUNK).min(axis=2)
        threshold = np.partition(minima, keep - 1, axis=1)[:, keep - 1]
    rows, cols = np.nonzero(costs <= threshold[:, None])
    order = np.lexsort((cols, costs[rows, cols], rows))
    rows, cols = rows[order], cols[order]
    rank = np.arange(len(rows)) - np.searchsorted(rows, rows)
    return rows[rank < keep], cols[rank < keep]


def _cheapest_in_row(costs: np.ndarray, keep: int) -> np.ndarray:
    """`_cheapest` for one row, with a third of the numpy calls: it runs once per merge."""
    full = len(costs) - len(costs) % _CHUNK
    if full // _CHUNK > keep:
        minima = costs[:full].reshape(-1, _CHUNK).min(axis=1)
        candidates = np.flatnonzero(costs <= np.partition(minima, keep - 1)[keep - 1])
    else:
        candidates = np.arange(len(costs))
    return candidates[np.argsort(costs[candidates], kind="stable")[:keep]]


def _bounding(
    a: tuple[int, int, int, int], b: tuple[int, int, int, int]
) -> tuple[int, int, int, int]:
    return min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3])
