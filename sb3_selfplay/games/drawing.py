"""Vector drawings: one picture of a game state, drawn the same way everywhere.

A game's renderer turns a state into a :class:`Drawing` (a canvas size, a background and a
list of shapes). :func:`rasterize` turns a drawing into an RGB image (the game's ``render()``,
the replay GIF), and the HTML replay player draws the same shapes on a ``<canvas>`` with a
generic drawer that knows no game, so the three pictures agree.

Coordinates are pixels of a ``width`` x ``height`` canvas, ``x`` to the right and ``y`` down
(the canvas convention); a drawing rasterised at another size is scaled. Shapes are painted
in order, each over the ones before. As JSON (:meth:`Drawing.to_dict`) a shape is a dict::

    {"type": "circle",   "x", "y", "r",         "fill", "stroke", "width", "alpha"}
    {"type": "rect",     "x", "y", "w", "h",    "fill", "stroke", "width", "alpha"}
    {"type": "polygon",  "points": [[x, y], ...], "fill", "stroke", "width", "alpha"}
    {"type": "polyline", "points": [[x, y], ...], "stroke", "width", "alpha"}
    {"type": "text",     "x", "y", "text", "size", "fill", "align", "alpha"}

Colours are ``[r, g, b]`` integers in 0..255; a ``fill`` or ``stroke`` of ``None`` is not
painted; ``width`` is the stroke width; ``alpha`` in [0, 1] blends the shape over what lies
below (fill, then stroke). Polygons fill by the even-odd rule; strokes have round caps and
joins, and are at least one pixel wide when rasterised; a rect covers ``[x, x + w) x [y, y + h)``.
Text is anchored at ``x`` by ``align`` (``"left"``, ``"center"`` or ``"right"``) with ``y`` at
its vertical middle, ``size`` the font size in pixels; :func:`rasterize` draws it in a small
built-in 3x5 pixel font (upper case), the browser in its monospace font. The rasteriser does
not anti-alias: a pixel belongs to a shape when its centre does.

A game offers its drawing through ``draw_state(state, params, highlight_seat)`` (see
:class:`~sb3_selfplay.games.base.TwoPlayerGame`); replays use it, and ``render()`` may be the
same drawing rasterised (Duel's is: :mod:`sb3_selfplay.games.duel.render`).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["SHAPE_TYPES", "Colour", "Drawing", "rasterize"]

Colour = tuple[int, int, int]
#: Shape types a drawing may hold.
SHAPE_TYPES = ("circle", "rect", "polygon", "polyline", "text")
_ALIGNS = ("left", "center", "right")
_MAX_SIDE = 8192
_MAX_TEXT = 500


class Drawing:
    """
    A vector picture: canvas size, background colour and shapes, built with the methods below
    (each returns the drawing, so calls chain) and serialised with :meth:`to_dict`.

    :param width: Canvas width in pixels.
    :param height: Canvas height in pixels.
    :param background: RGB colour the canvas starts with.
    """

    def __init__(self, width: float, height: float, background: Iterable[int] = (255, 255, 255)) -> None:
        self.width = _side(width, "width")
        self.height = _side(height, "height")
        self.background = _colour(background, "background")
        self.shapes: list[dict[str, Any]] = []

    # ------------------------------------------------------------------ shapes
    def circle(
        self,
        x: float,
        y: float,
        r: float,
        fill: Iterable[int] | None = None,
        stroke: Iterable[int] | None = None,
        width: float = 1.0,
        alpha: float = 1.0,
    ) -> Drawing:
        """A circle of centre ``(x, y)`` and radius ``r``."""
        geometry = {"x": _real(x, "x"), "y": _real(y, "y"), "r": _real(r, "r", low=0.0)}
        return self._add("circle", geometry, fill, stroke, width, alpha)

    def rect(
        self,
        x: float,
        y: float,
        w: float,
        h: float,
        fill: Iterable[int] | None = None,
        stroke: Iterable[int] | None = None,
        width: float = 1.0,
        alpha: float = 1.0,
    ) -> Drawing:
        """An axis-aligned rectangle with top-left corner ``(x, y)``, width ``w`` and height ``h``."""
        geometry = {"x": _real(x, "x"), "y": _real(y, "y"), "w": _real(w, "w", low=0.0), "h": _real(h, "h", low=0.0)}
        return self._add("rect", geometry, fill, stroke, width, alpha)

    def polygon(
        self,
        points: Iterable[Sequence[float]] | np.ndarray,
        fill: Iterable[int] | None = None,
        stroke: Iterable[int] | None = None,
        width: float = 1.0,
        alpha: float = 1.0,
    ) -> Drawing:
        """A closed polygon through ``points`` (``[[x, y], ...]``, at least 3), filled even-odd."""
        return self._add("polygon", {"points": _points(points, 3)}, fill, stroke, width, alpha)

    def polyline(
        self, points: Iterable[Sequence[float]] | np.ndarray, stroke: Iterable[int], width: float = 1.0, alpha: float = 1.0
    ) -> Drawing:
        """An open line through ``points`` (at least 2)."""
        return self._add("polyline", {"points": _points(points, 2)}, None, stroke, width, alpha)

    def line(
        self, x0: float, y0: float, x1: float, y1: float, stroke: Iterable[int], width: float = 1.0, alpha: float = 1.0
    ) -> Drawing:
        """A segment from ``(x0, y0)`` to ``(x1, y1)`` (a two-point polyline)."""
        return self.polyline([(x0, y0), (x1, y1)], stroke, width, alpha)

    def text(
        self,
        x: float,
        y: float,
        text: str,
        size: float = 12.0,
        fill: Iterable[int] = (0, 0, 0),
        align: str = "left",
        alpha: float = 1.0,
    ) -> Drawing:
        """One line of text anchored at ``(x, y)`` (see the module docstring)."""
        if not isinstance(text, str):
            raise ValueError(f"text must be a string, got {type(text).__name__}")
        if align not in _ALIGNS:
            raise ValueError(f"text align must be one of {', '.join(_ALIGNS)}, got {str(align)[:20]!r}")
        geometry = {
            "x": _real(x, "x"),
            "y": _real(y, "y"),
            "text": " ".join(text.split())[:_MAX_TEXT],
            "size": _real(size, "size", low=0.0),
            "align": align,
        }
        return self._add("text", geometry, fill, None, 1.0, alpha)

    def _add(
        self,
        kind: str,
        geometry: dict[str, Any],
        fill: Iterable[int] | None,
        stroke: Iterable[int] | None,
        width: float,
        alpha: float,
    ) -> Drawing:
        shape: dict[str, Any] = {"type": kind, **geometry}
        if kind != "polyline":
            shape["fill"] = None if fill is None else _colour(fill, "fill")
        if kind != "text":
            shape["stroke"] = None if stroke is None else _colour(stroke, "stroke")
            shape["width"] = _real(width, "width", low=0.0)
        shape["alpha"] = _real(alpha, "alpha", low=0.0, high=1.0)
        self.shapes.append(shape)
        return self

    # ------------------------------------------------------------------ JSON
    def to_dict(self) -> dict[str, Any]:
        """:return: The drawing as JSON-ready data (``width``, ``height``, ``background``, ``shapes``)."""
        return {
            "width": self.width,
            "height": self.height,
            "background": list(self.background),
            "shapes": [{k: _json_value(k, v) for k, v in s.items()} for s in self.shapes],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Drawing:
        """
        Rebuild (and validate) a drawing from :meth:`to_dict` data, e.g. read from an untrusted file.

        :raises ValueError: With a one-line message naming the first bad field.
        """
        if not isinstance(data, Mapping):
            raise ValueError(f"a drawing must be an object, got {type(data).__name__}")
        missing = [k for k in ("width", "height", "shapes") if k not in data]
        if missing:
            raise ValueError(f"drawing lacks {', '.join(missing)}")
        out = cls(data["width"], data["height"], data.get("background", (255, 255, 255)))
        shapes = data["shapes"]
        if not isinstance(shapes, list):
            raise ValueError("drawing shapes must be a list")
        for j, s in enumerate(shapes):
            if not isinstance(s, Mapping) or s.get("type") not in SHAPE_TYPES:
                kind = s.get("type") if isinstance(s, Mapping) else type(s).__name__
                raise ValueError(f"drawing shape {j}: unknown type {str(kind)[:30]!r}; known: {', '.join(SHAPE_TYPES)}")
            kind = s["type"]
            style = {"alpha": s.get("alpha", 1.0)}
            if kind != "text":
                style["width"] = s.get("width", 1.0)
            try:
                if kind == "circle":
                    out.circle(s["x"], s["y"], s["r"], s.get("fill"), s.get("stroke"), **style)
                elif kind == "rect":
                    out.rect(s["x"], s["y"], s["w"], s["h"], s.get("fill"), s.get("stroke"), **style)
                elif kind == "polygon":
                    out.polygon(s["points"], s.get("fill"), s.get("stroke"), **style)
                elif kind == "polyline":
                    out.polyline(s["points"], s["stroke"], **style)
                else:
                    size, fill, align = s.get("size", 12.0), s.get("fill", (0, 0, 0)), s.get("align", "left")
                    out.text(s["x"], s["y"], s["text"], size, fill, align, **style)
            except KeyError as exc:
                raise ValueError(f"drawing shape {j} ({kind}) lacks {exc.args[0]!r}") from None
            except ValueError as exc:
                raise ValueError(f"drawing shape {j} ({kind}): {exc}") from None
        return out

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Drawing) and self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        return f"Drawing({self.width}x{self.height}, {len(self.shapes)} shapes)"


# ----------------------------------------------------------------------------- validation
def _json_value(key: str, value: Any) -> Any:
    """Tuples (points, colours) as lists."""
    if key == "points":
        return [list(p) for p in value]
    return list(value) if isinstance(value, tuple) else value


def _real(value: Any, name: str, low: float | None = None, high: float | None = None) -> float:
    if not isinstance(value, numbers.Real) or isinstance(value, bool) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {str(value)[:30]!r}")
    value = float(value)
    if (low is not None and value < low) or (high is not None and value > high):
        raise ValueError(f"{name} must be in [{low}, {high}], got {value}")
    return value


def _side(value: Any, name: str) -> float:
    side = _real(value, name, low=1.0, high=_MAX_SIDE)
    return int(side) if side == int(side) else side


def _colour(value: Any, name: str) -> Colour:
    try:
        values = list(value)
        parts = [int(v) for v in values]
        ok = len(parts) == 3 and all(0 <= v <= 255 and v == w for v, w in zip(parts, values))
    except (TypeError, ValueError, OverflowError):
        ok = False
    if not ok:
        raise ValueError(f"{name} must be an RGB triple of integers in 0..255, got {str(value)[:40]!r}")
    return (parts[0], parts[1], parts[2])


def _points(points: Any, minimum: int) -> tuple[tuple[float, float], ...]:
    try:
        arr = np.asarray(points, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError("points must be a list of [x, y] pairs") from None
    if arr.ndim != 2 or arr.shape[1] != 2 or arr.shape[0] < minimum:
        raise ValueError(f"points must be at least {minimum} [x, y] pairs, got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError("points must be finite")
    return tuple((float(x), float(y)) for x, y in arr.tolist())


# ----------------------------------------------------------------------------- rasteriser
def rasterize(drawing: Drawing, width: int | None = None, height: int | None = None) -> np.ndarray:
    """
    Paint a drawing into an RGB image (no anti-aliasing: a pixel takes a shape's colour when
    its centre lies inside).

    :param drawing: The drawing.
    :param width: Image width in pixels (default: the drawing's, rounded).
    :param height: Image height (default: keeps the drawing's aspect ratio).
    :return: ``uint8`` array of shape ``(height, width, 3)``.
    """
    w = int(round(drawing.width)) if width is None else int(width)
    if height is None:
        height = int(round(drawing.height * w / drawing.width))
    h = int(height)
    if w < 1 or h < 1:
        raise ValueError(f"rasterize: image size must be positive, got {w}x{h}")
    canvas = _Canvas(w, h, w / drawing.width, h / drawing.height, drawing.background)
    for shape in drawing.shapes:
        _PAINTERS[shape["type"]](canvas, shape)
    return np.clip(np.rint(canvas.img), 0, 255).astype(np.uint8)


class _Canvas:
    """The image being painted, and the scale from drawing units to pixels."""

    def __init__(self, w: int, h: int, sx: float, sy: float, background: Colour) -> None:
        self.w, self.h, self.sx, self.sy = w, h, sx, sy
        self.img = np.empty((h, w, 3), np.float32)
        self.img[:] = background

    def window(self, x0: float, y0: float, x1: float, y1: float) -> tuple[int, int, int, int] | None:
        """Pixel columns ``[c0, c1)`` and rows ``[r0, r1)`` whose centres may lie in a box (drawing units)."""
        c0, c1 = max(0, math.floor(x0 * self.sx - 0.5)), min(self.w, math.ceil(x1 * self.sx + 0.5))
        r0, r1 = max(0, math.floor(y0 * self.sy - 0.5)), min(self.h, math.ceil(y1 * self.sy + 0.5))
        if c0 >= c1 or r0 >= r1:
            return None
        return c0, c1, r0, r1

    def half_width(self, width: float) -> float:
        """Half a stroke's width in drawing units; at least half a pixel, so thin lines stay visible when shrunk."""
        return max(width / 2, 0.5 / min(self.sx, self.sy))

    def centres(self, c0: int, c1: int, r0: int, r1: int) -> tuple[np.ndarray, np.ndarray]:
        """Drawing-unit coordinates of the pixel centres: ``x`` as a row, ``y`` as a column."""
        x = ((np.arange(c0, c1) + 0.5) / self.sx)[None, :]
        y = ((np.arange(r0, r1) + 0.5) / self.sy)[:, None]
        return x, y

    def blend(self, win: tuple[int, int, int, int], mask: np.ndarray, colour: Colour, alpha: float) -> None:
        c0, c1, r0, r1 = win
        sub = self.img[r0:r1, c0:c1]
        col = np.asarray(colour, np.float32)
        if alpha >= 1.0:
            sub[mask] = col
        elif alpha > 0.0:
            sub[mask] += np.float32(alpha) * (col - sub[mask])


def _stroke_mask(canvas: _Canvas, win: tuple[int, int, int, int], pts: np.ndarray, half: float) -> np.ndarray:
    """Pixels within ``half`` of the polyline through ``pts`` (round caps and joins)."""
    c0, c1, r0, r1 = win
    mask = np.zeros((r1 - r0, c1 - c0), bool)
    for (ax, ay), (bx, by) in zip(pts[:-1], pts[1:]):
        seg = canvas.window(min(ax, bx) - half, min(ay, by) - half, max(ax, bx) + half, max(ay, by) + half)
        if seg is None:
            continue
        s0, s1, t0, t1 = max(seg[0], c0), min(seg[1], c1), max(seg[2], r0), min(seg[3], r1)
        if s0 >= s1 or t0 >= t1:
            continue
        x, y = canvas.centres(s0, s1, t0, t1)
        dx, dy = bx - ax, by - ay
        t = np.clip(((x - ax) * dx + (y - ay) * dy) / max(dx * dx + dy * dy, 1e-12), 0.0, 1.0)
        near = (x - ax - t * dx) ** 2 + (y - ay - t * dy) ** 2 <= half * half
        mask[t0 - r0 : t1 - r0, s0 - c0 : s1 - c0] |= near
    return mask


def _stroke(canvas: _Canvas, shape: Mapping[str, Any], pts: np.ndarray) -> None:
    if shape.get("stroke") is None or shape["width"] <= 0:
        return
    half = canvas.half_width(shape["width"])
    win = canvas.window(pts[:, 0].min() - half, pts[:, 1].min() - half, pts[:, 0].max() + half, pts[:, 1].max() + half)
    if win is not None:
        canvas.blend(win, _stroke_mask(canvas, win, pts, half), shape["stroke"], shape["alpha"])


def _paint_circle(canvas: _Canvas, s: Mapping[str, Any]) -> None:
    x, y, r = s["x"], s["y"], s["r"]
    half = canvas.half_width(s["width"]) if s.get("stroke") is not None and s["width"] > 0 else 0.0
    win = canvas.window(x - r - half, y - r - half, x + r + half, y + r + half)
    if win is None:
        return
    px, py = canvas.centres(*win)
    d2 = (px - x) ** 2 + (py - y) ** 2
    if s.get("fill") is not None:
        canvas.blend(win, d2 <= r * r, s["fill"], s["alpha"])
    if half > 0:
        canvas.blend(win, np.abs(np.sqrt(d2) - r) <= half, s["stroke"], s["alpha"])


def _paint_rect(canvas: _Canvas, s: Mapping[str, Any]) -> None:
    x, y, w, h = s["x"], s["y"], s["w"], s["h"]
    if s.get("fill") is not None:
        c0, c1 = (max(0, min(canvas.w, math.ceil(v * canvas.sx - 0.5))) for v in (x, x + w))
        r0, r1 = (max(0, min(canvas.h, math.ceil(v * canvas.sy - 0.5))) for v in (y, y + h))
        if c0 < c1 and r0 < r1:
            canvas.blend((c0, c1, r0, r1), np.ones((r1 - r0, c1 - c0), bool), s["fill"], s["alpha"])
    _stroke(canvas, s, np.array([(x, y), (x + w, y), (x + w, y + h), (x, y + h), (x, y)]))


def _paint_polygon(canvas: _Canvas, s: Mapping[str, Any]) -> None:
    pts = np.asarray(s["points"], np.float64)
    if s.get("fill") is not None:
        win = canvas.window(pts[:, 0].min(), pts[:, 1].min(), pts[:, 0].max(), pts[:, 1].max())
        if win is not None:
            canvas.blend(win, _even_odd(canvas, win, pts), s["fill"], s["alpha"])
    _stroke(canvas, s, np.vstack([pts, pts[:1]]))


def _even_odd(canvas: _Canvas, win: tuple[int, int, int, int], pts: np.ndarray) -> np.ndarray:
    """Scanline fill: a pixel is inside when an odd number of edges cross its row left of its centre."""
    c0, c1, r0, r1 = win
    x0, y0 = pts[:, 0], pts[:, 1]
    x1, y1 = np.roll(x0, -1), np.roll(y0, -1)
    yc = ((np.arange(r0, r1) + 0.5) / canvas.sy)[:, None]
    crosses = ((y0 <= yc) & (yc < y1)) | ((y1 <= yc) & (yc < y0))  # (rows, edges)
    with np.errstate(divide="ignore", invalid="ignore"):
        xs = x0 + (yc - y0) * (x1 - x0) / (y1 - y0)
    # first column whose centre lies at or right of each crossing; toggles, summed along the row
    col = np.clip(np.ceil(np.where(crosses, xs, np.inf) * canvas.sx - 0.5), c0, c1).astype(np.int64) - c0
    toggles = np.zeros((r1 - r0, c1 - c0 + 1), np.int32)
    rows = np.broadcast_to(np.arange(r1 - r0)[:, None], col.shape)
    np.add.at(toggles, (rows[crosses], col[crosses]), 1)
    return (np.cumsum(toggles[:, :-1], axis=1) & 1).astype(bool)


def _paint_polyline(canvas: _Canvas, s: Mapping[str, Any]) -> None:
    _stroke(canvas, s, np.asarray(s["points"], np.float64))


# A 3x5 pixel font: each glyph is 5 rows of 3 cells, '#' painted.
_GLYPHS = {
    "0": "### #.# #.# #.# ###", "1": ".#. ##. .#. .#. ###", "2": "### ..# ### #.. ###",
    "3": "### ..# .## ..# ###", "4": "#.# #.# ### ..# ..#", "5": "### #.. ### ..# ###",
    "6": "### #.. ### #.# ###", "7": "### ..# ..# .#. .#.", "8": "### #.# ### #.# ###",
    "9": "### #.# ### ..# ###", "A": ".#. #.# ### #.# #.#", "B": "##. #.# ##. #.# ##.",
    "C": ".## #.. #.. #.. .##", "D": "##. #.# #.# #.# ##.", "E": "### #.. ##. #.. ###",
    "F": "### #.. ##. #.. #..", "G": ".## #.. #.# #.# .##", "H": "#.# #.# ### #.# #.#",
    "I": "### .#. .#. .#. ###", "J": "..# ..# ..# #.# .#.", "K": "#.# #.# ##. #.# #.#",
    "L": "#.. #.. #.. #.. ###", "M": "#.# ### ### #.# #.#", "N": "##. #.# #.# #.# #.#",
    "O": ".#. #.# #.# #.# .#.", "P": "##. #.# ##. #.. #..", "Q": ".#. #.# #.# ##. .##",
    "R": "##. #.# ##. #.# #.#", "S": ".## #.. .#. ..# ##.", "T": "### .#. .#. .#. .#.",
    "U": "#.# #.# #.# #.# ###", "V": "#.# #.# #.# #.# .#.", "W": "#.# #.# ### ### #.#",
    "X": "#.# #.# .#. #.# #.#", "Y": "#.# #.# .#. .#. .#.", "Z": "### ..# .#. #.. ###",
    " ": "... ... ... ... ...", ".": "... ... ... ... .#.", ",": "... ... ... .#. #..",
    ":": "... .#. ... .#. ...", ";": "... .#. ... .#. #..", "-": "... ... ### ... ...",
    "+": "... .#. ### .#. ...", "/": "..# ..# .#. #.. #..", "(": ".#. #.. #.. #.. .#.",
    ")": ".#. ..# ..# ..# .#.", "%": "#.# ..# .#. #.. #.#", "=": "... ### ... ### ...",
    "!": ".#. .#. .#. ... .#.", "?": "##. ..# .#. ... .#.", "'": ".#. .#. ... ... ...",
    "_": "... ... ... ... ###", "<": "..# .#. #.. .#. ..#", ">": "#.. .#. ..# .#. #..",
    "#": "#.# ### #.# ### #.#", "*": "... #.# .#. #.# ...", "[": "##. #.. #.. #.. ##.",
    "]": ".## ..# ..# ..# .##", '"': "#.# #.# ... ... ...",
}  # fmt: skip
_GLYPH_MASKS = {ch: np.array([[c == "#" for c in row] for row in rows.split()], bool) for ch, rows in _GLYPHS.items()}


def _paint_text(canvas: _Canvas, s: Mapping[str, Any]) -> None:
    text = s["text"].upper()
    if not text or s.get("fill") is None:
        return
    cell = max(1, round(s["size"] * 0.15 * min(canvas.sx, canvas.sy)))  # pixels per font cell
    cells = np.zeros((5, 4 * len(text) - 1), bool)
    for k, ch in enumerate(text):
        cells[:, 4 * k : 4 * k + 3] = _GLYPH_MASKS.get(ch, _GLYPH_MASKS["?"])
    bitmap = np.repeat(np.repeat(cells, cell, axis=0), cell, axis=1)
    bh, bw = bitmap.shape
    left = s["x"] * canvas.sx - {"left": 0.0, "center": bw / 2, "right": float(bw)}[s["align"]]
    c0, r0 = int(round(left)), int(round(s["y"] * canvas.sy - bh / 2))
    cs, rs = max(0, c0), max(0, r0)
    ce, re = min(canvas.w, c0 + bw), min(canvas.h, r0 + bh)
    if cs < ce and rs < re:
        canvas.blend((cs, ce, rs, re), bitmap[rs - r0 : re - r0, cs - c0 : ce - c0], s["fill"], s["alpha"])


_PAINTERS = {
    "circle": _paint_circle,
    "rect": _paint_rect,
    "polygon": _paint_polygon,
    "polyline": _paint_polyline,
    "text": _paint_text,
}
