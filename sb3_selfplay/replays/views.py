"""One picture per replay frame, for the HTML player and the GIF writer.

A picture ("view") is JSON data: a :class:`~sb3_selfplay.games.drawing.Drawing` as a dict, or
``{"png": "<base64>"}`` for an RGB image. :func:`frame_views` takes, in this order:

1. the views stored in the replay (games without a vector drawing: their ``render()`` images);
2. the game's drawing of each state: ``drawer(state, game_params, highlight_seat)``, by default
   the ``draw_state`` method of the game registered under the replay's ``env_id``
   (:func:`sb3_selfplay.games.make_game`), the learner's seat highlighted;
3. observation frames as bars (positive blue, negative red);
4. a placeholder that points to the frame data (the player shows each frame as text too).

Nothing here knows any game: the pictures come from the game's own renderer.
"""

from __future__ import annotations

import contextlib
import json
import math
import numbers
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from sb3_selfplay.games import GAME_REGISTRY, make_game
from sb3_selfplay.games.drawing import Drawing, rasterize
from sb3_selfplay.replays.format import ReplayError, one_line
from sb3_selfplay.replays.png import decode_png, png_from_base64

__all__ = ["Drawer", "frame_views", "game_drawer", "view_image"]

#: ``drawer(state, game_params, highlight_seat) -> Drawing | None``: a game's drawing of a state.
Drawer = Callable[[Mapping[str, Any], "Mapping[str, Any] | None", "int | None"], "Drawing | None"]

_SIZE = 512
_PAPER = (245, 245, 240)
_INK = (20, 20, 20)
_POSITIVE, _NEGATIVE = (40, 90, 220), (220, 60, 40)
_MAX_BARS = 256


@contextlib.contextmanager
def game_drawer(env_id: Any) -> Iterator[Drawer | None]:
    """
    The drawing of the game registered as ``env_id`` (a 1-env game is built and closed after),
    or None when no such game is registered or it has no ``draw_state``.
    """
    if not isinstance(env_id, str) or env_id not in GAME_REGISTRY:
        yield None
        return
    game = make_game(env_id, 1)
    try:
        draw = getattr(game, "draw_state", None)
        yield draw if callable(draw) else None
    finally:
        game.close()


def _num(value: Any, default: float) -> float:
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
    return float(value) if ok else default


def _stored_view(view: Any, t: int) -> dict[str, Any] | None:
    """A stored view, checked (replays are untrusted): a drawing dict, ``{"png": ...}`` or None."""
    if view is None:
        return None
    try:
        if isinstance(view, Mapping) and "png" in view:
            png_from_base64(view["png"])
            return {"png": view["png"]}
        return Drawing.from_dict(view).to_dict()
    except ValueError as exc:
        raise ReplayError(f"replay view {t}: {one_line(exc)[:200]}") from None


def _placeholder(message: str) -> dict[str, Any]:
    d = Drawing(_SIZE, _SIZE, background=_PAPER)
    d.text(_SIZE / 2, _SIZE / 2, message, size=14, fill=_INK, align="center")
    d.rect(0.5, 0.5, _SIZE - 1, _SIZE - 1, stroke=(0, 0, 0), width=1)
    return d.to_dict()


def _flat(values: Any) -> np.ndarray:
    try:
        arr = np.asarray(values, dtype=np.float64).ravel()
    except (TypeError, ValueError):
        return np.zeros(0)
    return np.nan_to_num(arr, nan=0.0, posinf=0.0, neginf=0.0)


def _obs_of(frame: Any) -> Any:
    return frame.get("obs", frame.get("observations")) if isinstance(frame, Mapping) else None


def _bars(frame: Mapping[str, Any], scale: float) -> dict[str, Any]:
    """An observation frame as bars around a middle line."""
    values = _flat(_obs_of(frame))
    shown = values if values.size <= _MAX_BARS else values[np.linspace(0, values.size - 1, _MAX_BARS).round().astype(int)]
    d = Drawing(_SIZE, _SIZE, background=_PAPER)
    mid, n = _SIZE / 2, max(1, shown.size)
    bw = (_SIZE - 20) / n
    d.line(10, mid, _SIZE - 10, mid, stroke=(120, 120, 120))
    for i, v in enumerate(shown.tolist()):
        h = v / scale * (_SIZE / 2 - 30)
        d.rect(10 + i * bw + bw * 0.1, mid - max(h, 0.0), max(1.0, bw * 0.8), abs(h), fill=_POSITIVE if v >= 0 else _NEGATIVE)
    note = "" if shown.size == values.size else f", {shown.size} shown"
    action = one_line(json.dumps(frame.get("action"), default=str))[:60]
    d.text(10, 16, f"observation ({values.size} values{note})  action: {action}", size=12, fill=_INK)
    d.rect(0.5, 0.5, _SIZE - 1, _SIZE - 1, stroke=(0, 0, 0), width=1)
    return d.to_dict()


def _drawn(frames: Sequence[Any], params: Any, seat: int | None, drawer: Drawer) -> list[dict[str, Any]] | None:
    """Each state drawn by ``drawer``; None if it draws none (no vector drawing)."""
    out: list[dict[str, Any]] = []
    for t, frame in enumerate(frames):
        if not isinstance(frame, Mapping):
            return None
        try:
            drawing = drawer(frame, params, seat)
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            raise ReplayError(f"replay frame {t}: the game cannot draw this state ({one_line(exc)[:160]})") from None
        if drawing is None:
            return None
        out.append(drawing.to_dict())
    return out


def frame_views(replay: Mapping[str, Any], drawer: Drawer | None = None) -> list[dict[str, Any]]:
    """
    One picture per frame (see the module docstring for where each comes from).

    :param replay: A replay dict (checked by :func:`~sb3_selfplay.replays.format.as_replay`).
    :param drawer: The game's drawing (default: found from the replay's ``env_id``).
    :return: A view per frame: a drawing dict or ``{"png": base64}``.
    :raises ReplayError: On a stored view or a state that cannot be drawn.
    """
    frames = list(replay.get("frames") or [])
    meta = replay.get("metadata") or {}
    stored = replay.get("views")
    if stored is not None:
        views = [_stored_view(v, t) for t, v in enumerate(stored)]
        return [v if v is not None else _placeholder("no picture of this frame") for v in views]
    params = replay.get("game_params")
    seat = meta.get("learner_seat")
    seat = seat if isinstance(seat, int) and not isinstance(seat, bool) else None
    if frames and isinstance(frames[0], Mapping) and "obs" not in frames[0]:  # game states, not observations
        with contextlib.nullcontext(drawer) if drawer is not None else game_drawer(meta.get("env_id")) as found:
            drawn = None if found is None else _drawn(frames, params, seat, found)
        if drawn is not None:
            return drawn
    if frames and all(_obs_of(f) is not None for f in frames):
        scale = max([1.0] + [float(np.abs(_flat(_obs_of(f))).max(initial=0.0)) for f in frames])
        return [_bars(f, scale) for f in frames]
    return [_placeholder("no drawing of this game's states: see the frame data") for _ in frames]


def view_image(view: Mapping[str, Any], size: int | None = None) -> np.ndarray:
    """
    A view as an RGB image: a drawing rasterised (``size`` pixels wide, default its own width),
    an image decoded (at its own size).

    :return: ``uint8`` array ``(height, width, 3)``.
    """
    if "png" in view:
        try:
            return decode_png(png_from_base64(view["png"]))
        except ValueError as exc:
            raise ReplayError(f"replay image: {one_line(exc)[:200]}") from None
    return rasterize(Drawing.from_dict(view), width=size)
