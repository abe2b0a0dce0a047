"""Recording episodes of a batched game (or of a VecEnv over one) as replay frames.

Which picture a replay gets is decided once per recorder, from the game:

1. The game draws its states (``game.draw_state(state, params)`` returns a
   :class:`~sb3_selfplay.games.drawing.Drawing`; Duel does): only the states are kept, and the
   players draw them when the replay is viewed (:mod:`sb3_selfplay.replays.views`).
2. Otherwise, if ``game.render(env_index)`` returns RGB images (e.g. a
   :class:`~sb3_selfplay.games.PettingZooGame` whose env was built with
   ``render_mode="rgb_array"``), each kept state frame also gets its image, stored as PNG in
   :attr:`RecordedEpisode.views` (pass them on: ``make_replay(..., views=ep.views)``). This costs
   a ``render()`` and a PNG encoding (~3 ms for 256 x 256) per kept frame, so record few slots or
   a frame stride. The final situation of an episode is only an image when the game reports one
   (``info["terminal_render"]``); else that frame has no picture.
3. Otherwise the states (or observations) are shown as text or bars.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from sb3_selfplay.replays.format import one_line
from sb3_selfplay.replays.png import png_to_base64

__all__ = ["EpisodeRecorder", "RecordedEpisode", "game_draws_states"]


def game_draws_states(game: Any) -> bool:
    """Whether ``game`` has a vector drawing of its states (``draw_state`` returning a drawing)."""
    draw = getattr(game, "draw_state", None)
    if not callable(draw):
        return False
    params = game.get_params() if callable(getattr(game, "get_params", None)) else None
    return draw(game.get_state(0), params) is not None


@dataclass
class RecordedEpisode:
    """
    One finished episode of one env slot.

    :param slot: The env index.
    :param frames: The frames (see :mod:`sb3_selfplay.replays.format`).
    :param length: Number of steps the episode took.
    :param info: The end-of-episode info of that env (``episode``, ``outcome``/``selfplay``, ...).
    :param game_params: ``game.get_params()`` when the episode started (None if unavailable).
    :param terminal_frame: Whether ``frames`` ends with the final situation (no action).
    :param stride: The frame stride: ``frames[j]`` is the situation at decision ``j * stride``.
    :param views: A picture per frame (``{"png": base64}`` or None) for games without a vector
        drawing; None when the frames are drawn from their states.
    """

    slot: int
    frames: list[Any]
    length: int
    info: dict[str, Any]
    game_params: dict[str, Any] | None = None
    terminal_frame: bool = False
    stride: int = 1
    views: list[dict[str, Any] | None] | None = None


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

    :param game: The game (``get_state``, ``get_params``, ``draw_state``, ``render``); may be None
        for observation frames.
    :param num_envs: Number of env slots (default: ``game.num_envs``).
    :param slots: Env indices to record (default: all).
    :param stride: Keep the frame of every ``stride``-th step (1 = all).
    :param use_state: Record ``game.get_state`` frames (default: when the game has ``get_state``).
    :param max_frames: Drop an episode (until the slot's next episode) once it holds more frames.
    :param rgb_frames: Keep a ``render()`` image with every state frame (see the module
        docstring). Default (None): when the game has no vector drawing and renders.
    """

    def __init__(
        self,
        game: Any = None,
        num_envs: int | None = None,
        slots: Sequence[int] | None = None,
        stride: int = 1,
        use_state: bool | None = None,
        max_frames: int | None = 100_000,
        rgb_frames: bool | None = None,
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
        if rgb_frames and not self.use_state:
            raise ValueError("rgb_frames=True needs state frames (use_state) and a game")
        self.rgb_frames = rgb_frames  # None: decided at the first recorded frame
        self.max_frames = max_frames
        self._has_params = game is not None and callable(getattr(game, "get_params", None))
        self._enabled = True
        self._frames: dict[int, list[Any]] = {}
        self._views: dict[int, list[dict[str, Any] | None]] = {}
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
            self._forget_all()
            self._last_obs = None
        self._enabled = bool(value)

    def _forget_all(self) -> None:
        self._frames.clear()
        self._views.clear()
        self._params.clear()
        self._t.clear()

    # ------------------------------------------------------------------ recording
    def _decide_rgb(self, slot: int) -> bool:
        """Whether to keep ``render()`` images: once, at the first recorded frame."""
        if self.rgb_frames is None:
            self.rgb_frames = False
            if self.use_state and not game_draws_states(self.game):
                try:
                    self._image(slot)
                    self.rgb_frames = True
                except (NotImplementedError, RuntimeError, ValueError, TypeError) as exc:
                    warnings.warn(
                        f"EpisodeRecorder: {type(self.game).__name__} has no vector drawing (draw_state) and "
                        f"render() gave no RGB image ({one_line(exc)[:160]}); replays will show its states as text",
                        RuntimeWarning,
                        stacklevel=3,
                    )
        return bool(self.rgb_frames)

    def _image(self, slot: int) -> dict[str, Any]:
        image = self.game.render(slot)
        if not isinstance(image, np.ndarray):
            raise TypeError(f"render() returned {type(image).__name__}, not an RGB array")
        return {"png": png_to_base64(image)}

    def _keep(self, slot: int) -> None:
        """Append the slot's current state (and image) to its episode."""
        self._frames[slot].append(self.game.get_state(slot))
        if slot in self._views:
            self._views[slot].append(self._image(slot))

    def _start(self, slot: int) -> None:
        self._t[slot] = 0
        self._params[slot] = self.game.get_params() if self._has_params else None
        self._frames[slot] = []
        self._views.pop(slot, None)
        if self.use_state:
            if self._decide_rgb(slot):
                self._views[slot] = []
            self._keep(slot)

    def reset(self, obs: np.ndarray | None = None, at_start: Sequence[bool] | np.ndarray | None = None) -> None:
        """
        Start recording: call right after the envs reset (or pass which slots are at an
        episode's start; the others wait for their next episode).

        :param obs: The current observations (needed for observation frames).
        :param at_start: Per-env flags "at the first step of an episode" (default: all).
        """
        if not self._enabled:
            return
        self._forget_all()
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
                finished.append(self._finish(slot, t, dict(infos[slot]) if infos is not None else {}))
                self._start(slot)
                continue
            self._t[slot] = t
            if self.use_state and t % stride == 0:
                self._keep(slot)
            if self.max_frames is not None and len(frames) > self.max_frames:
                del self._t[slot], self._frames[slot], self._params[slot]
                self._views.pop(slot, None)
        if obs_frames and obs is not None:
            self._last_obs = np.array(obs, copy=True)
        return finished

    def _finish(self, slot: int, length: int, info: dict[str, Any]) -> RecordedEpisode:
        """The slot's episode, with the final situation when the game reported it."""
        frames = self._frames[slot]
        views = self._views.get(slot)
        terminal = False
        if self.use_state and info.get("terminal_state") is not None:
            frames.append(info["terminal_state"])
            terminal = True
            if views is not None:
                image = info.get("terminal_render")
                views.append({"png": png_to_base64(np.asarray(image))} if isinstance(image, np.ndarray) else None)
        elif not self.use_state and info.get("terminal_observation") is not None:
            frames.append({"obs": np.asarray(info["terminal_observation"]).tolist(), "action": None})
            terminal = True
        return RecordedEpisode(
            slot, frames, length, info, self._params.get(slot), terminal_frame=terminal, stride=self.stride, views=views
        )
