"""Replays: the file format, an episode recorder for batched games, HTML and GIF rendering.

A replay is one episode, stored as gzip-compressed JSON (written atomically)::

    {"format": "sb3-selfplay-replay", "version": 1,
     "metadata": {"env_id", "learner_step", "opponent", "opponent_rating", "learner_rating", "seed",
                  "learner_seat", "outcome", "return", "length", "created", ...extras},
     "frames": [...], "game_params": {...}}

``frames[t]`` is the situation at the learner's decision ``t``: the game's state
(``game.get_state(env_index)``, e.g. Duel's agents, pillars and shots) when the game provides
one, else ``{"obs": ..., "action": ...}``. A batched game resets a finished env inside ``step``,
so the state after the last step is only known when the game reports it in the end-of-episode
info (``terminal_state``; for observation frames ``terminal_observation``): then a last frame
without an action is added and ``metadata["terminal_frame"]`` is true. With a frame stride
``k`` (``metadata["frame_stride"]``) only every k-th decision is kept.

- :func:`save_replay` / :func:`load_replay`: write / read (one-line :class:`ReplayError` on bad files).
- :class:`EpisodeRecorder`: per-env frames of a batched game, yielding finished episodes.
- :func:`render_html`: a standalone page (canvas player with play/pause/scrub/speed, metadata table).
- :func:`render_gif`: an animated GIF (needs Pillow).
"""

from __future__ import annotations

import datetime as _dt
import gzip
import io
import json
import math
import numbers
import os
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sb3_selfplay.atomic import atomic_write_bytes

__all__ = [
    "METADATA_KEYS",
    "REPLAY_FORMAT",
    "REPLAY_SUFFIX",
    "REPLAY_VERSION",
    "EpisodeRecorder",
    "RecordedEpisode",
    "ReplayError",
    "load_replay",
    "make_replay",
    "render_gif",
    "render_html",
    "replay_kind",
    "save_replay",
]

REPLAY_FORMAT = "sb3-selfplay-replay"
REPLAY_VERSION = 1
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


# ----------------------------------------------------------------------------- format
def _one_line(text: object) -> str:
    return " ".join(str(text).split())


def _clean(obj: Any, digits: int | None) -> Any:
    """JSON-ready copy: numpy -> Python, non-finite floats -> None, floats rounded to ``digits``."""
    kind = type(obj)  # exact-type fast paths first: frames are mostly dicts, lists and floats
    if kind is float:
        if not _isfinite(obj):
            return None
        return obj if digits is None else round(obj, digits)
    if kind is dict:
        return {k if type(k) is str else str(k): _clean(v, digits) for k, v in obj.items()}
    if kind is list or kind is tuple:
        return [_clean(v, digits) for v in obj]
    if obj is None or kind is str or kind is bool or kind is int:
        return obj
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (float, np.floating)):
        return _clean(float(obj), digits)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, str):
        return str(obj)
    if isinstance(obj, np.ndarray):
        return _clean(obj.tolist(), digits)
    if isinstance(obj, Mapping):
        return _clean(dict(obj), digits)
    if isinstance(obj, (list, tuple)):
        return [_clean(v, digits) for v in obj]
    raise TypeError(f"replay data must be JSON-like, got {type(obj).__name__}: {obj!r:.80}")


_isfinite = math.isfinite


