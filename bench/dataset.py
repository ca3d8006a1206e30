"""The detection benchmark's image sets, generated from seeds: nothing is stored or committed.

A set is a list of small `ItemSpec`s (kind, index, seed); `build(spec)` turns one into a
`Sample`: the watermarked (or clean) image with its exact truth (bench/synth.py's Composite),
encoded as JPEG (quality 80-95), PNG or WebP (quality 80-95), so the detector sees real
compression artefacts. Same spec -> same bytes on the same library versions.

Two sets, kept apart by seed AND by photo (see SPLITS): "tune" is for choosing thresholds,
"report" for the figures in bench/detect-report.md. `quick=True` takes the first items of each
kind of the full set (a subset with the same seeds).

Kinds: corner_text (every fifth one CJK text, when a CJK font is present), logo, logo_text,
tiled, folder (groups of 12-20 images sharing one mark), clean (ordinary photos) and clean_hard
(scene text on signs, printed pages, fine textures, frames and borders, bright skies, dark
corners, cartoon-like renderings; see HARD).
"""

from __future__ import annotations

import argparse
import io
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image, ImageDraw

import synth

SET_SEEDS = {"report": 20261125, "tune": 7700417}
KINDS = ("corner_text", "logo", "logo_text", "tiled", "folder", "clean", "clean_hard")
WATERMARKED = ("corner_text", "logo", "logo_text", "tiled", "folder")
CLEAN = ("clean", "clean_hard")
FULL_COUNTS = {"corner_text": 70, "logo": 50, "logo_text": 30, "tiled": 30, "folder": 6,
               "clean": 100, "clean_hard": 63}  # folder: number of folders (12-20 images each)
QUICK_COUNTS = {"corner_text": 10, "logo": 8, "logo_text": 5, "tiled": 5, "folder": 1,
                "clean": 13, "clean_hard": 10}
FOLDER_MARKS = ("corner_text", "logo", "logo_text")  # folder g's mark: FOLDER_MARKS[g % 3]
CJK_EVERY = 5  # corner_text items with index % 5 == 4 are CJK (dropped without a CJK font)
SIZES = ((640, 480), (800, 600), (1024, 768), (1152, 864), (1280, 960), (1600, 1200),
         (2048, 1536), (480, 640), (768, 1024), (1200, 1600))
SPEED_SIZE = (1152, 864)  # 0.995 MP: the speed target is on 1-MP JPEGs
HARD = ("sign", "page", "texture", "frame", "sky", "dark", "cartoon")
RGB = tuple[int, int, int]


@dataclass(frozen=True)
class Split:
    """The photos one set may use; the two sets share none."""

    photos: tuple[str, ...]  # ordinary photos: clean images, most watermark bases
    textures: tuple[str, ...]  # fine textures: clean_hard, and a quarter of watermark bases
    sky: str  # its top rows are the bright-sky case
    dark: str  # shown whole, letterboxed in black (dark corners)
    paper: str | None  # a photo of writing on paper, pasted as a page


SPLITS = {
    "report": Split(("astronaut", "coffee", "camera", "coins"), ("brick", "gravel"),
                    "camera", "retina", "text"),
    "tune": Split(("chelsea", "rocket", "hubble_deep_field", "clock"),
                  ("grass", "immunohistochemistry", "cell"), "rocket", "hubble_deep_field",
                  None),
}
# scikit-image photos beyond synth.py's tables, with the terms their docstrings state
EXTRA_PHOTOS = {"retina": "CC0 (Mikael Häggström, via Wikimedia Commons)",
                "text": "public domain (Wikipedia, File:Corner.png)",
                "immunohistochemistry": "no known copyright restrictions (CMMI)",
                "cell": "CC0 (Paul Müller et al.)"}


@dataclass(frozen=True)
class ItemSpec:
    """One image of a set, before it is drawn: cheap to list, to pickle and to sort."""

    set: str
    kind: str  # one of KINDS, or "speed" (1-MP JPEGs timed apart)
    index: int
    seed: int
    group: int = -1  # folder number (folder kind only)

    @property
    def name(self) -> str:
        return f"{self.set}-{self.kind}-{self.group}-{self.index:03d}" if self.group >= 0 \
            else f"{self.set}-{self.kind}-{self.index:03d}"


