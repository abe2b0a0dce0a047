"""The replay file format: build, save (atomically) and load replays.

A replay is one episode, stored as gzip-compressed JSON::

    {"format": "sb3-selfplay-replay", "version": 2,
     "metadata": {"env_id", "learner_step", "opponent", "opponent_rating", "learner_rating", "seed",
                  "learner_seat", "outcome", "return", "length", "created", ...extras},
     "frames": [...], "game_params": {...}, "views": [...]}

``frames[t]`` is the situation at the learner's decision ``t``: the game's state
(``game.get_state(env_index)``, e.g. Duel's agents, pillars and shots) when the game provides
one, else ``{"obs": ..., "action": ...}``. A batched game resets a finished env inside ``step``,
so the state after the last step is only known when the game reports it in the end-of-episode
info (``terminal_state``; for observation frames ``terminal_observation``): then a last frame
without an action is added and ``metadata["terminal_frame"]`` is true. With a frame stride
``k`` (``metadata["frame_stride"]``) only every k-th decision is kept.

``views`` (version 2, optional) holds a picture of each frame, for games whose states have no
vector drawing: ``views[t]`` is ``{"png": "<base64 PNG>"}`` (an RGB image from the game's
``render()``), a :class:`~sb3_selfplay.games.drawing.Drawing` as a dict, or ``None`` (no
picture of that frame). Without ``views``, players draw the states with the game's drawing
(see :mod:`sb3_selfplay.replays.views`). A replay without views is written as version 1, the
format it then is, so older readers still open it; version 1 files load unchanged.
"""

from __future__ import annotations

import datetime as _dt
import gzip
import json
import math
import os
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sb3_selfplay.atomic import atomic_write_bytes

__all__ = [
    "METADATA_KEYS",
    "REPLAY_FORMAT",
    "REPLAY_SUFFIX",
    "REPLAY_VERSION",
    "ReplayError",
    "as_replay",
    "clean_json",
    "load_replay",
    "make_replay",
    "replay_kind",
    "save_replay",
]

REPLAY_FORMAT = "sb3-selfplay-replay"
#: The newest version this code reads and writes (1: no views; 2: optional ``views``).
REPLAY_VERSION = 2
#: File name ending of replay files.
REPLAY_SUFFIX = ".replay.json.gz"
#: Metadata keys every replay has (``None`` where unknown).
METADATA_KEYS = (
    "env_id",
    "learner_step",
    "opponent",
    "opponent_rating",
    "learner_rating",
    "seed",
    "learner_seat",
    "outcome",
    "return",
    "length",
    "created",
)
_GZIP_MAGIC = b"\x1f\x8b"


class ReplayError(ValueError):
    """A replay file is missing, unreadable or not a replay (the message is one line)."""


def one_line(text: object) -> str:
    """``text`` as one line (whitespace runs become one space)."""
    return " ".join(str(text).split())


def clean_json(obj: Any, digits: int | None) -> Any:
    """JSON-ready copy: numpy -> Python, non-finite floats -> None, floats rounded to ``digits``."""
    kind = type(obj)  # exact-type fast paths first: frames are mostly dicts, lists and floats
    if kind is float:
        if not math.isfinite(obj):
            return None
        return obj if digits is None else round(obj, digits)
    if kind is dict:
        return {k if type(k) is str else str(k): clean_json(v, digits) for k, v in obj.items()}
    if kind is list or kind is tuple:
        return [clean_json(v, digits) for v in obj]
    if obj is None or kind is str or kind is bool or kind is int:
        return obj
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (float, np.floating)):
        return clean_json(float(obj), digits)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, str):
        return str(obj)
    if isinstance(obj, np.ndarray):
        return clean_json(obj.tolist(), digits)
    if isinstance(obj, Mapping):
        return clean_json(dict(obj), digits)
    if isinstance(obj, (list, tuple)):
        return [clean_json(v, digits) for v in obj]
    raise TypeError(f"replay data must be JSON-like, got {type(obj).__name__}: {obj!r:.80}")


def _now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def make_replay(
    frames: Sequence[Any],
    metadata: Mapping[str, Any] | None = None,
    game_params: Mapping[str, Any] | None = None,
    views: Sequence[Any] | None = None,
) -> dict[str, Any]:
    """
    Build a replay dict in the current format.

    :param frames: Per-step frames (game states or ``{"obs", "action"}`` dicts).
    :param metadata: Metadata; the keys of :data:`METADATA_KEYS` that are missing become ``None``
        (``created`` defaults to now, ``length`` to the number of frames). Extra keys are kept.
    :param game_params: The game's parameters during the episode (``game.get_params()``).
    :param views: A picture per frame (see the module docstring), e.g. ``RecordedEpisode.views``;
        None: the frames are drawn by the game's drawing when viewed.
    :return: The replay.
    """
    meta: dict[str, Any] = dict.fromkeys(METADATA_KEYS)
    meta["created"] = _now_iso()
    meta["length"] = len(frames)
    meta.update(metadata or {})
    replay = {
        "format": REPLAY_FORMAT,
        "version": 1 if views is None else 2,
        "metadata": meta,
        "frames": list(frames),
        "game_params": dict(game_params) if game_params is not None else None,
    }
    if views is not None:
        if len(views) != len(frames):
            raise ValueError(f"make_replay: {len(views)} views for {len(frames)} frames")
        replay["views"] = list(views)
    return replay


