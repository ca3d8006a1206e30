"""Regions, merging to the endpoint's 50 rectangles, masks, and strict rectangle parsing."""

from __future__ import annotations

import json
import pickle
import random
import time
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clearmark import _regions
from clearmark._regions import (
    MAX_RECTANGLES,
    Detection,
    Region,
    mask_to_regions,
    merge_regions,
    pad_regions,
    parse_rectangles,
    rectangles_json,
    regions_to_mask,
)

PROPERTY = settings(deadline=None, max_examples=200)


@st.composite
def scenes(draw: st.DrawFn, max_boxes: int = 40) -> tuple[int, int, list[Region]]:
    """An image size and boxes inside it, from sparse to heavily overlapping."""
    width, height = draw(st.integers(1, 120)), draw(st.integers(1, 120))
    boxes = []
    for _ in range(draw(st.integers(0, max_boxes))):
        x, y = draw(st.integers(0, width - 1)), draw(st.integers(0, height - 1))
        w, h = draw(st.integers(1, width - x)), draw(st.integers(1, height - y))
        score = draw(st.floats(0, 1))
        boxes.append(Region(x, y, w, h, score, draw(st.sampled_from(["text", "logo"]))))
    return width, height, boxes


def covered(regions: list[Region], width: int, height: int) -> np.ndarray:
    return regions_to_mask(regions, height, width) > 0


def added_area(a: Region, b: Region) -> int:
    """The merge cost as the spec defines it."""
    overlap_w = max(0, min(a.x2, b.x2) - max(a.x, b.x))
    overlap_h = max(0, min(a.y2, b.y2) - max(a.y, b.y))
    return a.union(b).area - a.area - b.area + overlap_w * overlap_h


def inside(region: Region, width: int, height: int) -> bool:
    return 0 <= region.x < region.x2 <= width and 0 <= region.y < region.y2 <= height


# --- merge_regions properties -----------------------------------------------------------------


@PROPERTY
@given(scenes(), st.one_of(st.integers(1, 5), st.just(MAX_RECTANGLES)))
def test_merge_covers_every_pixel_within_limit_and_image(scene: Any, limit: int) -> None:
    width, height, boxes = scene
    merged = merge_regions(boxes, limit)
    assert len(merged) <= limit
    assert all(inside(region, width, height) for region in merged)
    before, after = covered(boxes, width, height), covered(merged, width, height)
    assert not (before & ~after).any()
    assert merged == sorted(merged, key=lambda r: (r.y, r.x))


@PROPERTY
@given(scenes(), st.integers(1, 6), st.randoms(use_true_random=False))
def test_merge_ignores_input_order(scene: Any, limit: int, rng: random.Random) -> None:
    _, _, boxes = scene
    shuffled = boxes[:]
    rng.shuffle(shuffled)
    assert merge_regions(shuffled, limit) == merge_regions(boxes, limit)


@PROPERTY
@given(scenes())
def test_merge_without_pressure_leaves_no_overlaps_and_keeps_scores(scene: Any) -> None:
    width, height, boxes = scene
    merged = merge_regions(boxes, limit=1000)
    mask = np.zeros((height, width), dtype=np.int32)
    for region in merged:
        mask[region.y : region.y2, region.x : region.x2] += 1
    assert mask.max(initial=0) <= 1
    assert max((r.score for r in merged), default=0) == max((r.score for r in boxes), default=0)


def greedy_reference(boxes: list[Region], limit: int) -> set[tuple[int, int, int, int]] | None:
    """The spec's greedy, O(n^3); None when two pairs tie, since then both answers are right."""
    live = [(r.x, r.y, r.x2, r.y2) for r in merge_regions(boxes, limit=10**6)]
    while len(live) > limit:
        costs = sorted(
            (added_area(as_region(a), as_region(b)), i, j)
            for i, a in enumerate(live)
            for j, b in enumerate(live[:i])
        )
        if len(costs) > 1 and costs[0][0] == costs[1][0]:
            return None
        _, i, j = costs[0]
        merged = as_region(live[i]).union(as_region(live[j]))
        live = [box for k, box in enumerate(live) if k not in (i, j)]
        live.append((merged.x, merged.y, merged.x2, merged.y2))
    return {a for a in live if not any(b != a and contains(b, a) for b in live)}