@dataclass(frozen=True)
class Sample:
    """A drawn item: truth at full resolution, the encoded file, and what was drawn."""

    spec: ItemSpec
    comp: synth.Composite
    data: bytes
    attrs: dict[str, Any]


def seed_of(set_name: str, kind: str, *index: int) -> int:
    """A 32-bit seed from the set, the kind and the item's index (independent streams)."""
    kind_id = (*KINDS, "speed").index(kind)
    seq = np.random.SeedSequence([SET_SEEDS[set_name], kind_id, *index])
    return int(seq.generate_state(1)[0])


def specs(set_name: str, *, quick: bool = False, cjk: bool = True,
          kinds: tuple[str, ...] = KINDS) -> list[ItemSpec]:
    """Every item of a set, kind by kind (folders member by member)."""
    counts = QUICK_COUNTS if quick else FULL_COUNTS
    out: list[ItemSpec] = []
    for kind in kinds:
        if kind == "folder":
            out += [s for g in range(counts[kind]) for s in folder_specs(set_name, g)]
            continue
        for i in range(counts[kind]):
            if kind == "corner_text" and is_cjk(i) and not cjk:
                continue
            out.append(ItemSpec(set_name, kind, i, seed_of(set_name, kind, i)))
    return out


def folder_specs(set_name: str, group: int) -> list[ItemSpec]:
    """The 12-20 members of one folder."""
    size = int(np.random.default_rng(seed_of(set_name, "folder", group)).integers(12, 21))
    return [ItemSpec(set_name, "folder", j, seed_of(set_name, "folder", group, j), group)
            for j in range(size)]


def units(items: list[ItemSpec]) -> list[list[ItemSpec]]:
    """Work units: a folder's members together (folder evidence needs them all), others alone;
    folders first, as they are the longest units."""
    folders: dict[int, list[ItemSpec]] = {}
    singles = []
    for spec in items:
        if spec.kind == "folder":
            folders.setdefault(spec.group, []).append(spec)
        else:
            singles.append([spec])
    return list(folders.values()) + singles


def speed_specs(set_name: str, n: int) -> list[ItemSpec]:
    return [ItemSpec(set_name, "speed", i, seed_of(set_name, "speed", i)) for i in range(n)]


def is_cjk(index: int) -> bool:
    return index % CJK_EVERY == CJK_EVERY - 1


# ----------------------------------------------------------------------------- photos


@cache
def photo(name: str) -> np.ndarray:
    """A named photo as read-only RGB uint8 (synth.py's tables, then EXTRA_PHOTOS)."""
    table = dict(synth.photos(optional=False) + synth.gray_photos())
    if name in table:
        return table[name]
    if name not in EXTRA_PHOTOS:
        raise KeyError(f"unknown photo {name!r}")
    from skimage import data

    img = np.asarray(getattr(data, name)())
    img = np.repeat(img[..., None], 3, 2) if img.ndim == 2 else img[..., :3]
    img = np.ascontiguousarray(img, np.uint8)
    img.setflags(write=False)
    return img


def licence(name: str) -> str:
    return EXTRA_PHOTOS.get(name) or synth.photo_licence(name)


def _pick(rng: np.random.Generator, seq: Any) -> Any:
    return seq[int(rng.integers(len(seq)))]


def _size(rng: np.random.Generator) -> tuple[int, int]:
    w, h = _pick(rng, SIZES)
    return int(w), int(h)


