"""Deterministic watermark compositor: the ground truth for clearmark's benchmarks and tests.

A mark is a colour layer C (H x W x 3, float 0..255) and an alpha layer a (H x W, 0..1); the
watermarked image is J = a*C + (1-a)*I, computed in float and rounded once, so detection and
removal are scored against exact truth. Functions are pure and take their randomness as an
explicit np.random.Generator (or int seed): same seed, same machine -> same bytes.

Text is drawn with Pillow from DejaVu fonts (system folders, else matplotlib's copy). CJK text
is drawn only when the caller passes a CJK font path (see find_cjk_font); without one the "cjk"
style is not offered, so results never depend on which extra fonts a machine has.
"""

from __future__ import annotations

import argparse
import importlib.util
import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

RGB = tuple[int, int, int]
Box = tuple[int, int, int, int]
Layers = tuple[np.ndarray, np.ndarray, list[Box], dict[str, Any]]  # alpha, colour, boxes, params
MASK_ALPHA = 0.02  # alpha above which a pixel counts as visibly touched
LUMA = np.array([0.299, 0.587, 0.114], np.float32)
WHITE, BLACK = (255, 255, 255), (0, 0, 0)
FONT_FILES = ("DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSans-Oblique.ttf",
              "DejaVuSerif.ttf", "DejaVuSerif-Bold.ttf", "DejaVuSansMono-Bold.ttf")
FONT_DIRS = ("/usr/share/fonts/truetype/dejavu", "/usr/share/fonts/dejavu",
             "/usr/share/fonts/TTF", "/usr/local/share/fonts", "/Library/Fonts")
CJK_FONTS = ("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
             "/usr/share/fonts/opentype/noto/NotoSansCJK-Bold.ttc",
             "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
             "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc")
WORDS = ("sunny", "days", "pixel", "nova", "luma", "urban", "wild", "frame", "studio", "lens",
         "north", "coast", "amber", "foto", "snap", "vista", "lumen", "aurora", "shots", "view")
NAMES = ("Jane Doe", "Alex Kim", "M. Rossi", "Lena Berg", "Omar Haddad", "Chen Wei", "Ana Silva")
TILE_TEXTS = ("SAMPLE", "© stockphoto", "PREVIEW", "© PhotoStock", "DO NOT COPY", "shutterpix",
              "watermark", "© imagebank.example")
# Photos whose scikit-image docstrings state permissive terms; the others are left out.
SKIMAGE_COLOUR = {"astronaut": "public domain (NASA)", "coffee": "CC0 (Rachel Michetti)",
                  "chelsea": "CC0 (Stefan van der Walt)", "rocket": "public domain (SpaceX)",
                  "hubble_deep_field": "public domain (NASA)"}
SKIMAGE_GRAY = {"camera": "CC0 (Lav Varshney)", "clock": "public domain (Stefan van der Walt)",
                "coins": "no known copyright restrictions (Brooklyn Museum)",
                "brick": "CC0 (CC0Textures)", "grass": "CC0 (linolafett)",
                "gravel": "CC0 (CC0Textures)"}
OPTIONAL_PHOTOS = {  # name: (package, file inside it, licence); used only when installed
    "grace_hopper": ("matplotlib", "mpl-data/sample_data/grace_hopper.jpg",
                     "public domain (US Navy photo, via Wikimedia Commons)"),
    "china": ("sklearn", "datasets/images/china.jpg", "CC BY 2.0 (danielbuechele)"),
    "flower": ("sklearn", "datasets/images/flower.jpg", "CC BY 2.0 (vultilion)"),
}


@dataclass(frozen=True)
class Composite:
    """A watermarked image with its exact truth (alpha, mask, element boxes, draw params)."""

    image: np.ndarray  # H x W x 3 uint8 RGB, watermarked
    clean: np.ndarray  # the original
    alpha: np.ndarray  # H x W float32 in 0..1
    mask: np.ndarray  # H x W uint8 0/255: alpha > MASK_ALPHA
    boxes: tuple[Box, ...]  # x, y, w, h of each mark element (tight to the mask)
    kind: str  # "corner_text", "logo", "logo_text", "tiled", "clean"
    params: dict[str, Any] = field(default_factory=dict)
    colour: np.ndarray | None = None  # H x W x 3 float32: the mark's colour layer (exact)


