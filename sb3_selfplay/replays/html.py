"""The HTML replay player: one standalone page per replay.

The page is the package-data template ``sb3_selfplay/replays/templates/player.html`` (read
with :mod:`importlib.resources`, so it is found in an installed wheel too) with the replay
embedded as JSON. Its script draws each frame's view (:mod:`sb3_selfplay.replays.views`):
vector drawings with a generic canvas drawer that knows no game, RGB images as images.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from sb3_selfplay.atomic import atomic_write_bytes
from sb3_selfplay.replays.format import as_replay, clean_json, replay_kind
from sb3_selfplay.replays.views import Drawer, frame_views

__all__ = ["TEMPLATE", "player_template", "render_html"]

#: The template's place inside the package.
TEMPLATE = "templates/player.html"
_SLOT = "__REPLAY_JSON__"
_VIEW_DIGITS = 1  # drawings are embedded with coordinates rounded to 0.1 pixel


@lru_cache(maxsize=1)
def player_template() -> str:
    """:return: The player's HTML template (package data)."""
    text = resources.files("sb3_selfplay.replays").joinpath(TEMPLATE).read_text(encoding="utf-8")
    if text.count(_SLOT) != 1:
        raise RuntimeError(f"the replay player template {TEMPLATE} must hold {_SLOT} once")
    return text


def _json_for_script(data: Any) -> str:
    """JSON safe inside ``<script type="application/json">``: ``<``, ``>``, ``&`` as ``\\u003c`` etc."""
    text = json.dumps(clean_json(data, None), ensure_ascii=True, separators=(",", ":"), allow_nan=False)
    return text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")


def render_html(
    replay: Mapping[str, Any] | str | os.PathLike[str],
    out_path: str | os.PathLike[str],
    drawer: Drawer | None = None,
) -> Path:
    """
    Write a standalone HTML player of a replay (no external resources): a canvas that shows
    each frame's picture (the game's own drawing of the state, e.g. Duel's arena, fields of view,
    shots and agents with the learner outlined in gold; the stored images of games without a
    vector drawing; observations as bars), with play / pause / scrub / speed controls (space
    and arrow keys too), the frame's data as text and the metadata in a table.

    The replay is embedded as JSON inside ``<script type="application/json">`` with ``<``, ``>``
    and ``&`` escaped, and the page sets text only through ``textContent`` and the canvas, so
    names in a replay cannot inject markup. After drawing frame 0 the page sets
    ``data-drawn="1"`` and ``data-distinct-colours`` on ``<body>``, and ``data-frame`` to the frame
    shown; opened as ``page.html#play`` it starts playing at once.

    :param replay: A replay dict or a replay file.
    :param out_path: The HTML file to write (atomically).
    :param drawer: The game's drawing of a state (default: found from the replay's ``env_id``;
        see :func:`~sb3_selfplay.replays.views.frame_views`).
    :return: The path written.
    :raises ReplayError: On a malformed replay.
    """
    data = as_replay(replay)
    views = frame_views(data, drawer)
    payload = {
        "metadata": data.get("metadata") or {},
        "game_params": data.get("game_params") or {},
        "frames": data.get("frames") or [],
        "kind": replay_kind(data),
        "views": clean_json(views, _VIEW_DIGITS),
    }
    page = player_template().replace(_SLOT, _json_for_script(payload))
    out = Path(out_path)
    atomic_write_bytes(out, page.encode("utf-8"))
    return out