def as_region(box: tuple[int, int, int, int]) -> Region:
    return Region(box[0], box[1], box[2] - box[0], box[3] - box[1])


def contains(outer: tuple[int, ...], inner: tuple[int, ...]) -> bool:
    x1, y1, x2, y2 = outer
    return x1 <= inner[0] and y1 <= inner[1] and inner[2] <= x2 and inner[3] <= y2


@settings(deadline=None, max_examples=150)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 9000), st.integers(0, 9000), st.integers(1, 900), st.integers(1, 900)
        ),
        min_size=2,
        max_size=30,
    ),
    st.integers(1, 8),
    st.sampled_from([1, 4]),
)
def test_merge_matches_the_plain_greedy(
    boxes: list[tuple[int, ...]], limit: int, neighbours: int
) -> None:
    # Many merges in a row exercise the heap's lazy invalidation; keeping one candidate per
    # box makes every stale entry force a re-pricing, the path most likely to hide a bug.
    regions = [Region(*box) for box in boxes]
    want = greedy_reference(regions, limit)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_regions, "_NEIGHBOURS", neighbours)
        got = merge_regions(regions, limit)
    if want is not None:
        assert {(r.x, r.y, r.x2, r.y2) for r in got} == want


def test_merge_folds_until_stable_since_unions_reach_new_boxes() -> None:
    # a and b overlap; their union reaches c, which neither touched.
    a, b, c = Region(0, 0, 10, 2), Region(8, 0, 2, 10), Region(0, 8, 3, 2)
    assert merge_regions([a, b, c]) == [Region(0, 0, 10, 10)]


def test_merge_adds_less_than_one_bounding_box_for_distant_clusters() -> None:
    left = [Region(x, y, 4, 4, kind="logo") for x in (0, 6, 12) for y in (0, 6)]
    right = [Region(x, y, 4, 4, kind="logo") for x in (900, 906) for y in (700, 706)]
    merged = merge_regions(left + right, limit=2)
    assert merged == [Region(0, 0, 16, 10, kind="logo"), Region(900, 700, 10, 10, kind="logo")]
    naive = merged[0].union(merged[1])
    assert sum(r.area for r in merged) < naive.area / 1000


def test_merge_picks_the_pair_adding_least_area() -> None:
    a, b, c = Region(0, 0, 10, 10), Region(12, 0, 10, 10), Region(0, 40, 10, 10)
    assert merge_regions([c, b, a], limit=2) == [Region(0, 0, 22, 10), c]


def test_merge_cost_counts_overlap_with_an_earlier_union_once() -> None:
    a, b, c = Region(0, 0, 10, 10), Region(12, 0, 10, 10), Region(10, 5, 2, 20)
    d, e = Region(1000, 0, 10, 5), Region(1069, 0, 10, 5)
    # a+b merge first (adds 20); their union overlaps c by 10 pixels, so joining c then adds
    # 300, more than d+e's 295. Forgetting the overlap would price it at 290.
    merged = merge_regions([a, b, c, d, e], limit=3)
    assert merged == [Region(0, 0, 22, 10), Region(1000, 0, 79, 5), c]


def test_merge_scores_and_kinds() -> None:
    text, logo = Region(0, 0, 5, 5, 0.2, "text"), Region(3, 3, 5, 5, 0.9, "logo")
    assert merge_regions([text, logo]) == [Region(0, 0, 8, 8, 0.9, "mixed")]
    assert merge_regions([text, Region(4, 0, 5, 5, 0.5)]) == [Region(0, 0, 9, 5, 0.5, "text")]


def test_merge_drops_empty_and_accepts_empty_input() -> None:
    assert merge_regions([]) == []
    assert merge_regions([Region(3, 3, 0, 5)]) == []