@dataclass(frozen=True)
class Mark:
    """A mark patch (colour, alpha) reused across a folder at one relative top-left position."""

    colour: np.ndarray
    alpha: np.ndarray
    kind: str
    position: tuple[float, float]
    params: dict[str, Any]


@lru_cache(maxsize=1)
def font_paths() -> tuple[Path, ...]:
    """DejaVu faces in a fixed order, so a seed picks the same face on every machine."""
    dirs = [Path(d) for d in FONT_DIRS]
    spec = importlib.util.find_spec("matplotlib")
    if spec and spec.submodule_search_locations:  # its wheel bundles DejaVu
        dirs.append(Path(spec.submodule_search_locations[0]) / "mpl-data" / "fonts" / "ttf")
    found = [next((d / n for d in dirs if (d / n).is_file()), None) for n in FONT_FILES]
    if found[0] is None:
        raise FileNotFoundError(f"DejaVuSans.ttf not found in {[str(d) for d in dirs]}; "
                                "install fonts-dejavu-core (apt) or matplotlib (pip)")
    return tuple(p or found[0] for p in found)  # a missing face falls back to the regular one


def find_cjk_font() -> Path | None:
    """First CJK font of the usual Debian packages (fonts-noto-cjk, fonts-wqy-*), or None."""
    hits = [Path(p) for p in CJK_FONTS if Path(p).is_file()]
    root = Path("/usr/share/fonts")
    hits += sorted(root.glob("**/*CJK*.tt[cf]")) if root.is_dir() else []
    return hits[0] if hits else None


def _font(path: Path | str, size: float) -> ImageFont.FreeTypeFont:
    """BASIC layout: no dependency on the machine's raqm/fribidi, so glyph placement is stable."""
    return ImageFont.truetype(str(path), max(round(size), 4), layout_engine=ImageFont.Layout.BASIC)


def _over(ta: np.ndarray, tc: Any, ba: np.ndarray, bc: Any) -> tuple[np.ndarray, np.ndarray]:
    """Porter-Duff 'over' of two (alpha, colour) layers, so stacked mark parts stay exact."""
    a = ta + ba * (1.0 - ta)
    num = ta[..., None] * np.asarray(tc, np.float32) + (ba * (1 - ta))[..., None] * np.asarray(
        bc, np.float32)
    return a.astype(np.float32), (num / np.maximum(a, 1e-6)[..., None]).astype(np.float32)


def _render_text(text: str, font: ImageFont.FreeTypeFont, stroke: int = 0) -> np.ndarray:
    """Anti-aliased coverage of one text line with a fixed 6 px pad (room for effects)."""
    left, top, right, bottom = font.getbbox(text)
    img = Image.new("L", (int(right - left) + 12, int(bottom - top) + 12), 0)
    ImageDraw.Draw(img).text((6 - left, 6 - top), text, font=font, fill=255,
                             stroke_width=stroke, stroke_fill=255)
    return np.asarray(img, np.float32) / 255.0


def _text_layer(text: str, font: ImageFont.FreeTypeFont, rgb: RGB, effect: str, k: int,
                ) -> tuple[np.ndarray, np.ndarray]:
    """Text (alpha, colour) with an optional k-px outline or drop shadow in a contrasting
    shade; the effect is part of the mark, so it is in the alpha truth too."""
    fill = _render_text(text, font)
    under = np.zeros_like(fill)
    if effect == "outline":
        under = _render_text(text, font, stroke=k)
    elif effect == "shadow":
        under[k:, k:] = fill[:-k, :-k] * 0.8
    return _over(fill, rgb, under, BLACK if float(np.array(rgb) @ LUMA) > 128 else WHITE)