def _now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def make_replay(
    frames: Sequence[Any],
    metadata: Mapping[str, Any] | None = None,
    game_params: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """
    Build a replay dict in the current format.

    :param frames: Per-step frames (game states or ``{"obs", "action"}`` dicts).
    :param metadata: Metadata; the keys of :data:`METADATA_KEYS` that are missing become ``None``
        (``created`` defaults to now, ``length`` to the number of frames). Extra keys are kept.
    :param game_params: The game's parameters during the episode (``game.get_params()``).
    :return: The replay.
    """
    meta: dict[str, Any] = dict.fromkeys(METADATA_KEYS)
    meta["created"] = _now_iso()
    meta["length"] = len(frames)
    meta.update(metadata or {})
    return {
        "format": REPLAY_FORMAT,
        "version": REPLAY_VERSION,
        "metadata": meta,
        "frames": list(frames),
        "game_params": dict(game_params) if game_params is not None else None,
    }


def _check_replay(replay: Any, where: str) -> dict[str, Any]:
    """``replay`` if it is a replay dict of a supported version, else :class:`ReplayError`."""
    if not isinstance(replay, dict):
        raise ReplayError(f"{where}: not an {REPLAY_FORMAT} file (top level is {type(replay).__name__}, not an object)")
    if replay.get("format") != REPLAY_FORMAT:
        raise ReplayError(f"{where}: not an {REPLAY_FORMAT} file (format={_one_line(repr(replay.get('format')))[:60]})")
    version = replay.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ReplayError(f"{where}: invalid replay version {_one_line(repr(version))[:40]}")
    if version > REPLAY_VERSION:
        raise ReplayError(
            f"{where}: replay version {version} is newer than this sb3_selfplay reads ({REPLAY_VERSION}); upgrade sb3_selfplay"
        )
    if not isinstance(replay.get("metadata"), dict):
        raise ReplayError(f"{where}: replay has no metadata object")
    if not isinstance(replay.get("frames"), list):
        raise ReplayError(f"{where}: replay has no frames list")
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
    data = _check_replay(_clean(replay, float_digits), str(path))
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
        raise ReplayError(f"cannot read replay file {path}: {_one_line(exc.strerror or exc)}") from None
    if raw.startswith(_GZIP_MAGIC):
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:
            raise ReplayError(f"corrupt replay file {path}: bad gzip data ({_one_line(exc)})") from None
    try:
        replay = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ReplayError(f"corrupt replay file {path}: not valid JSON ({_one_line(exc)})") from None
    return _check_replay(replay, str(path))


def _as_replay(replay: Mapping[str, Any] | str | os.PathLike[str]) -> dict[str, Any]:
    if isinstance(replay, (str, os.PathLike)):
        return load_replay(replay)
    return _check_replay(dict(replay), "replay")


def replay_kind(replay: Mapping[str, Any]) -> str:
    """
    :return: ``"duel"`` (frames are Duel states: agents and arena), ``"obs"`` (observation
        frames, also PettingZoo-adapter states with ``observations``), ``"state"`` (other game
        states) or ``"empty"``.
    """
    frames = replay.get("frames") or []
    if not frames:
        return "empty"
    first = frames[0]
    if isinstance(first, dict):
        if isinstance(first.get("agents"), list) and "arena_size" in first:
            return "duel"
        if "obs" in first or "observations" in first:
            return "obs"
    return "state"


# ----------------------------------------------------------------------------- recording
@dataclass
class RecordedEpisode:
    """
    One finished episode of one env slot.

    :param slot: The env index.
    :param frames: The frames (see the module docstring).
    :param length: Number of steps the episode took.
    :param info: The end-of-episode info of that env (``episode``, ``outcome``/``selfplay``, ...).
    :param game_params: ``game.get_params()`` when the episode started (None if unavailable).
    :param terminal_frame: Whether ``frames`` ends with the final situation (no action).
    :param stride: The frame stride: ``frames[j]`` is the situation at decision ``j * stride``.
    """

    slot: int
    frames: list[Any]
    length: int
    info: dict[str, Any]
    game_params: dict[str, Any] | None = None
    terminal_frame: bool = False
    stride: int = 1


class EpisodeRecorder:
    """
    Accumulates per-env-slot frames of a batched game (or of a VecEnv over one) and hands back
    finished episodes.

    Call :meth:`reset` after the envs reset, then :meth:`step` after every step. With
    ``use_state`` the frames are ``game.get_state(slot)`` (a Python call per recorded slot and
    kept step, about 40 µs for Duel, so record a few slots, not all); otherwise
    ``{"obs", "action"}`` from the arrays passed in. Only slots that were recorded from their
    episode's first step produce episodes. While ``enabled`` is False, :meth:`step` returns at
    once and nothing is kept; re-enabled slots start at their next episode.

    :param game: The game (``get_state``, ``get_params``); may be None for observation frames.
    :param num_envs: Number of env slots (default: ``game.num_envs``).
    :param slots: Env indices to record (default: all).
    :param stride: Keep the frame of every ``stride``-th step (1 = all).
    :param use_state: Record ``game.get_state`` frames (default: when the game has ``get_state``).
    :param max_frames: Drop an episode (until the slot's next episode) once it holds more frames.
    """

    def __init__(
        self,
        game: Any = None,
        num_envs: int | None = None,
        slots: Sequence[int] | None = None,
        stride: int = 1,
        use_state: bool | None = None,
        max_frames: int | None = 100_000,
    ) -> None:
        if num_envs is None:
            if game is None:
                raise ValueError("EpisodeRecorder needs a game or num_envs")
            num_envs = int(game.num_envs)
        if stride < 1:
            raise ValueError(f"stride must be >= 1, got {stride}")
        self.game = game
        self.num_envs = int(num_envs)
        slots_arr = np.arange(self.num_envs) if slots is None else np.unique(np.asarray(slots, dtype=np.int64))
        if slots_arr.size and (slots_arr.min() < 0 or slots_arr.max() >= self.num_envs):
            raise ValueError(f"slots must be in [0, {self.num_envs}), got {list(slots_arr)}")
        self.slots = slots_arr
        self._slot_list: list[int] = slots_arr.tolist()
        self.stride = int(stride)
        if use_state is None:
            use_state = game is not None and callable(getattr(game, "get_state", None))
        if use_state and game is None:
            raise ValueError("use_state=True needs a game")
        self.use_state = bool(use_state)
        self.max_frames = max_frames
        self._has_params = game is not None and callable(getattr(game, "get_params", None))
        self._enabled = True
        self._frames: dict[int, list[Any]] = {}
        self._params: dict[int, dict[str, Any] | None] = {}
        self._t: dict[int, int] = {}  # steps taken in the current episode, recorded slots only
        self._last_obs: np.ndarray | None = None

    # ------------------------------------------------------------------ switches
    @property
    def enabled(self) -> bool:
        """Recording on/off; turning it off drops the partial episodes."""
        return self._enabled

    @enabled.setter
    def enabled(self, value: bool) -> None:
        if not value:
            self._frames.clear()
            self._params.clear()
            self._t.clear()
            self._last_obs = None
        self._enabled = bool(value)

    # ------------------------------------------------------------------ recording
    def _frame(self, slot: int) -> Any:
        return self.game.get_state(slot)

    def _start(self, slot: int) -> None:
        self._t[slot] = 0
        self._params[slot] = self.game.get_params() if self._has_params else None
        self._frames[slot] = [self._frame(slot)] if self.use_state else []

    def reset(self, obs: np.ndarray | None = None, at_start: Sequence[bool] | np.ndarray | None = None) -> None:
        """
        Start recording: call right after the envs reset (or pass which slots are at an
        episode's start; the others wait for their next episode).

        :param obs: The current observations (needed for observation frames).
        :param at_start: Per-env flags "at the first step of an episode" (default: all).
        """
        if not self._enabled:
            return
        self._frames.clear()
        self._params.clear()
        self._t.clear()
        self._last_obs = None if obs is None else np.array(obs, copy=True)
        if not self.use_state and obs is None:
            raise ValueError("EpisodeRecorder.reset: observation frames need obs")
        start = np.ones(self.num_envs, bool) if at_start is None else np.asarray(at_start, bool)
        for slot in self._slot_list:
            if start[slot]:
                self._start(slot)

    def step(
        self,
        dones: np.ndarray,
        infos: Sequence[Mapping[str, Any]] | None = None,
        obs: np.ndarray | None = None,
        actions: np.ndarray | None = None,
    ) -> list[RecordedEpisode]:
        """
        Record one step of every recorded slot.

        :param dones: Per-env episode ends of this step.
        :param infos: Per-env infos of this step (end infos are kept with the episode).
        :param obs: Observations after the step (for finished envs: the next episode's first one).
        :param actions: Actions taken in this step (kept in observation frames).
        :return: The episodes finished in this step.
        """
        if not self._enabled:
            return []
        finished: list[RecordedEpisode] = []
        dones = np.asarray(dones)
        stride = self.stride
        obs_frames = not self.use_state
        done_list = dones[self.slots].tolist() if self.slots.size else []
        for slot, done in zip(self._slot_list, done_list):
            t = self._t.get(slot)
            if t is None:  # waiting for this slot's next episode
                if done:
                    self._start(slot)
                continue
            frames = self._frames[slot]
            if obs_frames and t % stride == 0:
                act = None if actions is None else np.asarray(actions[slot]).tolist()
                frames.append({"obs": self._last_obs[slot].tolist(), "action": act})
            t += 1
            if done:
                info = dict(infos[slot]) if infos is not None else {}
                terminal = False
                if self.use_state and info.get("terminal_state") is not None:
                    frames.append(info["terminal_state"])
                    terminal = True
                elif obs_frames and info.get("terminal_observation") is not None:
                    frames.append({"obs": np.asarray(info["terminal_observation"]).tolist(), "action": None})
                    terminal = True
                finished.append(
                    RecordedEpisode(slot, frames, t, info, self._params.get(slot), terminal_frame=terminal, stride=stride)
                )
                self._start(slot)
                continue
            self._t[slot] = t
            if self.use_state and t % stride == 0:
                frames.append(self._frame(slot))
            if self.max_frames is not None and len(frames) > self.max_frames:
                del self._t[slot], self._frames[slot], self._params[slot]
        if obs_frames and obs is not None:
            self._last_obs = np.array(obs, copy=True)
        return finished


# ----------------------------------------------------------------------------- HTML
def _json_for_script(data: Any) -> str:
    """JSON safe inside ``<script type="application/json">``: ``<``, ``>``, ``&`` as ``\\u003c`` etc."""
    text = json.dumps(_clean(data, None), ensure_ascii=True, separators=(",", ":"), allow_nan=False)
    return text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")


_HTML_TEMPLATE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>sb3-selfplay replay</title>
<style>
body { font-family: system-ui, sans-serif; margin: 16px; background: #f4f4f0; color: #222; }
#wrap { display: flex; flex-wrap: wrap; gap: 20px; align-items: flex-start; }
#stage canvas { border: 1px solid #444; background: #fff; display: block; }
#controls { margin-top: 8px; display: flex; gap: 8px; align-items: center; }
#controls input[type=range] { width: 300px; }
table { border-collapse: collapse; font-size: 13px; }
td, th { border: 1px solid #bbb; padding: 3px 8px; text-align: left; vertical-align: top; }
th { background: #e4e4dc; }
#frame-info { font-family: monospace; font-size: 12px; white-space: pre-wrap; max-width: 512px; }
h1 { font-size: 18px; margin: 0 0 10px 0; }
</style>
</head>
<body>
<h1 id="heading">Replay</h1>
<div id="wrap">
  <div id="stage">
    <canvas id="view" width="512" height="512"></canvas>
    <div id="controls">
      <button id="play" type="button">Play</button>
      <input id="scrub" type="range" min="0" max="0" value="0" step="1">
      <label>speed <select id="speed">
        <option value="0.25">0.25x</option><option value="0.5">0.5x</option>
        <option value="1" selected>1x</option><option value="2">2x</option>
        <option value="4">4x</option><option value="8">8x</option>
      </select></label>
      <span id="frame-label"></span>
    </div>
    <div id="frame-info"></div>
  </div>
  <div>
    <table id="metadata"><thead><tr><th>metadata</th><th>value</th></tr></thead><tbody></tbody></table>
    <details><summary>game parameters</summary>
      <table id="params"><tbody></tbody></table></details>
  </div>
</div>
<script type="application/json" id="replay-data">__REPLAY_JSON__</script>
<script>
"use strict";
(function () {
  const data = JSON.parse(document.getElementById("replay-data").textContent);
  const meta = data.metadata || {};
  const params = data.game_params || {};
  const frames = data.frames || [];
  const kind = data.kind;
  const canvas = document.getElementById("view");
  const ctx = canvas.getContext("2d");
  const W = canvas.width, H = canvas.height;
  const SEAT_COLOURS = [[40, 90, 220], [220, 60, 40]];
  const rgb = (c, a) => a === undefined ? "rgb(" + c.join(",") + ")" : "rgba(" + c.join(",") + "," + a + ")";
  const num = (v, d) => (typeof v === "number" && isFinite(v)) ? v : d;

  function fmt(v) {
    if (v === null || v === undefined) return "-";
    if (typeof v === "number") return Number.isInteger(v) ? String(v) : v.toPrecision(5);
    if (typeof v === "object") return JSON.stringify(v);
    return String(v);
  }
  function fillTable(id, obj) {
    const body = document.querySelector("#" + id + " tbody");
    for (const key of Object.keys(obj)) {
      const tr = document.createElement("tr");
      const k = document.createElement("td"); k.textContent = key;
      const v = document.createElement("td"); v.textContent = fmt(obj[key]);
      tr.appendChild(k); tr.appendChild(v); body.appendChild(tr);
    }
  }
  fillTable("metadata", meta);
  fillTable("params", params);
  const title = "Replay: " + fmt(meta.env_id) + " - learner vs " + fmt(meta.opponent) + " (" + fmt(meta.outcome) + ")";
  document.title = title;
  document.getElementById("heading").textContent = title;

  // ------------------------------------------------------------ Duel frames
  function rayLength(a, pillars, maxLen) {  // distance along the heading to the first pillar
    const dx = Math.cos(a.angle), dy = Math.sin(a.angle);
    let best = maxLen;
    for (const p of pillars) {
      const mx = p.x - a.x, my = p.y - a.y, proj = mx * dx + my * dy;
      const disc = proj * proj - (mx * mx + my * my - p.r * p.r);
      if (proj > 0 && disc >= 0) best = Math.min(best, proj - Math.sqrt(disc));
    }
    return Math.max(0, best);
  }
  function drawDuel(st) {
    const L = num(st.arena_size, num(params.arena_size, 10));
    const s = W / L;
    const X = x => x * s, Y = y => (L - y) * s;
    const fov = num(st.fov, num(params.fov, 90)) * Math.PI / 180;
    const vr = num(st.view_range, num(params.view_range, 8));
    const ra = num(params.agent_radius, 0.3);
    const shotRange = num(params.shot_range, vr);
    const maxHealth = num(params.max_health, 100);
    const agents = st.agents || [];
    ctx.fillStyle = "rgb(235,235,225)";
    ctx.fillRect(0, 0, W, H);
    agents.forEach((a, i) => {  // field-of-view cones
      const c = SEAT_COLOURS[i % 2];
      ctx.beginPath();
      ctx.moveTo(X(a.x), Y(a.y));
      ctx.arc(X(a.x), Y(a.y), vr * s, -a.angle - fov / 2, -a.angle + fov / 2);
      ctx.closePath();
      ctx.fillStyle = rgb(c, 0.18);
      ctx.fill();
    });
    ctx.fillStyle = "rgb(110,110,110)";
    for (const p of (st.pillars || [])) {
      ctx.beginPath(); ctx.arc(X(p.x), Y(p.y), Math.max(1, p.r * s), 0, 2 * Math.PI); ctx.fill();
    }
    agents.forEach((a, i) => {  // shots
      if (!a.shot) return;
      const o = agents[1 - i];
      const len = (a.hit && o) ? Math.hypot(o.x - a.x, o.y - a.y) : rayLength(a, st.pillars || [], shotRange);
      ctx.strokeStyle = a.hit ? "rgb(255,170,0)" : "rgb(20,20,20)";
      ctx.lineWidth = a.hit ? 3 : 2;
      ctx.beginPath();
      ctx.moveTo(X(a.x), Y(a.y));
      ctx.lineTo(X(a.x + len * Math.cos(a.angle)), Y(a.y + len * Math.sin(a.angle)));
      ctx.stroke();
      if (a.hit && o) {
        ctx.strokeStyle = "rgb(255,170,0)"; ctx.lineWidth = 3;
        ctx.beginPath(); ctx.arc(X(o.x), Y(o.y), ra * s * 2, 0, 2 * Math.PI); ctx.stroke();
      }
    });
    agents.forEach((a, i) => {  // bodies, headings, health bars
      const c = SEAT_COLOURS[i % 2];
      const r = Math.max(3, ra * s);
      ctx.fillStyle = rgb(c);
      ctx.beginPath(); ctx.arc(X(a.x), Y(a.y), r, 0, 2 * Math.PI); ctx.fill();
      ctx.strokeStyle = (i === meta.learner_seat) ? "rgb(255,215,0)" : "rgb(30,30,30)";
      ctx.lineWidth = 2; ctx.stroke();
      ctx.strokeStyle = "rgb(255,255,255)"; ctx.lineWidth = 2;
      ctx.beginPath(); ctx.moveTo(X(a.x), Y(a.y));
      ctx.lineTo(X(a.x) + 2.5 * r * Math.cos(a.angle), Y(a.y) - 2.5 * r * Math.sin(a.angle)); ctx.stroke();
      const frac = Math.max(0, Math.min(1, num(a.health, maxHealth) / maxHealth));
      const bw = 4 * r, bx = X(a.x) - bw / 2, by = Y(a.y) - r - 9;
      ctx.fillStyle = "rgb(60,60,60)"; ctx.fillRect(bx, by, bw, 5);
      ctx.fillStyle = rgb(c); ctx.fillRect(bx, by, bw * frac, 5);
      const tx = i === 0 ? 6 : W / 2 + 6;  // top bars, as in DuelGame.render
      ctx.fillStyle = "rgb(60,60,60)"; ctx.fillRect(tx, 4, W / 2 - 12, 6);
      ctx.fillStyle = rgb(c); ctx.fillRect(tx, 4, (W / 2 - 12) * frac, 6);
    });
    ctx.strokeStyle = "rgb(0,0,0)"; ctx.lineWidth = 2; ctx.strokeRect(1, 1, W - 2, H - 2);
    ctx.fillStyle = "rgb(20,20,20)"; ctx.font = "12px monospace";
    ctx.fillText("step " + fmt(st.step), 6, H - 8);
    if (current === frames.length - 1 && meta.outcome) {  // the result, on the last frame
      const text = "learner " + meta.outcome + (meta.terminal_frame ? "" : " (last step not shown)");
      ctx.font = "bold 16px sans-serif";
      const w = ctx.measureText(text).width + 16;
      ctx.fillStyle = "rgba(255,255,255,0.85)"; ctx.fillRect(W / 2 - w / 2, H / 2 - 16, w, 28);
      ctx.fillStyle = "rgb(20,20,20)"; ctx.textAlign = "center"; ctx.fillText(text, W / 2, H / 2 + 4);
      ctx.textAlign = "start";
    }
  }

  // ------------------------------------------------------------ observation frames
  function flatten(v, out) {
    if (Array.isArray(v)) { for (const x of v) flatten(x, out); }
    else if (typeof v === "number") out.push(v);
    else if (typeof v === "boolean") out.push(v ? 1 : 0);
    return out;
  }
  let obsScale = 1;
  for (const f of frames) {
    for (const x of flatten(f && (f.obs !== undefined ? f.obs : f.observations), [])) obsScale = Math.max(obsScale, Math.abs(x));
  }
  function drawBars(f) {
    const values = flatten(f.obs !== undefined ? f.obs : f.observations, []);
    ctx.fillStyle = "rgb(245,245,240)"; ctx.fillRect(0, 0, W, H);
    const mid = H / 2, n = Math.max(1, values.length), bw = (W - 20) / n;
    ctx.strokeStyle = "rgb(120,120,120)"; ctx.lineWidth = 1;
    ctx.beginPath(); ctx.moveTo(10, mid); ctx.lineTo(W - 10, mid); ctx.stroke();
    values.forEach((v, i) => {
      const h = (v / obsScale) * (H / 2 - 30);
      ctx.fillStyle = v >= 0 ? rgb(SEAT_COLOURS[0]) : rgb(SEAT_COLOURS[1]);
      ctx.fillRect(10 + i * bw + 1, h >= 0 ? mid - h : mid, Math.max(1, bw - 2), Math.abs(h));
    });
    ctx.fillStyle = "rgb(20,20,20)"; ctx.font = "12px monospace";
    ctx.fillText("observation (" + values.length + " values)   action: " + fmt(f.action), 10, 20);
    ctx.strokeStyle = "rgb(0,0,0)"; ctx.strokeRect(1, 1, W - 2, H - 2);
  }
  function drawOther(f) {
    ctx.fillStyle = "rgb(245,245,240)"; ctx.fillRect(0, 0, W, H);
    ctx.fillStyle = "rgb(20,20,20)"; ctx.font = "13px monospace";
    ctx.fillText("no drawing for this game's state; see the text below", 10, 24);
    ctx.strokeStyle = "rgb(0,0,0)"; ctx.strokeRect(1, 1, W - 2, H - 2);
  }

  // ------------------------------------------------------------ player
  const scrub = document.getElementById("scrub");
  const playBtn = document.getElementById("play");
  const speed = document.getElementById("speed");
  const label = document.getElementById("frame-label");
  const info = document.getElementById("frame-info");
  const stride = Math.max(1, num(meta.frame_stride, 1));
  const fps = Math.max(1, num(meta.fps, 20)) / stride;
  scrub.max = String(Math.max(0, frames.length - 1));
  let current = 0, playing = false, timer = null;

  function show(i) {
    current = Math.max(0, Math.min(frames.length - 1, i));
    const f = frames[current];
    if (f === undefined) { drawOther({}); label.textContent = "no frames"; return; }
    if (kind === "duel") drawDuel(f); else if (kind === "obs") drawBars(f); else drawOther(f);
    scrub.value = String(current);
    label.textContent = "frame " + (current + 1) + " / " + frames.length;
    info.textContent = kind === "duel" ? "" : JSON.stringify(f).slice(0, 2000);
    document.body.setAttribute("data-frame", String(current));
  }
  function schedule() {  // timers, not requestAnimationFrame: also plays in headless browsers
    timer = setTimeout(() => {
      if (!playing) return;
      show(current + 1);
      if (current >= frames.length - 1) setPlaying(false); else schedule();
    }, 1000 / (fps * Number(speed.value)));
  }
  function setPlaying(on) {
    playing = on && frames.length > 1;
    playBtn.textContent = playing ? "Pause" : "Play";
    clearTimeout(timer);
    if (playing) {
      if (current >= frames.length - 1) show(0);
      schedule();
    }
  }
  playBtn.addEventListener("click", () => setPlaying(!playing));
  scrub.addEventListener("input", () => show(Number(scrub.value)));
  document.addEventListener("keydown", e => {
    if (e.key === " ") { e.preventDefault(); setPlaying(!playing); }
    else if (e.key === "ArrowRight") show(current + 1);
    else if (e.key === "ArrowLeft") show(current - 1);
  });

  show(0);
  if (location.hash === "#play") setPlaying(true);  // autoplay: open the page as file.html#play
  // Self-check for tests and curious users: how many distinct colours frame 0 drew.
  const px = ctx.getImageData(0, 0, W, H).data;
  const colours = new Set();
  for (let k = 0; k < px.length && colours.size < 64; k += 4 * 97) colours.add((px[k] << 16) | (px[k + 1] << 8) | px[k + 2]);
  document.body.setAttribute("data-distinct-colours", String(colours.size));
  document.body.setAttribute("data-drawn", "1");
})();
</script>
</body>
</html>
"""


def render_html(replay: Mapping[str, Any] | str | os.PathLike[str], out_path: str | os.PathLike[str]) -> Path:
    """
    Write a standalone HTML player of a replay (no external resources): a canvas that draws
    each frame (Duel: arena, pillars, agents with facing, field-of-view cones, health bars and
    shots, the learner outlined in gold; observation frames: the observation as bars), with
    play / pause / scrub / speed controls (space and arrow keys too) and the metadata in a table.

    The replay is embedded as JSON inside ``<script type="application/json">`` with ``<``, ``>``
    and ``&`` escaped, and the page sets text only through ``textContent``, so names in a
    replay cannot inject markup. After drawing frame 0 the page sets ``data-drawn="1"`` and
    ``data-distinct-colours`` on ``<body>``, and ``data-frame`` to the frame shown; opened as
    ``page.html#play`` it starts playing at once.

    :param replay: A replay dict or a replay file.
    :param out_path: The HTML file to write (atomically).
    :return: The path written.
    """
    data = _as_replay(replay)
    payload = {
        "metadata": data.get("metadata") or {},
        "game_params": data.get("game_params") or {},
        "frames": data.get("frames") or [],
        "kind": replay_kind(data),
    }
    page = _HTML_TEMPLATE.replace("__REPLAY_JSON__", _json_for_script(payload))
    out = Path(out_path)
    atomic_write_bytes(out, page.encode("utf-8"))
    return out


# ----------------------------------------------------------------------------- GIF
_SEAT_RGB = ((40, 90, 220), (220, 60, 40))


def _num(value: Any, default: float) -> float:
    return float(value) if isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value) else default


def _ray_length(agent: Mapping[str, Any], pillars: Sequence[Mapping[str, Any]], max_len: float) -> float:
    """Distance along an agent's heading to the first pillar (at most ``max_len``); walls clip the picture."""
    dx, dy = math.cos(agent["angle"]), math.sin(agent["angle"])
    best = max_len
    for p in pillars:
        mx, my = p["x"] - agent["x"], p["y"] - agent["y"]
        proj = mx * dx + my * dy
        disc = proj * proj - (mx * mx + my * my - p["r"] ** 2)
        if proj > 0 and disc >= 0:
            best = min(best, proj - math.sqrt(disc))
    return max(0.0, best)


def _draw_duel_pil(state: Mapping[str, Any], params: Mapping[str, Any], size: int, learner_seat: Any) -> Any:
    """One Duel state as a PIL image (the same picture as the HTML player)."""
    from PIL import Image, ImageDraw

    L = _num(state.get("arena_size"), _num(params.get("arena_size"), 10.0))
    s = size / L
    fov = _num(state.get("fov"), _num(params.get("fov"), 90.0))
    vr = _num(state.get("view_range"), _num(params.get("view_range"), 8.0))
    ra = _num(params.get("agent_radius"), 0.3)
    shot_range = _num(params.get("shot_range"), vr)
    max_health = _num(params.get("max_health"), 100.0)
    agents = list(state.get("agents") or [])

    def xy(x: float, y: float) -> tuple[float, float]:
        return x * s, (L - y) * s

    img = Image.new("RGB", (size, size), (235, 235, 225))
    for i, a in enumerate(agents):  # field-of-view cones, blended at 20 %
        mask = Image.new("L", (size, size), 0)
        cx, cy = xy(a["x"], a["y"])
        r = vr * s
        deg = -math.degrees(a["angle"])
        ImageDraw.Draw(mask).pieslice((cx - r, cy - r, cx + r, cy + r), deg - fov / 2, deg + fov / 2, fill=51)
        img.paste(_SEAT_RGB[i % 2], (0, 0, size, size), mask)
    draw = ImageDraw.Draw(img)
    for p in state.get("pillars") or []:
        cx, cy = xy(p["x"], p["y"])
        r = max(1.0, p["r"] * s)
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=(110, 110, 110))
    for i, a in enumerate(agents):
        if not a.get("shot"):
            continue
        o = agents[1 - i] if len(agents) == 2 else None
        hit = bool(a.get("hit")) and o is not None
        length = math.hypot(o["x"] - a["x"], o["y"] - a["y"]) if hit else _ray_length(a, state.get("pillars") or [], shot_range)
        end = xy(a["x"] + length * math.cos(a["angle"]), a["y"] + length * math.sin(a["angle"]))
        draw.line([xy(a["x"], a["y"]), end], fill=(255, 170, 0) if hit else (20, 20, 20), width=2)
        if hit:
            cx, cy = xy(o["x"], o["y"])
            r = 2 * ra * s
            draw.ellipse((cx - r, cy - r, cx + r, cy + r), outline=(255, 170, 0), width=2)
    for i, a in enumerate(agents):
        colour = _SEAT_RGB[i % 2]
        cx, cy = xy(a["x"], a["y"])
        r = max(3.0, ra * s)
        outline = (255, 215, 0) if i == learner_seat else (30, 30, 30)
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=colour, outline=outline, width=2)
        draw.line([(cx, cy), (cx + 2.5 * r * math.cos(a["angle"]), cy - 2.5 * r * math.sin(a["angle"]))], fill=(255, 255, 255), width=2)
        frac = min(1.0, max(0.0, _num(a.get("health"), max_health) / max_health))
        x0 = 3 + i * size // 2
        width = size // 2 - 6
        draw.rectangle((x0, 2, x0 + width, 5), fill=(60, 60, 60))
        if frac > 0:
            draw.rectangle((x0, 2, x0 + int(width * frac), 5), fill=colour)
    draw.rectangle((0, 0, size - 1, size - 1), outline=(0, 0, 0))
    return img


def _draw_bars_pil(frame: Mapping[str, Any], size: int, scale: float) -> Any:
    """An observation frame as bars (positive blue, negative red)."""
    from PIL import Image, ImageDraw

    values = np.asarray(frame.get("obs", frame.get("observations")), dtype=np.float64).ravel()
    img = Image.new("RGB", (size, size), (245, 245, 240))
    draw = ImageDraw.Draw(img)
    mid = size / 2
    n = max(1, values.size)
    bw = (size - 10) / n
    draw.line([(5, mid), (size - 5, mid)], fill=(120, 120, 120))
    for i, v in enumerate(np.nan_to_num(values).tolist()):
        h = v / scale * (size / 2 - 10)
        x0 = 5 + i * bw
        top, bottom = (mid - h, mid) if h >= 0 else (mid, mid - h)
        draw.rectangle((x0, top, x0 + max(1.0, bw - 1), bottom), fill=_SEAT_RGB[0] if v >= 0 else _SEAT_RGB[1])
    draw.rectangle((0, 0, size - 1, size - 1), outline=(0, 0, 0))
    return img


def render_gif(
    replay: Mapping[str, Any] | str | os.PathLike[str],
    out_path: str | os.PathLike[str],
    game_factory: Callable[[], Any] | None = None,
    fps: float | None = None,
    size: int = 256,
    max_frames: int | None = None,
) -> Path:
    """
    Write an animated GIF of a replay (needs Pillow).

    Duel frames are drawn directly (the HTML player's picture); observation frames as bars;
    other game states through ``game_factory``: a 1-env game whose ``set_state(0, frame)`` and
    ``render(0)`` give each image (also usable for Duel, without the shot lines, which
    ``set_state`` does not restore).

    :param replay: A replay dict or a replay file.
    :param out_path: The GIF to write (atomically).
    :param game_factory: Builds a 1-env game to restore and render each state.
    :param fps: Frames per second (default: the replay's ``fps`` metadata over its frame stride, else 20).
    :param size: Side in pixels of drawn frames.
    :param max_frames: Keep at most this many frames (evenly spaced).
    :return: The path written.
    """
    try:
        from PIL import Image
    except ImportError as exc:
        raise ImportError("render_gif needs Pillow: pip install pillow") from exc
    data = _as_replay(replay)
    frames = list(data["frames"])
    if not frames:
        raise ReplayError("render_gif: the replay has no frames")
    meta = data["metadata"]
    if max_frames is not None and len(frames) > max_frames:
        frames = [frames[int(j)] for j in np.linspace(0, len(frames) - 1, max_frames).round()]
    if fps is None:
        fps = _num(meta.get("fps"), 20.0) / max(1.0, _num(meta.get("frame_stride"), 1.0))
    kind = replay_kind(data)
    params = data.get("game_params") or {}
    images: list[Any] = []
    if game_factory is not None:
        game = game_factory()
        try:
            for frame in frames:
                game.set_state(0, frame)
                images.append(Image.fromarray(np.asarray(game.render(0), dtype=np.uint8)))
        finally:
            game.close()
    elif kind == "duel":
        images = [_draw_duel_pil(f, params, size, meta.get("learner_seat")) for f in frames]
    elif kind == "obs":
        scale = max(
            [1.0] + [float(np.nanmax(np.abs(np.asarray(f.get("obs", f.get("observations")), dtype=np.float64)))) for f in frames]
        )
        images = [_draw_bars_pil(f, size, scale) for f in frames]
    else:
        raise ReplayError(
            f"render_gif: no drawing for {meta.get('env_id')!r} states; pass game_factory=lambda: make_game(env_id, 1)"
        )
    buf = io.BytesIO()
    duration = max(20, int(round(1000.0 / max(fps, 1e-3))))
    images[0].save(buf, format="GIF", save_all=True, append_images=images[1:], duration=duration, loop=0)
    out = Path(out_path)
    atomic_write_bytes(out, buf.getvalue())
    return out