@pytest.mark.parametrize("limit", [0, -1, True, 2.0])
def test_limit_must_be_a_positive_int(limit: Any) -> None:
    with pytest.raises(ValueError, match="limit"):
        merge_regions([Region(0, 0, 1, 1)], limit)
    with pytest.raises(ValueError, match="limit"):
        mask_to_regions(np.zeros((4, 4), np.uint8), limit=limit)


@pytest.mark.slow
def test_merge_5000_boxes_is_not_quadratic_in_python() -> None:
    rng = np.random.default_rng(7)
    x, y = rng.integers(0, 3990, 5000), rng.integers(0, 3990, 5000)
    w, h = rng.integers(1, 10, 5000), rng.integers(1, 10, 5000)
    boxes = [Region(*map(int, box)) for box in zip(x, y, w, h, strict=True)]
    start = time.perf_counter()
    merged = merge_regions(boxes)
    assert time.perf_counter() - start < 5.0  # about 0.6 s on a slow CI core
    assert len(merged) == MAX_RECTANGLES
    assert not (covered(boxes, 4000, 4000) & ~covered(merged, 4000, 4000)).any()


def test_huge_noisy_mask_is_pooled_quickly() -> None:
    noise = (np.random.default_rng(3).random((1500, 1500)) < 0.05).astype(np.uint8)
    start = time.perf_counter()
    regions = mask_to_regions(noise * 255, limit=10)
    assert time.perf_counter() - start < 5.0
    assert len(regions) <= 10
    assert not (noise.astype(bool) & ~covered(regions, 1500, 1500)).any()


# --- masks and padding ------------------------------------------------------------------------


@PROPERTY
@given(scenes(), st.integers(1, 60))
def test_mask_to_regions_covers_the_mask(scene: Any, limit: int) -> None:
    width, height, boxes = scene
    mask = regions_to_mask(boxes, height, width)
    regions = mask_to_regions(mask, limit=limit, kind="logo")
    assert len(regions) <= limit
    assert all(inside(r, width, height) and r.kind in ("logo", "mixed") for r in regions)
    assert not ((mask > 0) & ~covered(regions, width, height)).any()


def test_mask_to_regions_uses_8_connectivity_and_min_area() -> None:
    mask = np.zeros((10, 10), dtype=bool)
    mask[0, 0] = mask[1, 1] = True  # diagonal neighbours: one component
    mask[5:8, 5:8] = True
    mask[9, 0] = True  # a speckle
    found = mask_to_regions(mask, min_area=2)
    assert found == [Region(0, 0, 2, 2, kind="mask"), Region(5, 5, 3, 3, kind="mask")]
    assert mask_to_regions(np.zeros((0, 5), np.uint8)) == []


def test_regions_to_mask_clamps_and_is_0_or_255() -> None:
    mask = regions_to_mask([Region(-5, -5, 8, 8), Region(8, 8, 50, 50)], 10, 12)
    assert mask.dtype == np.uint8 and mask.shape == (10, 12)
    assert set(np.unique(mask).tolist()) == {0, 255}
    assert (mask > 0).sum() == 9 + 2 * 4


@PROPERTY
@given(scenes(), st.integers(-3, 30))
def test_pad_regions_stay_inside_and_cover_the_padded_box(scene: Any, pad: int) -> None:
    width, height, boxes = scene
    padded = pad_regions(boxes, pad, width, height)
    assert all(inside(r, width, height) for r in padded)
    want = covered([b.padded(pad) for b in boxes], width, height)
    assert (covered(padded, width, height) == want).all()


def test_padded_and_clamped() -> None:
    region = Region(2, 3, 4, 5, 0.5, "logo")
    assert region.padded(2) == Region(0, 1, 8, 9, 0.5, "logo")
    assert region.padded(-3) == Region(5, 6, 0, 0, 0.5, "logo")
    assert region.padded(5).clamped(6, 7) == Region(0, 0, 6, 7, 0.5, "logo")
    assert region.clamped(2, 100) is None
    assert Region(-4, -4, 4, 4).clamped(10, 10) is None


# --- Region and Detection shapes --------------------------------------------------------------