def _check_replay(replay: Any, where: str) -> dict[str, Any]:
    """``replay`` if it is a replay dict of a supported version, else :class:`ReplayError`."""
    if not isinstance(replay, dict):
        raise ReplayError(f"{where}: not an {REPLAY_FORMAT} file (top level is {type(replay).__name__}, not an object)")
    if replay.get("format") != REPLAY_FORMAT:
        raise ReplayError(f"{where}: not an {REPLAY_FORMAT} file (format={one_line(repr(replay.get('format')))[:60]})")
    version = replay.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ReplayError(f"{where}: invalid replay version {one_line(repr(version))[:40]}")
    if version > REPLAY_VERSION:
        raise ReplayError(
            f"{where}: replay version {version} is newer than this sb3_selfplay reads ({REPLAY_VERSION}); upgrade sb3_selfplay"
        )
    if not isinstance(replay.get("metadata"), dict):
        raise ReplayError(f"{where}: replay has no metadata object")
    frames = replay.get("frames")
    if not isinstance(frames, list):
        raise ReplayError(f"{where}: replay has no frames list")
    views = replay.get("views")
    if views is not None and (not isinstance(views, list) or len(views) != len(frames)):
        got = f"{len(views)} views" if isinstance(views, list) else f"views of type {type(views).__name__}"
        raise ReplayError(f"{where}: replay has {got} for {len(frames)} frames")
    return replay


def save_replay(path: str | os.PathLike[str], replay: Mapping[str, Any], float_digits: int | None = 5) -> Path:
    """
    Write a replay atomically as gzip JSON (temp file in the same directory, fsync, ``os.replace``),
    so readers never see a half-written file.

    :param path: Destination (``.replay.json.gz`` by convention).
    :param replay: A replay dict (see :func:`make_replay`).
    :param float_digits: Round floats to this many decimals (smaller files); ``None`` keeps them exact.
    :return: The path written.
    """
    path = Path(path)
    data = _check_replay(clean_json(replay, float_digits), str(path))
    text = json.dumps(data, separators=(",", ":"), allow_nan=False)
    # mtime=0: identical replays give identical bytes.
    atomic_write_bytes(path, gzip.compress(text.encode("utf-8"), compresslevel=6, mtime=0))
    return path


def load_replay(path: str | os.PathLike[str]) -> dict[str, Any]:
    """
    Read a replay (gzip JSON; plain JSON is accepted too).

    :param path: The file.
    :return: The replay dict.
    :raises ReplayError: With a one-line message if the file is missing, corrupt or not a replay.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ReplayError(f"replay file not found: {path}") from None
    except IsADirectoryError:
        raise ReplayError(f"replay path is a directory, not a file: {path}") from None
    except OSError as exc:
        raise ReplayError(f"cannot read replay file {path}: {one_line(exc.strerror or exc)}") from None
    if raw.startswith(_GZIP_MAGIC):
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:
            raise ReplayError(f"corrupt replay file {path}: bad gzip data ({one_line(exc)})") from None
    try:
        replay = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ReplayError(f"corrupt replay file {path}: not valid JSON ({one_line(exc)})") from None
    return _check_replay(replay, str(path))


def as_replay(replay: Mapping[str, Any] | str | os.PathLike[str]) -> dict[str, Any]:
    """A replay dict from a dict (checked) or a file (loaded)."""
    if isinstance(replay, (str, os.PathLike)):
        return load_replay(replay)
    return _check_replay(dict(replay), "replay")


def replay_kind(replay: Mapping[str, Any]) -> str:
    """
    :return: ``"views"`` (the replay holds a picture per frame), ``"obs"`` (observation frames,
        also PettingZoo-adapter states with ``observations``), ``"state"`` (game states, drawn
        by the game's drawing when viewed) or ``"empty"``.
    """
    frames = replay.get("frames") or []
    if not frames:
        return "empty"
    if replay.get("views") is not None:
        return "views"
    first = frames[0]
    if isinstance(first, dict) and ("obs" in first or "observations" in first):
        return "obs"
    return "state"