def _jitter(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Mild exposure, gamma and (for colour photos) white-balance changes, as cameras differ."""
    gain, gamma = float(rng.uniform(0.85, 1.15)), float(rng.uniform(0.85, 1.15))
    gray = bool(np.array_equal(img[..., 0], img[..., 1]) and np.array_equal(img[..., 1],
                                                                          img[..., 2]))
    balance = np.ones(3) if gray else rng.uniform(0.95, 1.05, 3)
    x = np.arange(256, dtype=np.float64) / 255.0
    out = np.empty_like(img)
    for c in range(3):
        lut = np.clip(np.rint(255.0 * x**gamma * gain * balance[c]), 0, 255).astype(np.uint8)
        out[..., c] = cv2.LUT(np.ascontiguousarray(img[..., c]), lut)
    return out


def _base(rng: np.random.Generator, split: Split, w: int, h: int,
          textures: float = 0.25) -> tuple[np.ndarray, str]:
    """A distinct w x h image from one of the split's photos (or, sometimes, textures)."""
    names = split.textures if rng.random() < textures else split.photos
    name = _pick(rng, names)
    return _jitter(synth.variant(photo(name), rng, w, h), rng), name


# ----------------------------------------------------------------------------- encoding


def encode(rgb: np.ndarray, fmt: str, quality: int | None) -> bytes:
    """Encode with Pillow: JPEG (4:2:0), PNG (level 6) or lossy WebP."""
    buf = io.BytesIO()
    im = Image.fromarray(rgb)
    if fmt == "JPEG":
        im.save(buf, "JPEG", quality=quality)
    elif fmt == "PNG":
        im.save(buf, "PNG", compress_level=6)
    else:
        im.save(buf, "WEBP", quality=quality, method=4)
    return buf.getvalue()


def _format(rng: np.random.Generator) -> tuple[str, int | None]:
    """JPEG half the time, PNG and WebP a quarter each; lossy quality 80-95."""
    r, q = float(rng.random()), int(rng.integers(80, 96))
    return ("JPEG", q) if r < 0.5 else ("PNG", None) if r < 0.75 else ("WEBP", q)


# ----------------------------------------------------------------------------- building


def build(spec: ItemSpec, cjk_font: str | None = None) -> Sample:
    """Draw one item of a set (deterministic in spec)."""
    maker: Callable[[ItemSpec, str | None], Sample] = {
        "folder": _folder_item, "clean": _clean_item, "clean_hard": _hard_item,
        "speed": _speed_item}.get(spec.kind, _marked_item)
    return maker(spec, cjk_font)


def _finish(spec: ItemSpec, comp: synth.Composite, rng: np.random.Generator,
            extra: dict[str, Any], fmt: tuple[str, int | None] | None = None) -> Sample:
    """Encode; `fmt` fixes the format (a folder's, the speed files'), the lossy quality is
    still drawn per image."""
    fmt_name, quality = fmt or _format(rng)
    if fmt is not None and quality is not None:
        quality = int(rng.integers(80, 96))
    attrs = {**describe(comp), **extra, "format": fmt_name, "quality": quality}
    return Sample(spec, comp, encode(comp.image, fmt_name, quality), attrs)


def _marked_item(spec: ItemSpec, cjk_font: str | None) -> Sample:
    rng = np.random.default_rng(spec.seed)
    w, h = _size(rng)
    base, name = _base(rng, SPLITS[spec.set], w, h)
    if spec.kind == "corner_text" and is_cjk(spec.index):
        if not cjk_font:
            raise ValueError(f"{spec.name} needs a CJK font")
        comp = synth.corner_text(base, rng, style="cjk", cjk_font=cjk_font)
    else:
        comp = synth.KINDS[spec.kind](base, rng)
    return _finish(spec, comp, rng, {"photo": name})


def _folder_item(spec: ItemSpec, cjk_font: str | None) -> Sample:
    """Folder member j: the folder's mark at its one relative position on a different photo."""
    frng = np.random.default_rng(seed_of(spec.set, "folder", spec.group))
    frng.integers(12, 21)  # the folder's size (see folder_specs)
    w, h = _size(frng)
    fmt = _format(frng)
    mark = synth.shared_mark(frng, w, h, FOLDER_MARKS[spec.group % len(FOLDER_MARKS)])
    rng = np.random.default_rng(spec.seed)
    split = SPLITS[spec.set]
    names = split.photos + split.textures
    name = names[(spec.index + spec.group) % len(names)]
    base = _jitter(synth.variant(photo(name), rng, w, h), rng)
    comp = synth.apply_mark(base, mark)
    return _finish(spec, comp, rng, {"photo": name, "mark_kind": mark.kind,
                                     "folder": spec.group}, fmt)


def _clean_item(spec: ItemSpec, cjk_font: str | None) -> Sample:
    rng = np.random.default_rng(spec.seed)
    w, h = _size(rng)
    base, name = _base(rng, SPLITS[spec.set], w, h, textures=0.0)
    return _finish(spec, synth.no_mark(base), rng, {"photo": name})


def _hard_item(spec: ItemSpec, cjk_font: str | None) -> Sample:
    """A hard clean image; the sub-kind cycles through HARD so each gets the same share."""
    rng = np.random.default_rng(spec.seed)
    w, h = _size(rng)
    hard = HARD[spec.index % len(HARD)]
    img, name = HARD_MAKERS[hard](rng, SPLITS[spec.set], w, h)
    comp = synth.no_mark(np.ascontiguousarray(img))
    return _finish(spec, comp, rng, {"photo": name, "hard": hard})


def _speed_item(spec: ItemSpec, cjk_font: str | None) -> Sample:
    """A 1-MP JPEG, watermarked like the set (or clean), for the speed figure."""
    rng = np.random.default_rng(spec.seed)
    w, h = SPEED_SIZE
    base, name = _base(rng, SPLITS[spec.set], w, h)
    kind = _pick(rng, (*synth.KINDS, "clean", "clean"))
    comp = synth.no_mark(base) if kind == "clean" else synth.KINDS[kind](base, rng)
    return _finish(spec, comp, rng, {"photo": name}, ("JPEG", 90))


def describe(comp: synth.Composite) -> dict[str, Any]:
    """The drawn parameters a breakdown table groups by."""
    p, h = comp.params, comp.image.shape[0]
    out: dict[str, Any] = {k: p[k] for k in ("position", "effect", "style", "opacity", "angle",
                                             "text") if k in p}
    if "colour" in p:
        out["colour"] = colour_class(tuple(p["colour"]))
    if "font_size" in p and comp.kind == "corner_text":
        out["text_height"] = round(p["font_size"] / h, 4)
    if "size" in p:
        out["logo_size"] = p["size"]
    return out


def colour_class(rgb: tuple[int, ...]) -> str:
    """white / black / grey / colour, for breakdowns by mark colour."""
    lo, hi = min(rgb), max(rgb)
    if hi - lo > 24:
        return "colour"
    return "white" if lo >= 200 else "black" if hi <= 55 else "grey"


# ----------------------------------------------------------------------------- hard clean
# Each maker: (rng, split, w, h) -> (RGB image, photo name). Honest constructions from real
# photos; the scene text (signs, pages) is opaque, perspective-warped, shaded and blurred like
# the photo, and belongs to the scene: it is not a watermark and must not be flagged.

SIGN_TEXTS = ("MAIN ST", "OPEN", "EXIT", "Bakery", "Hotel Aurora", "PARKING", "STOP",
              "Platform 3", "No Entry", "SALE -50%", "Pharmacy", "Café Luma", "1st Ave",
              "Museum", "TAXI", "Bus 42", "Coast Rd", "Books & Coffee", "Lumen Studio")
BOARDS: tuple[RGB, ...] = ((245, 245, 240), (0, 105, 60), (25, 60, 150), (120, 70, 30),
                           (190, 25, 25), (245, 200, 0), (20, 20, 20))


def _luma(rgb: RGB) -> float:
    return float(np.array(rgb, np.float32) @ synth.LUMA)


def _sign(rng: np.random.Generator, h: int) -> tuple[np.ndarray, np.ndarray]:
    """A flat sign board (colour, alpha) with one line of text, 2.5-7 % of h high text."""
    text, board = _pick(rng, SIGN_TEXTS), _pick(rng, BOARDS)
    ink = synth.BLACK if _luma(board) > 128 else synth.WHITE
    font = synth._font(_pick(rng, synth.font_paths()), float(rng.uniform(0.025, 0.07)) * h)
    left, top, right, bottom = font.getbbox(text)
    pad = max(3, round(font.size * 0.45))
    size = (int(right - left) + 2 * pad, int(bottom - top) + 2 * pad)
    face, cut = Image.new("RGB", size, board), Image.new("L", size, 0)
    ImageDraw.Draw(cut).rounded_rectangle((0, 0, size[0] - 1, size[1] - 1), pad // 2, fill=255)
    draw = ImageDraw.Draw(face)
    if rng.random() < 0.5:
        q = pad // 4
        draw.rounded_rectangle((q, q, size[0] - 1 - q, size[1] - 1 - q), pad // 3,
                               outline=ink, width=max(1, pad // 6))
    draw.text((pad - left, pad - top), text, font=font, fill=ink)
    return np.asarray(face, np.float32), np.asarray(cut, np.float32) / 255.0


def _page(rng: np.random.Generator, split: Split, w: int, h: int,
          ) -> tuple[np.ndarray, np.ndarray]:
    """A sheet of paper: the split's photo of writing, or lines of small printed text."""
    if split.paper and rng.random() < 0.5:
        img = photo(split.paper).astype(np.float32)
        width = float(rng.uniform(0.25, 0.5)) * w
        size = (round(width), round(width * img.shape[0] / img.shape[1]))
        sheet = cv2.resize(img, size, interpolation=cv2.INTER_AREA)
        return sheet, np.ones(sheet.shape[:2], np.float32)
    paper = tuple(int(v) for v in rng.integers(225, 251, 3))
    font = synth._font(_pick(rng, synth.font_paths()), float(rng.uniform(0.012, 0.025)) * h)
    pw = round(float(rng.uniform(0.2, 0.45)) * w)
    step, n = round(font.size * 1.5), int(rng.integers(4, 10))
    face = Image.new("RGB", (pw, step * (n + 1)), paper)
    draw, ink = ImageDraw.Draw(face), (int(rng.integers(20, 70)),) * 3
    for i in range(n):
        words = " ".join(_pick(rng, synth.WORDS) for _ in range(12))
        while font.getlength(words) > pw * float(rng.uniform(0.6, 0.9)) and " " in words:
            words = words.rsplit(" ", 1)[0]
        draw.text((font.size, step // 2 + i * step), words, font=font, fill=ink)
    return np.asarray(face, np.float32), np.ones((face.height, face.width), np.float32)


def _warp(face: np.ndarray, alpha: np.ndarray, rng: np.random.Generator,
          jitter: float) -> tuple[np.ndarray, np.ndarray]:
    """A random perspective view of a flat patch (corners moved by up to jitter x its size)."""
    ph, pw = alpha.shape
    src = np.array([[0, 0], [pw, 0], [pw, ph], [0, ph]], np.float32)
    dst = src + rng.uniform(-jitter, jitter, (4, 2)).astype(np.float32) * np.array(
        [pw, ph], np.float32)
    dst -= dst.min(0)
    size = (int(np.ceil(dst[:, 0].max())) + 1, int(np.ceil(dst[:, 1].max())) + 1)
    m = cv2.getPerspectiveTransform(src, dst)
    face = cv2.warpPerspective(face, m, size, flags=cv2.INTER_LINEAR)
    return face, cv2.warpPerspective(alpha, m, size, flags=cv2.INTER_LINEAR)


def _shade(face: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Uneven light across the patch, sensor noise and the photo's softness."""
    ph, pw = face.shape[:2]
    angle = float(rng.uniform(0, 2 * np.pi))
    yy, xx = np.mgrid[0:ph, 0:pw].astype(np.float32)
    t = (np.cos(angle) * xx / max(pw, 1) + np.sin(angle) * yy / max(ph, 1)) / 1.5 + 0.5
    lo, hi = float(rng.uniform(0.65, 0.95)), float(rng.uniform(0.95, 1.1))
    out = face * (lo + (hi - lo) * t)[..., None] + rng.normal(0, 2.0, face.shape)
    return cv2.GaussianBlur(out.astype(np.float32), (0, 0), float(rng.uniform(0.4, 1.0)))


def _spot(rng: np.random.Generator, shape: tuple[int, int], patch: tuple[int, int],
          band: float = 0.6) -> tuple[int, int]:
    """Top-left for a patch: with probability `band` inside the top or bottom 22 % band."""
    (h, w), (ph, pw) = shape, patch
    x = int(rng.integers(-pw // 8, max(w - pw + pw // 8, 1)))
    if rng.random() < band:
        top = rng.random() < 0.5
        lo, hi = (0, max(round(0.22 * h) - ph, 1)) if top else (round(0.78 * h), h - ph + 1)
        return x, int(rng.integers(lo, max(hi, lo + 1)))
    return x, int(rng.integers(0, max(h - ph, 1)))


def _place(img: np.ndarray, face: np.ndarray, alpha: np.ndarray, x: int, y: int) -> np.ndarray:
    """Alpha-blend a patch at (x, y), clipped to the image."""
    a, c = synth._paste(img.shape[:2], alpha, face, x, y)
    out = a[..., None] * c + (1 - a[..., None]) * img.astype(np.float32)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def _hard_sign(rng: np.random.Generator, split: Split, w: int, h: int) -> tuple[np.ndarray, str]:
    img, name = _base(rng, split, w, h, textures=0.0)
    for _ in range(int(rng.integers(1, 3))):
        face, alpha = _warp(*_sign(rng, h), rng, 0.08)
        face = _shade(face, rng)
        img = _place(img, face, alpha, *_spot(rng, (h, w), alpha.shape))
    return img, name


def _hard_page(rng: np.random.Generator, split: Split, w: int, h: int) -> tuple[np.ndarray, str]:
    img, name = _base(rng, split, w, h, textures=0.0)
    face, alpha = _warp(*_page(rng, split, w, h), rng, 0.12)
    return _place(img, _shade(face, rng), alpha, *_spot(rng, (h, w), alpha.shape, 0.5)), name


def _hard_texture(rng: np.random.Generator, split: Split, w: int, h: int,
                  ) -> tuple[np.ndarray, str]:
    return _base(rng, split, w, h, textures=1.0)


def _hard_frame(rng: np.random.Generator, split: Split, w: int, h: int) -> tuple[np.ndarray, str]:
    """Strong straight edges at the borders: a print border, a mat with a rule, letterbox
    bars, or a two-photo collage with a gutter."""
    style = _pick(rng, ("border", "mat", "letterbox", "collage"))
    colour = _pick(rng, ((255, 255, 255), (0, 0, 0), (240, 232, 215), (60, 60, 60)))
    side = min(w, h)
    t = round(side * float(rng.uniform(0.02, 0.07) if style == "border" else
                            rng.uniform(0.07, 0.14)))
    canvas = np.empty((h, w, 3), np.uint8)
    canvas[:] = (0, 0, 0) if style == "letterbox" else colour
    if style == "letterbox":
        inner, name = _base(rng, split, w, h - 2 * t, textures=0.0)
        canvas[t:h - t] = inner
        return canvas, name
    if style == "collage":
        gutter, half = max(2, t // 3), (w - 2 * t - max(2, t // 3)) // 2
        left, name = _base(rng, split, half, h - 2 * t, textures=0.0)
        right, _ = _base(rng, split, half, h - 2 * t, textures=0.0)
        canvas[t:h - t, t:t + half], canvas[t:h - t, t + half + gutter:t + 2 * half + gutter] = \
            left, right
        return canvas, name
    inner, name = _base(rng, split, w - 2 * t, h - 2 * t, textures=0.0)
    canvas[t:h - t, t:w - t] = inner
    if style == "mat":
        rule = max(1, side // 300)
        cv2.rectangle(canvas, (t - rule - 1, t - rule - 1), (w - t + rule, h - t + rule),
                      (30, 30, 30), rule)
    return canvas, name


def _hard_sky(rng: np.random.Generator, split: Split, w: int, h: int) -> tuple[np.ndarray, str]:
    """The top rows of the split's sky photo (the brightest of four crops), brightened: a
    bright, nearly flat sky over a little scenery."""
    src = photo(split.sky)
    top = src[:round(src.shape[0] * float(rng.uniform(0.3, 0.5)))]
    crops = [synth.variant(top, rng, w, h) for _ in range(4)]
    img = max(crops, key=lambda c: float(c.mean()))
    x = np.arange(256, dtype=np.float64) / 255.0
    lut = np.clip(np.rint(255 * x ** float(rng.uniform(0.45, 0.9)) * rng.uniform(1.0, 1.15)),
                  0, 255).astype(np.uint8)
    return cv2.LUT(img, lut), split.sky


def _hard_dark(rng: np.random.Generator, split: Split, w: int, h: int) -> tuple[np.ndarray, str]:
    """Dark corners: a strong lens vignette on an underexposed photo, or the split's dark
    photo shown whole on black."""
    if rng.random() < 0.4:
        src = photo(split.dark)
        f = min(w / src.shape[1], h / src.shape[0]) * float(rng.uniform(0.85, 1.0))
        small = cv2.resize(src, (round(src.shape[1] * f), round(src.shape[0] * f)),
                           interpolation=cv2.INTER_AREA)
        canvas = np.zeros((h, w, 3), np.uint8)
        y, x = (h - small.shape[0]) // 2, (w - small.shape[1]) // 2
        canvas[y:y + small.shape[0], x:x + small.shape[1]] = small
        return canvas, split.dark
    img, name = _base(rng, split, w, h, textures=0.0)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    r2 = ((xx - w / 2) / (w / 2)) ** 2 + ((yy - h / 2) / (h / 2)) ** 2
    fall = np.clip(1.15 - float(rng.uniform(0.45, 0.6)) * r2, 0.03, 1) ** 2
    dark = (img.astype(np.float32) / 255) ** float(rng.uniform(1.1, 1.7)) * 255
    return np.clip(np.rint(dark * fall[..., None]), 0, 255).astype(np.uint8), name


def _hard_cartoon(rng: np.random.Generator, split: Split, w: int, h: int,
                  ) -> tuple[np.ndarray, str]:
    """A cartoon-like rendering: flat colours (edge-preserving smoothing, quantised) and
    black ink outlines, as in comics and posters."""
    img, name = _base(rng, split, w, h, textures=0.0)
    small = cv2.resize(img, (w // 2, h // 2), interpolation=cv2.INTER_AREA)
    for _ in range(2):
        small = cv2.bilateralFilter(small, 9, 60, 7)
    q = int(rng.integers(36, 72))
    flat = cv2.resize((small // q) * q + q // 2, (w, h), interpolation=cv2.INTER_NEAREST)
    gray = cv2.medianBlur(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY), 7)
    edges = cv2.adaptiveThreshold(gray, 255, cv2.ADAPTIVE_THRESH_MEAN_C, cv2.THRESH_BINARY,
                                  9 + 2 * (min(w, h) // 400), 4)
    return np.where(edges[..., None] > 0, flat, 0).astype(np.uint8), name


HARD_MAKERS: dict[str, Callable[[np.random.Generator, Split, int, int],
                                tuple[np.ndarray, str]]] = {
    "sign": _hard_sign, "page": _hard_page, "texture": _hard_texture, "frame": _hard_frame,
    "sky": _hard_sky, "dark": _hard_dark, "cartoon": _hard_cartoon}


def save(set_name: str, out: Path, quick: bool = True) -> int:
    """Write a set's images as encoded (and their truth masks as PNG) under `out`, e.g.
    bench/data/ (git-ignored), to look at them; return how many."""
    out.mkdir(parents=True, exist_ok=True)
    found = synth.find_cjk_font()
    cjk = str(found) if found else None
    items = specs(set_name, quick=quick, cjk=cjk is not None)
    for spec in items:
        sample = build(spec, cjk)
        ext = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp"}[sample.attrs["format"]]
        (out / f"{spec.name}.{ext}").write_bytes(sample.data)
        if spec.kind in WATERMARKED:
            Image.fromarray(sample.comp.mask).save(out / f"{spec.name}.mask.png")
    return len(items)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Write a benchmark set's images to a folder.")
    parser.add_argument("out", type=Path, help="folder to write, e.g. bench/data/report")
    parser.add_argument("--set", choices=tuple(SET_SEEDS), default="report")
    parser.add_argument("--full", action="store_true", help="the full set (default: quick)")
    args = parser.parse_args()
    print(f"{save(args.set, args.out, quick=not args.full)} images written to {args.out}")