def test_region_dicts_are_json_ready_python_types() -> None:
    region = Region(np.int64(1), np.int32(2), np.uint16(3), 4, np.float32(0.123456), "logo")
    data = region.to_dict()
    assert data == {"x": 1, "y": 2, "width": 3, "height": 4, "score": 0.1235, "kind": "logo"}
    assert [type(v) for v in data.values()] == [int, int, int, int, float, str]
    assert region.rectangle() == {"x": 1, "y": 2, "width": 3, "height": 4}
    assert (region.x2, region.y2, region.area) == (4, 6, 12)
    assert Region.from_dict(json.loads(json.dumps(data))) == Region(1, 2, 3, 4, 0.1235, "logo")


@pytest.mark.parametrize("bad", [1.0, True, "1", None])
def test_region_rejects_non_integer_coordinates(bad: Any) -> None:
    with pytest.raises(TypeError, match=r"Region\.x"):
        Region(bad, 0, 1, 1)
    with pytest.raises(ValueError, match="size"):
        Region(0, 0, -1, 1)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"x": 0, "y": 0, "width": 1}, "Region: missing key 'height'"),
        ({"x": 0, "y": 0, "width": 1, "height": 1, "w": 2}, "unexpected key 'w'"),
        ({"x": -1, "y": 0, "width": 1, "height": 1}, "Region.x: must be a non-negative"),
        ({"x": 0, "y": 0, "width": 1.0, "height": 1}, "Region.width: must be a positive"),
        ({"x": 0, "y": 0, "width": 1, "height": 1, "score": 1.5}, "Region.score"),
        ({"x": 0, "y": 0, "width": 1, "height": 1, "score": True}, "Region.score"),
        ({"x": 0, "y": 0, "width": 1, "height": 1, "kind": ""}, "Region.kind"),
        ([1, 2, 3, 4], "Region: must be a mapping"),
    ],
)
def test_region_from_dict_is_strict(data: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Region.from_dict(data)


def test_region_union() -> None:
    union = Region(0, 0, 2, 2, 0.3, "text").union(Region(5, 1, 1, 4, 0.7, "text"))
    assert union == Region(0, 0, 6, 5, 0.7, "text")
    assert Region(0, 0, 1, 1, kind="logo").union(Region(0, 0, 1, 1)).kind == "mixed"


def test_regions_and_detections_pickle_for_worker_processes() -> None:
    detection = make_detection([Region(1, 2, 3, 4, 0.5, "logo")])
    clone = pickle.loads(pickle.dumps(detection))
    assert clone.regions == detection.regions and (clone.mask == detection.mask).all()


def make_detection(regions: list[Region], shape: tuple[int, int] = (480, 640)) -> Detection:
    mask = regions_to_mask(regions, *shape)
    return Detection(watermarked=bool(regions), score=0.9, regions=tuple(regions), mask=mask)


def test_detection_rectangles_merge_past_the_endpoint_limit() -> None:
    regions = [Region(x, y, 5, 5) for x in range(0, 600, 50) for y in range(0, 450, 45)]
    detection = make_detection(regions)
    assert len(regions) > MAX_RECTANGLES
    rectangles = detection.rectangles()
    assert 0 < len(rectangles) <= MAX_RECTANGLES
    assert all(set(r) == {"x", "y", "width", "height"} for r in rectangles)
    merged = parse_rectangles(json.dumps(rectangles), width=640, height=480)
    assert not (covered(regions, 640, 480) & ~covered(merged, 640, 480)).any()
    assert len(detection.rectangles(limit=3)) <= 3


def test_detection_rectangles_are_clamped_to_the_image() -> None:
    mask = np.zeros((20, 30), np.uint8)
    detection = Detection(watermarked=True, score=1.0, regions=(Region(-3, 10, 40, 40),), mask=mask)
    assert detection.rectangles() == [{"x": 0, "y": 10, "width": 30, "height": 10}]


def test_detection_to_dict_and_short_repr() -> None:
    detection = make_detection([Region(1, 2, 3, 4, 0.56789)], shape=(1000, 1000))
    assert detection.to_dict() == {
        "watermarked": True,
        "score": 0.9,
        "regions": [{"x": 1, "y": 2, "width": 3, "height": 4, "score": 0.5679, "kind": "text"}],
    }
    json.dumps(detection.to_dict())
    text = repr(detection)
    assert len(text) < 120 and "1000x1000" in text and "regions=1" in text


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"score": 1.5}, "score"),
        ({"mask": np.zeros((4, 4, 3), np.uint8)}, "2-D uint8"),
        ({"mask": np.zeros((4, 4), np.float32)}, "2-D uint8"),
    ],
)
def test_detection_validates(kwargs: dict[str, Any], message: str) -> None:
    fields: dict[str, Any] = {"watermarked": False, "score": 0.1, "regions": ()}
    fields["mask"] = np.zeros((4, 4), np.uint8)
    with pytest.raises(ValueError, match=message):
        Detection(**(fields | kwargs))


