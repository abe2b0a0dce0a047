"""Animated GIFs of replays (needs Pillow): each frame's view rasterised, or its stored image."""

from __future__ import annotations

import io
import math
import numbers
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from sb3_selfplay.atomic import atomic_write_bytes
from sb3_selfplay.replays.format import ReplayError, as_replay
from sb3_selfplay.replays.views import Drawer, frame_views, view_image

__all__ = ["render_gif"]


def _num(value: Any, default: float) -> float:
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
    return float(value) if ok else default


def render_gif(
    replay: Mapping[str, Any] | str | os.PathLike[str],
    out_path: str | os.PathLike[str],
    game_factory: Callable[[], Any] | None = None,
    fps: float | None = None,
    size: int = 256,
    max_frames: int | None = None,
    drawer: Drawer | None = None,
) -> Path:
    """
    Write an animated GIF of a replay (needs Pillow): the same pictures as the HTML player
    (:func:`~sb3_selfplay.replays.views.frame_views`: the game's drawing of each state, stored
    images, observation bars), rasterised.

    :param replay: A replay dict or a replay file.
    :param out_path: The GIF to write (atomically).
    :param game_factory: Instead of the views: builds a 1-env game whose ``set_state(0, frame)``
        and ``render(0)`` give each image.
    :param fps: Frames per second (default: the replay's ``fps`` metadata over its frame stride, else 20).
    :param size: Width in pixels of each GIF frame (the height keeps the first picture's aspect).
    :param max_frames: Keep at most this many frames (evenly spaced).
    :param drawer: The game's drawing of a state (default: found from the replay's ``env_id``).
    :return: The path written.
    :raises ReplayError: On a replay without frames or with malformed pictures.
    """
    try:
        from PIL import Image
    except ImportError as exc:
        raise ImportError("render_gif needs Pillow: pip install pillow") from exc
    data = as_replay(replay)
    frames = list(data["frames"])
    if not frames:
        raise ReplayError("render_gif: the replay has no frames")
    meta = data["metadata"]
    keep = list(range(len(frames)))
    if max_frames is not None and len(frames) > max_frames:
        keep = [int(j) for j in np.linspace(0, len(frames) - 1, max_frames).round()]
    if fps is None:
        fps = _num(meta.get("fps"), 20.0) / max(1.0, _num(meta.get("frame_stride"), 1.0))
    if game_factory is not None:
        game = game_factory()
        try:
            arrays = []
            for j in keep:
                game.set_state(0, frames[j])
                arrays.append(np.asarray(game.render(0), dtype=np.uint8))
        finally:
            game.close()
    else:
        views = frame_views(data, drawer)
        arrays = [view_image(views[j], size) for j in keep]
    images = [Image.fromarray(a) for a in arrays]
    if game_factory is None:
        w, h = images[0].size
        shape = (int(size), max(1, int(round(size * h / w))))
        images = [im if im.size == shape else im.resize(shape, Image.NEAREST) for im in images]
    buf = io.BytesIO()
    duration = max(20, int(round(1000.0 / max(fps, 1e-3))))
    images[0].save(buf, format="GIF", save_all=True, append_images=images[1:], duration=duration, loop=0)
    out = Path(out_path)
    atomic_write_bytes(out, buf.getvalue())
    return out