def _paste(shape: tuple[int, int], a: np.ndarray, c: Any, x: int, y: int,
           base: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Put a patch (colour: array or RGB) at (x, y) on an empty layer, clipped, over `base`."""
    h, w = shape
    c = np.broadcast_to(np.asarray(c, np.float32), (*a.shape, 3))
    full_a, full_c = np.zeros((h, w), np.float32), np.zeros((h, w, 3), np.float32)
    x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + a.shape[1], w), min(y + a.shape[0], h)
    if x1 > x0 and y1 > y0:
        full_a[y0:y1, x0:x1] = a[y0 - y:y1 - y, x0 - x:x1 - x]
        full_c[y0:y1, x0:x1] = c[y0 - y:y1 - y, x0 - x:x1 - x]
    return _over(full_a, full_c, *base) if base is not None else (full_a, full_c)


def _tight(alpha: np.ndarray, box: Box) -> Box | None:
    """Shrink a box to the visibly touched pixels inside it (None if there are none)."""
    x, y, w, h = box
    x0, y0 = max(x, 0), max(y, 0)
    ys, xs = np.nonzero(alpha[y0:max(y + h, 0), x0:max(x + w, 0)] > MASK_ALPHA)
    if not len(xs):
        return None
    return (x0 + int(xs.min()), y0 + int(ys.min()), int(xs.max() - xs.min() + 1),
            int(ys.max() - ys.min() + 1))


def _finish(image: np.ndarray, alpha: np.ndarray, colour: np.ndarray, boxes: list[Box],
            params: dict[str, Any], kind: str) -> Composite:
    """Apply J = a*C + (1-a)*I once in float and round, keeping the truth alongside."""
    j = alpha[..., None] * colour + (1.0 - alpha[..., None]) * image.astype(np.float32)
    out = np.clip(np.rint(j), 0, 255).astype(np.uint8)
    tight = tuple(b for b in (_tight(alpha, b) for b in boxes) if b is not None)
    mask = np.where(alpha > MASK_ALPHA, 255, 0).astype(np.uint8)
    return Composite(out, image.copy(), alpha.astype(np.float32), mask, tight, kind, params,
                     np.broadcast_to(colour, (*alpha.shape, 3)).astype(np.float32))


def no_mark(image: np.ndarray) -> Composite:
    """A clean image in Composite form, for false-positive measurements."""
    h, w = image.shape[:2]
    return _finish(image, np.zeros((h, w), np.float32), np.zeros((h, w, 3), np.float32), [],
                   {}, "clean")


def _pick(rng: np.random.Generator, seq: Any) -> Any:
    return seq[int(rng.integers(len(seq)))]


def _vivid(rng: np.random.Generator) -> RGB:
    """A saturated colour of random hue, as coloured handles and logos use."""
    hsv = np.array([[[rng.integers(180), rng.integers(200, 256), rng.integers(210, 256)]]],
                   np.uint8)
    r, g, b = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0]
    return int(r), int(g), int(b)


def _mark_colour(rng: np.random.Generator) -> RGB:
    """White most often, then black, grey or a saturated colour, as on real photos."""
    r, grey = float(rng.random()), int(rng.integers(90, 200))
    return WHITE if r < 0.45 else BLACK if r < 0.65 else (grey,) * 3 if r < 0.8 else _vivid(rng)


def _legible(rgb: RGB, image: np.ndarray, box: Box) -> RGB:
    """People pick a colour that shows on its spot: swap to white/black where it would not."""
    x, y, w, h = box
    region = image[max(y, 0):y + h, max(x, 0):x + w].reshape(-1, 3)
    if not len(region):
        return rgb
    bg = float(np.median(region @ LUMA))  # median: a few bright lights must not decide
    if abs(float(np.array(rgb) @ LUMA) - bg) >= 90:
        return rgb
    return BLACK if bg > 128 else WHITE


def _credit_text(rng: np.random.Generator, style: str) -> str:
    """A plausible credit line of the given style."""
    a, b, n = _pick(rng, WORDS), _pick(rng, WORDS), int(rng.integers(10**7, 10**8))
    y, m, d, hh, mm = (int(rng.integers(lo, hi)) for lo, hi in
                       ((2005, 2026), (1, 13), (1, 29), (0, 24), (0, 60)))
    return _pick(rng, {
        "handle": (f"@{a}_{b}_{n % 97 + 1}", f"@{a}.{b}", f"@{a}{b}{n % 1000}"),
        "url": (f"www.{a}-{b}.com", f"{a}{b}.net", f"www.{a}{b}.photo"),
        "copyright": (f"© {_pick(rng, NAMES)} {y}", f"© {a.title()} {b.title()} Photography"),
        "date": (f"{y}.{m:02d}.{d:02d}", f"'{y % 100:02d} {m:02d} {d:02d}",
                 f"{y}-{m:02d}-{d:02d} {hh:02d}:{mm:02d}"),
        "cjk": (f"小红书号：{n}", f"微博 @{_pick(rng, ('摄影师小王', '旅行的猫', '光影日记'))}",
                f"抖音号：{a}{n % 1000}"),
    }[style])


def _anchor(rng: np.random.Generator, shape: tuple[int, int], size: tuple[int, int],
            where: str) -> tuple[int, int]:
    """Top-left of a (w, h) patch at "tl"/"tr"/"bl"/"br"/"bc"/"cc", margin 1-4 % of the side."""
    (h, w), (pw, ph) = shape, size
    mx, my = (round(float(rng.uniform(0.01, 0.04)) * s) for s in (w, h))
    x = {"l": mx, "r": w - pw - mx, "c": (w - pw) // 2}[where[1]]
    y = {"t": my, "b": h - ph - my, "c": (h - ph) // 2}[where[0]]
    return int(x), int(y)


def corner_text(image: np.ndarray, rng: np.random.Generator, *, text: str | None = None,
                style: str | None = None, colour: RGB | None = None,
                opacity: float | None = None, position: str | None = None,
                effect: str | None = None, size: float | None = None,
                cjk_font: Path | str | None = None) -> Composite:
    """A credit line in a corner or bottom centre; any option left None is drawn from rng.

    style: handle/url/copyright/date (+ cjk when cjk_font is given); position: tl/tr/bl/br/bc;
    effect: none/shadow/outline (1-2 px); opacity 0.45-1; size: font size as a fraction of the
    image height, 0.025-0.06. A random colour is swapped for white/black where it would not show.
    """
    return _finish(image, *_text_layers(image, rng, text, style, colour, opacity, position,
                                        effect, size, cjk_font), "corner_text")


def _text_layers(image: np.ndarray, rng: np.random.Generator, text: str | None = None,
                 style: str | None = None, colour: RGB | None = None,
                 opacity: float | None = None, position: str | None = None,
                 effect: str | None = None, size: float | None = None,
                 cjk_font: Path | str | None = None) -> Layers:
    h, w = image.shape[:2]
    styles = ("handle", "url", "copyright", "date") + (("cjk",) if cjk_font else ())
    style = style or _pick(rng, styles)
    text = text or _credit_text(rng, style)
    auto = colour is None
    colour = colour or (_pick(rng, ((255, 150, 20), (255, 210, 40))) if style == "date"
                        else _mark_colour(rng))
    opacity = float(rng.uniform(0.45, 1.0)) if opacity is None else opacity
    position = position or _pick(rng, ("tl", "tr", "bl", "br", "bc"))
    effect, k = effect or _pick(rng, ("none", "none", "shadow", "outline")), int(rng.integers(1, 3))
    if style == "cjk" and not cjk_font:
        raise ValueError("style='cjk' needs cjk_font (see find_cjk_font)")
    path: Path | str = cjk_font if style == "cjk" and cjk_font else _pick(rng, font_paths())
    size = (float(rng.uniform(0.025, 0.06)) if size is None else size) * h
    while _font(path, size).getlength(text) > 0.9 * w and size > 6:
        size *= 0.9
    font = _font(path, size)
    ph, pw = _render_text(text, font).shape
    x, y = _anchor(rng, (h, w), (pw, ph), position)
    colour = _legible(colour, image, (x, y, pw, ph)) if auto else colour
    a, c = _text_layer(text, font, colour, effect, k)
    params = {"text": text, "style": style, "font": Path(path).name, "font_size": font.size,
              "colour": colour, "opacity": opacity, "position": position, "effect": effect,
              "effect_px": 0 if effect == "none" else k, "xy": (x, y)}
    return *_paste((h, w), a * opacity, c, x, y), [(x, y, pw, ph)], params


def _star(cx: float, cy: float, r: float, n: int, inner: float) -> list[tuple[float, float]]:
    """Vertices of an n-point star (inner radius ratio `inner`)."""
    return [(cx + r * (1 if i % 2 == 0 else inner) * math.sin(math.pi * i / n),
             cy - r * (1 if i % 2 == 0 else inner) * math.cos(math.pi * i / n))
            for i in range(2 * n)]


def _logo_canvas(rng: np.random.Generator, s: int = 400) -> tuple[np.ndarray, np.ndarray, dict]:
    """A logo drawn large (emblem s px: outer shape + knocked-out or filled motif, maybe a word
    under it) as two alpha layers (emblem, word), to be downsampled for anti-aliasing."""
    img = Image.new("L", (s, s), 0)
    d = ImageDraw.Draw(img)
    outer = _pick(rng, ("circle", "ring", "shield", "star", "hexagon", "square"))
    inner = _pick(rng, ("star", "dot", "letter", "peak", "ring"))
    m, lw, c = s * 0.04, int(s * rng.uniform(0.05, 0.1)), s / 2
    hexagon = [(c + (c - m) * math.cos(math.pi * (i / 3 + 1 / 6)),
                c + (c - m) * math.sin(math.pi * (i / 3 + 1 / 6))) for i in range(6)]
    {"circle": lambda: d.ellipse((m, m, s - m, s - m), fill=255),
     "ring": lambda: d.ellipse((m, m, s - m, s - m), outline=255, width=lw),
     "shield": lambda: d.polygon([(m, m), (s - m, m), (s - m, s * 0.55), (c, s - m),
                                  (m, s * 0.55)], fill=255),
     "star": lambda: d.polygon(_star(c, c, c - m, 5, 0.45), fill=255),
     "hexagon": lambda: d.polygon(hexagon, fill=255),
     "square": lambda: d.rounded_rectangle((m, m, s - m, s - m), s // 6, fill=255)}[outer]()
    ink, r = (255, s * 0.3) if outer == "ring" else (0, s * 0.22)  # knock out of filled shapes
    if inner == "star":
        d.polygon(_star(c, c, r, int(rng.integers(5, 9)), float(rng.uniform(0.4, 0.6))), fill=ink)
    elif inner in ("dot", "ring"):
        q = r * (0.7 if inner == "dot" else 1.0)
        d.ellipse((c - q, c - q, c + q, c + q), fill=ink if inner == "dot" else None,
                  outline=ink, width=max(lw // 2, 4))
    elif inner == "peak":
        d.polygon([(c - r, c + r * 0.6), (c - r * 0.2, c - r * 0.7), (c + r * 0.2, c - r * 0.1),
                   (c + r * 0.5, c - r * 0.5), (c + r, c + r * 0.6)], fill=ink)
    else:
        d.text((c, c), chr(65 + int(rng.integers(26))), font=_font(font_paths()[1], r * 2.2),
               fill=ink, anchor="mm")
    emb, params = np.asarray(img, np.float32) / 255.0, {"outer": outer, "inner": inner}
    if rng.random() < 0.4:
        return emb, np.zeros_like(emb), params
    params["word"] = _pick(rng, WORDS).upper()
    word = _render_text(params["word"], _font(font_paths()[1], s * 0.28))
    if word.shape[1] > 1.4 * s:
        word = cv2.resize(word, (int(1.4 * s), round(word.shape[0] * 1.4 * s / word.shape[1])),
                          interpolation=cv2.INTER_AREA)
    shape = (s + word.shape[0] + s // 20, max(s, word.shape[1]))
    emb = _paste(shape, emb, WHITE, (shape[1] - s) // 2, 0)[0]
    return emb, _paste(shape, word, WHITE, (shape[1] - word.shape[1]) // 2, s + s // 20)[0], params


def _shrink(parts: tuple[np.ndarray, ...], px: float) -> tuple[np.ndarray, ...]:
    """Area-downsample same-shaped alpha layers so their longer side is px."""
    f = px / max(parts[0].shape)
    size = (max(round(parts[0].shape[1] * f), 1), max(round(parts[0].shape[0] * f), 1))
    return tuple(np.clip(cv2.resize(p, size, interpolation=cv2.INTER_AREA), 0, 1) for p in parts)


def _logo_colours(rng: np.random.Generator) -> tuple[RGB, RGB]:
    """Emblem and word colours: usually one, sometimes a saturated second tone."""
    rgb = _mark_colour(rng)
    return rgb, _vivid(rng) if rng.random() < 0.3 else rgb


def logo(image: np.ndarray, rng: np.random.Generator, *, opacity: float | None = None,
         position: str | None = None, size: float | None = None) -> Composite:
    """A semi-transparent synthetic logo: opacity 0.15-0.55, longer side 8-25 % of the image's
    short side (size), in a corner or the centre (position tl/tr/bl/br/cc)."""
    return _finish(image, *_logo_layers(image, rng, opacity, position, size), "logo")


def _logo_layers(image: np.ndarray, rng: np.random.Generator, opacity: float | None = None,
                 position: str | None = None, size: float | None = None) -> Layers:
    h, w = image.shape[:2]
    emb, word, params = _logo_canvas(rng)
    size = float(rng.uniform(0.08, 0.25)) if size is None else size
    emb, word = _shrink((emb, word), size * min(h, w))
    rgb, rgb2 = _logo_colours(rng)
    opacity = float(rng.uniform(0.15, 0.55)) if opacity is None else opacity
    position = position or _pick(rng, ("tl", "tr", "bl", "br", "cc"))
    box = (*_anchor(rng, (h, w), (emb.shape[1], emb.shape[0]), position), emb.shape[1],
           emb.shape[0])
    rgb, rgb2 = (_legible(v, image, box) for v in (rgb, rgb2))
    a, c = _over(word, rgb2, emb, rgb)
    params.update(colour=rgb, colour2=rgb2, opacity=opacity, position=position, size=size,
                  xy=box[:2])
    return *_paste((h, w), a * opacity, c, box[0], box[1]), [box], params


def logo_text(image: np.ndarray, rng: np.random.Generator, *, opacity: float | None = None,
              position: str | None = None) -> Composite:
    """A small logo beside a handle/URL line (app-style mark): logo height 8-14 % of the image
    height, opacity 0.35-0.95, in a corner or bottom centre."""
    return _finish(image, *_logo_text_layers(image, rng, opacity, position), "logo_text")


def _logo_text_layers(image: np.ndarray, rng: np.random.Generator,
                      opacity: float | None = None, position: str | None = None) -> Layers:
    h, w = image.shape[:2]
    emb, word, params = _logo_canvas(rng)
    text = _credit_text(rng, _pick(rng, ("handle", "url")))
    path, ratio = _pick(rng, font_paths()[:2]), float(rng.uniform(0.4, 0.6))
    px = float(rng.uniform(0.08, 0.14)) * h  # logo height
    aspect = emb.shape[1] / emb.shape[0]
    width = px * aspect * 1.2 + _font(path, px * ratio).getlength(text)
    px *= min(1.0, 0.9 * w / width)  # shrink the lockup to fit narrow images
    emb, word = _shrink((emb, word), px * max(aspect, 1.0))
    ta = _render_text(text, font := _font(path, px * ratio))
    lw = emb.shape[1] + max(emb.shape[1] // 5, 2)
    ph, pw = max(emb.shape[0], ta.shape[0]), lw + ta.shape[1]
    rgb, rgb2 = _logo_colours(rng)
    opacity = float(rng.uniform(0.35, 0.95)) if opacity is None else opacity
    position = position or _pick(rng, ("tl", "tr", "bl", "br", "bc"))
    x, y = _anchor(rng, (h, w), (pw, ph), position)
    rgb, rgb2 = (_legible(v, image, (x, y, pw, ph)) for v in (rgb, rgb2))
    la, lc = _over(word, rgb2, emb, rgb)
    a, c = _paste((ph, pw), ta, rgb, lw, (ph - ta.shape[0]) // 2,
                  base=_paste((ph, pw), la, lc, 0, (ph - la.shape[0]) // 2))
    params.update(text=text, font_size=font.size, colour=rgb, colour2=rgb2, opacity=opacity,
                  position=position, xy=(x, y))
    boxes = [(x, y, lw, ph), (x + lw, y, pw - lw, ph)]
    return *_paste((h, w), a * opacity, c, x, y), boxes, params


def tiled(image: np.ndarray, rng: np.random.Generator, *, text: str | None = None,
          angle: float | None = None, opacity: float | None = None) -> Composite:
    """Stock-photo style: a text repeated on a staggered grid over the whole image, rotated
    20-45 deg either way, opacity 0.15-0.35, white/light grey (dark grey on bright images)."""
    h, w = image.shape[:2]
    text = text or _pick(rng, TILE_TEXTS)
    angle = float(rng.uniform(20, 45) * _pick(rng, (1, -1))) if angle is None else angle
    opacity = float(rng.uniform(0.15, 0.35)) if opacity is None else opacity
    shades = (WHITE, (225,) * 3) if float(image.reshape(-1, 3).mean(0) @ LUMA) < 150 \
        else ((40,) * 3, (80,) * 3)
    rgb = _pick(rng, shades)
    font = _font(_pick(rng, font_paths()[:2]), float(rng.uniform(0.05, 0.1)) * min(h, w))
    ta = _render_text(text, font)
    th, tw = ta.shape
    sx, sy = int(tw * rng.uniform(1.3, 2.0)), int(th * rng.uniform(2.5, 4.5))
    side = int(math.hypot(h, w)) + 2 * tw
    canvas, cells = np.zeros((side, side), np.float32), []
    for row, y in enumerate(range(0, side - th, sy)):
        for x in range((row % 2) * sx // 2, side - tw, sx):
            canvas[y:y + th, x:x + tw] = ta
            cells.append((x, y))
    rot = cv2.getRotationMatrix2D((side / 2, side / 2), angle, 1.0)
    rot[:, 2] += (w / 2 - side / 2, h / 2 - side / 2)  # canvas centre -> image centre
    a = np.clip(cv2.warpAffine(canvas, rot, (w, h), flags=cv2.INTER_LINEAR), 0, 1) * opacity
    boxes = []
    for x, y in cells:  # each tile's rotated bounding box, kept when it reaches the image
        pts = np.array([[x, y, 1], [x + tw, y, 1], [x, y + th, 1], [x + tw, y + th, 1]]) @ rot.T
        (x0, y0), (x1, y1) = np.floor(pts.min(0)).astype(int), np.ceil(pts.max(0)).astype(int)
        if x1 > 0 and y1 > 0 and x0 < w and y0 < h:
            boxes.append((int(x0), int(y0), int(x1 - x0), int(y1 - y0)))
    params = {"text": text, "angle": angle, "opacity": opacity, "colour": rgb,
              "font_size": font.size, "step": (sx, sy)}
    colour = np.broadcast_to(np.array(rgb, np.float32), (h, w, 3))
    return _finish(image, a, colour, boxes, params, "tiled")


def shared_mark(rng: np.random.Generator, width: int, height: int,
                kind: str | None = None) -> Mark:
    """One mark (corner text, logo or logo+text; `kind`, else drawn from rng) made for
    width x height photos, to put on a whole folder (12-20 photos) as a site or camera app
    does; see apply_mark."""
    kind = kind or _pick(rng, ("corner_text", "logo", "logo_text"))
    grey = np.full((height, width, 3), 128, np.uint8)  # neutral: colours stay as drawn
    make: dict[str, Callable[..., Layers]] = {
        "corner_text": _text_layers, "logo": _logo_layers, "logo_text": _logo_text_layers}
    a, c, boxes, params = make[kind](grey, rng)
    x0, y0 = min(b[0] for b in boxes), min(b[1] for b in boxes)
    x1, y1 = max(b[0] + b[2] for b in boxes), max(b[1] + b[3] for b in boxes)
    return Mark(c[y0:y1, x0:x1].copy(), a[y0:y1, x0:x1].copy(), kind,
                (x0 / width, y0 / height), params)


def apply_mark(image: np.ndarray, mark: Mark,
               position: tuple[float, float] | None = None) -> Composite:
    """Composite a shared mark at a relative top-left position (default: the mark's own), at
    its own pixel size (the same app marks same-size photos with the same patch)."""
    h, w = image.shape[:2]
    fx, fy = mark.position if position is None else position
    x, y = round(fx * w), round(fy * h)
    a, c = _paste((h, w), mark.alpha, mark.colour, x, y)
    box = (x, y, mark.alpha.shape[1], mark.alpha.shape[0])
    return _finish(image, a, c, [box], {**mark.params, "xy": (x, y), "shared": True}, mark.kind)


@lru_cache(maxsize=2)
def _photo_table(gray: bool) -> tuple[tuple[str, np.ndarray], ...]:
    """Load the photos once (read-only arrays), skimage's first, then optional wheels'."""
    from skimage import data  # heavy import, only when photos are wanted

    out = []
    for name in SKIMAGE_GRAY if gray else SKIMAGE_COLOUR:
        img = np.asarray(getattr(data, name)())
        out.append((name, np.repeat(img[..., None], 3, 2) if img.ndim == 2 else img[..., :3]))
    for name, (package, rel, _) in ({} if gray else OPTIONAL_PHOTOS).items():
        spec = importlib.util.find_spec(package)  # locate without importing the package
        path = Path(spec.submodule_search_locations[0]) / rel if spec and \
            spec.submodule_search_locations else None
        if path and path.is_file():
            out.append((name, np.asarray(Image.open(path).convert("RGB"))))
    for _, img in out:
        img.setflags(write=False)
    return tuple(out)


def photos(*, optional: bool = True) -> list[tuple[str, np.ndarray]]:
    """Permissively licensed colour photos: scikit-image's, then matplotlib's and
    scikit-learn's if installed (optional=False: results independent of those wheels)."""
    return [p for p in _photo_table(False) if optional or p[0] in SKIMAGE_COLOUR]


def gray_photos() -> list[tuple[str, np.ndarray]]:
    """scikit-image's permissively licensed grayscale photos and textures, as RGB."""
    return list(_photo_table(True))


def photo_licence(name: str) -> str:
    """Licence of a photo from photos() or gray_photos(), for reports and READMEs."""
    return {**SKIMAGE_COLOUR, **SKIMAGE_GRAY,
            **{k: v[2] for k, v in OPTIONAL_PHOTOS.items()}}[name]


def resize_to(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """Resize to exactly width x height (aspect not kept) with area interpolation."""
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)


def variant(image: np.ndarray, rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """A distinct image from one photo: a random crop of the target aspect (60-100 % of the
    largest), maybe mirrored, sometimes turned up to 6 deg (zoomed so no border shows)."""
    h, w = image.shape[:2]
    ch = min(h, w * height / width) * float(rng.uniform(0.6, 1.0))
    cw = ch * width / height
    x0, y0 = int(rng.uniform(0, w - cw + 1e-9)), int(rng.uniform(0, h - ch + 1e-9))
    out = resize_to(image[y0:y0 + round(ch), x0:x0 + round(cw)], width, height)
    out = out[:, ::-1] if rng.random() < 0.5 else out
    theta = float(rng.uniform(-6, 6)) if rng.random() < 0.4 else 0.0
    if theta:
        t = math.radians(abs(theta))
        zoom = math.cos(t) + math.sin(t) * max(width / height, height / width)
        rot = cv2.getRotationMatrix2D((width / 2, height / 2), theta, zoom)
        out = cv2.warpAffine(np.ascontiguousarray(out), rot, (width, height),
                             flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
    return np.ascontiguousarray(out)


KINDS: dict[str, Callable[..., Composite]] = {
    "corner_text": corner_text, "logo": logo, "logo_text": logo_text, "tiled": tiled}


def random_composite(seed: int, width: int = 800, height: int = 600, kind: str | None = None,
                     *, cjk_font: Path | str | None = None, optional: bool = False) -> Composite:
    """One benchmark item from a seed: a variant of a photo with a mark of `kind` (default a
    random one of KINDS or "clean")."""
    rng = np.random.default_rng(seed)
    name, img = _pick(rng, photos(optional=optional))
    base = variant(img, rng, width, height)
    kind = kind or _pick(rng, (*KINDS, "clean"))
    comp = (no_mark(base) if kind == "clean" else corner_text(base, rng, cjk_font=cjk_font)
            if kind == "corner_text" else KINDS[kind](base, rng))
    return replace(comp, params={**comp.params, "photo": name, "seed": seed})


def _demo(out: Path) -> None:
    """Write a few composites and their masks as PNG, for a person to look at."""
    out.mkdir(parents=True, exist_ok=True)
    kinds = ["corner_text"] * 4 + ["logo"] * 4 + ["logo_text"] * 3 + ["tiled"] * 3
    items = [random_composite(s, 800, 600, k) for s, k in enumerate(kinds)]
    rng = np.random.default_rng(99)
    if cjk := find_cjk_font():
        items.append(corner_text(variant(photos()[1][1], rng, 800, 600), rng, style="cjk",
                                 cjk_font=cjk))
    mark = shared_mark(rng, 640, 480)
    items += [apply_mark(variant(p, rng, 640, 480), mark) for _, p in photos()[:3]]
    for i, c in enumerate(items):
        Image.fromarray(c.image).save(out / f"{i:02d}_{c.kind}.png")
        Image.fromarray(c.mask).save(out / f"{i:02d}_{c.kind}_mask.png")
        print(f"{i:02d} {c.kind:12s} {c.params.get('photo', '')!s:18s} boxes={len(c.boxes):3d} "
              f"{c.params.get('text', '')}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Write demo watermark composites as PNG.")
    parser.add_argument("--demo", type=Path, metavar="OUTDIR", required=True)
    _demo(parser.parse_args().demo)