# --- the endpoint's rectangles field ----------------------------------------------------------


@PROPERTY
@given(scenes(max_boxes=MAX_RECTANGLES))
def test_rectangles_json_round_trips_through_parse(scene: Any) -> None:
    width, height, boxes = scene
    text = rectangles_json(boxes)
    assert " " not in text
    parsed = parse_rectangles(text.encode(), width=width, height=height)
    assert [r.rectangle() for r in parsed] == [r.rectangle() for r in boxes]


def rect(**changes: Any) -> dict[str, Any]:
    return {"x": 1, "y": 2, "width": 3, "height": 4} | changes


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[{", "rectangles: not valid JSON"),
        (b"[\x80]", "rectangles: not valid JSON"),
        ('[{"x": NaN, "y": 0, "width": 1, "height": 1}]', "not valid JSON"),
        ('{"x": 0}', "rectangles: must be a JSON list"),
        (json.dumps([rect()] * 51), "rectangles: at most 50 rectangles allowed, got 51"),
        (json.dumps([rect(), 5]), r"rectangles\[1\]: must be an object"),
        (json.dumps([rect(), [1, 2, 3, 4]]), r"rectangles\[1\]: must be an object"),
        (json.dumps([{"x": 0, "y": 0, "width": 1}]), r"rectangles\[0\]: missing key 'height'"),
        (json.dumps([rect(), rect(), rect(z=1)]), r"rectangles\[2\]: unexpected key 'z'"),
        (json.dumps([rect(width=1.0)]), r"rectangles\[0\]\.width: must be a positive integer"),
        (json.dumps([rect(x=True)]), r"rectangles\[0\]\.x: must be a non-negative integer"),
        (json.dumps([rect(y="2")]), r"rectangles\[0\]\.y: must be a non-negative integer"),
        (json.dumps([rect(x=-1)]), r"rectangles\[0\]\.x: must be a non-negative integer"),
        (json.dumps([rect(width=0)]), r"rectangles\[0\]\.width: must be a positive integer"),
        (json.dumps([rect(height=-4)]), r"rectangles\[0\]\.height: must be a positive"),
        (json.dumps([rect(height=2**40)]), r"rectangles\[0\]\.height: must be at most"),
        (json.dumps([rect(), rect(x=98)]), r"rectangles\[1\]: x \+ width = 101 is outside"),
        (json.dumps([rect(y=49)]), r"rectangles\[0\]: y \+ height = 53 is outside the image"),
    ],
)
def test_parse_rectangles_names_the_problem(text: str | bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_rectangles(text, width=100, height=50)


def test_rectangles_field_matches_the_published_example() -> None:
    text = '[{"x":0,"y":0,"width":100,"height":100}]'
    assert rectangles_json([Region(0, 0, 100, 100)]) == text
    assert parse_rectangles(text) == [Region(0, 0, 100, 100, kind="rectangle")]
    assert parse_rectangles("[]") == []
    assert len(parse_rectangles(json.dumps([rect()] * 3), limit=3)) == 3
    with pytest.raises(ValueError, match="at most 2"):
        parse_rectangles(json.dumps([rect()] * 3), limit=2)
