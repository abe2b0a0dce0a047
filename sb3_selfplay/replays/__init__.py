"""Replays: the file format, an episode recorder for batched games, an HTML player and GIFs.

- :mod:`~sb3_selfplay.replays.format`: the file format; :func:`make_replay`, :func:`save_replay`
  (atomic) and :func:`load_replay` (one-line :class:`ReplayError` on bad files).
- :mod:`~sb3_selfplay.replays.recorder`: :class:`EpisodeRecorder`, per-env frames of a batched
  game, yielding :class:`RecordedEpisode` s (with ``render()`` images for games without a
  vector drawing).
- :mod:`~sb3_selfplay.replays.views`: one picture per frame, from the game's own drawing.
- :mod:`~sb3_selfplay.replays.html`: :func:`render_html`, a standalone page (canvas player with
  play/pause/scrub/speed, metadata table); its template is package data
  (``templates/player.html``).
- :mod:`~sb3_selfplay.replays.gif`: :func:`render_gif`, an animated GIF (needs Pillow).
- :mod:`~sb3_selfplay.replays.png`: PNG in numpy and zlib, for stored images.
"""

from __future__ import annotations

from sb3_selfplay.replays.format import (
    METADATA_KEYS,
    REPLAY_FORMAT,
    REPLAY_SUFFIX,
    REPLAY_VERSION,
    ReplayError,
    load_replay,
    make_replay,
    replay_kind,
    save_replay,
)
from sb3_selfplay.replays.gif import render_gif
from sb3_selfplay.replays.html import render_html
from sb3_selfplay.replays.recorder import EpisodeRecorder, RecordedEpisode
from sb3_selfplay.replays.views import frame_views

__all__ = [
    "METADATA_KEYS",
    "REPLAY_FORMAT",
    "REPLAY_SUFFIX",
    "REPLAY_VERSION",
    "EpisodeRecorder",
    "RecordedEpisode",
    "ReplayError",
    "frame_views",
    "load_replay",
    "make_replay",
    "render_gif",
    "render_html",
    "replay_kind",
    "save_replay",
]
