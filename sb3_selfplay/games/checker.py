"""``check_game``: the :class:`~sb3_selfplay.games.base.TwoPlayerGame` counterpart of ``check_env``.

Users bring their own games; this plays a game with random actions and checks the contract
self-play relies on (shapes, dtypes, auto-reset, explicit outcomes, episode bookkeeping), so a
broken game fails here with a clear message rather than deep inside training.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
from gymnasium import spaces

from sb3_selfplay.games.base import TwoPlayerGame, action_mask_size, outcome_winner
from sb3_selfplay.games.bots import RandomBot

__all__ = ["check_game"]

END_KEYS = ("outcome", "terminal_observation", "episode", "metrics", "reward_components")


def _check_pairs(name: str, mapping: Any) -> None:
    assert isinstance(mapping, dict), f"info[{name!r}] must be a dict, got {type(mapping).__name__}"
    for key, value in mapping.items():
        assert isinstance(key, str), f"info[{name!r}] keys must be strings, got {key!r}"
        assert len(value) == 2, f"info[{name!r}][{key!r}] must hold one value per seat, got {value!r}"


def check_game(
    game: TwoPlayerGame,
    n_steps: int = 300,
    seed: int = 0,
    check_render: bool = True,
    min_episodes: int = 0,
) -> dict[str, int]:
    """
    Play ``game`` with random actions and assert that it follows the two-player game protocol.

    Checked: spaces and shapes; dtypes (``float32`` rewards, ``bool`` flags); observations in
    the observation space; ``reset(seed)`` determinism; one info dict per env; at every episode
    end of every env an explicit, valid outcome (``{"winner": 0 | 1 | None}``), a terminal
    observation, the episode return (equal to the summed rewards) and length, per-seat metrics
    and reward components (summing to the return); the automatic reset; JSON-serialisable
    ``get_state``; ``get_params``/``set_params``; ``render``.

    Games with action masks are played with random legal actions, and their masks are checked
    (shape, dtype, a legal action for every seat that acts). Turn-based games (``turn_based``)
    are also checked for ``to_play()`` (shape, values; the seat to move alone has legal actions)
    and for ``step(actions, active=...)``: every third step only a random half of the envs is
    active, and the others must not change (same observation, whose turn, zero rewards, no
    episode end, an empty info).

    :param game: The game (it is reset and stepped).
    :param n_steps: Number of batched steps to play.
    :param seed: Seed for ``reset`` and the random actions.
    :param check_render: Also check ``render(0)``.
    :param min_episodes: Fail unless at least this many episodes finished.
    :return: ``{"episodes": ..., "wins_0": ..., "wins_1": ..., "draws": ...}``.
    """
    n = game.num_envs
    assert isinstance(n, int) and n >= 1, f"num_envs must be a positive int, got {n!r}"
    obs_space, act_space = game.observation_space, game.action_space
    assert isinstance(obs_space, spaces.Space) and isinstance(act_space, spaces.Space), "spaces must be gymnasium spaces"
    obs_shape = (n, 2, *obs_space.shape)

    obs = game.reset(seed=seed)
    again = game.reset(seed=seed)
    assert isinstance(obs, np.ndarray) and obs.shape == obs_shape, f"reset() must return shape {obs_shape}"
    assert np.array_equal(obs, again), "reset(seed) must be deterministic"
    assert all(o in obs_space for o in obs.reshape(-1, *obs_space.shape)), "reset() observation outside the space"

    act_space.seed(seed)
    turn_based = bool(getattr(game, "turn_based", False))
    mask_len = action_mask_size(act_space)
    bots = [RandomBot(n, act_space, seed=seed + k) for k in range(2)]
    rng = np.random.default_rng(seed)
    returns = np.zeros((n, 2), np.float64)
    lengths = np.zeros(n, np.int64)
    counts = {"episodes": 0, "wins_0": 0, "wins_1": 0, "draws": 0}
    for t in range(n_steps):
        masks = _checked_masks(game, n, mask_len, turn_based)
        to_play = game.to_play() if turn_based else None
        if masks is None:
            actions = np.array([[act_space.sample(), act_space.sample()] for _ in range(n)])
        else:
            actions = np.stack([bots[k].act(obs[:, k], None, masks[:, k]) for k in range(2)], axis=1)
        active = None
        if turn_based and t % 3 == 2:
            active = rng.random(n) < 0.5
            before = obs.copy()
            obs, rewards, terminated, truncated, infos = game.step(actions, active=active)
            idle = ~active
            assert np.array_equal(obs[idle], before[idle]), "step(active=...) changed an inactive env's observation"
            assert not rewards[idle].any(), "step(active=...) rewarded an inactive env"
            assert not (terminated | truncated)[idle].any(), "step(active=...) ended an inactive env's episode"
            assert all(not infos[i] for i in np.flatnonzero(idle)), "an inactive env's info must be empty"
            assert np.array_equal(game.to_play()[idle], to_play[idle]), "step(active=...) changed an inactive turn"
        else:
            obs, rewards, terminated, truncated, infos = game.step(actions)
        assert isinstance(obs, np.ndarray) and obs.shape == obs_shape, f"step() obs must have shape {obs_shape}"
        assert rewards.shape == (n, 2) and rewards.dtype == np.float32, "rewards must be float32 of shape (n, 2)"
        for flag, name in ((terminated, "terminated"), (truncated, "truncated")):
            assert flag.shape == (n,) and flag.dtype == np.bool_, f"{name} must be bool of shape (n,)"
        assert not (terminated & truncated).any(), "an episode cannot be both terminated and truncated"
        assert isinstance(infos, list) and len(infos) == n, "infos must be a list with one dict per env"
        assert all(o in obs_space for o in obs.reshape(-1, *obs_space.shape)), "step() observation outside the space"
        returns += rewards
        lengths += 1 if active is None else active
        done = terminated | truncated
        for i in range(n):
            info = infos[i]
            if not done[i]:
                assert "outcome" not in info, "only finished episodes may report an outcome"
                continue
            try:
                winner = outcome_winner(info, game, i)
            except ValueError as exc:
                raise AssertionError(str(exc)) from None
            missing = [k for k in END_KEYS if k not in info]
            assert not missing, f"info of a finished episode lacks {missing}"
            last = np.asarray(info["terminal_observation"])
            assert last.shape == obs_shape[1:], f"terminal_observation must have shape {obs_shape[1:]}"
            episode = info["episode"]
            assert len(episode["r"]) == 2 and int(episode["l"]) == lengths[i], "episode must hold r (2 values) and l"
            assert np.allclose(episode["r"], returns[i], atol=1e-4), "episode return must equal the summed rewards"
            _check_pairs("metrics", info["metrics"])
            _check_pairs("reward_components", info["reward_components"])
            total = np.sum([v for v in info["reward_components"].values()], axis=0)
            assert np.allclose(total, returns[i], atol=1e-4), "reward components must sum to the episode return"
            counts["episodes"] += 1
            key = "draws" if winner is None else f"wins_{winner}"
            counts[key] += 1
            returns[i] = 0.0
            lengths[i] = 0
    assert counts["episodes"] >= min_episodes, f"only {counts['episodes']} episodes finished"

    _checked_masks(game, n, mask_len, turn_based)
    json.dumps(game.get_state(0))
    params = game.get_params()
    assert isinstance(params, dict), "get_params() must return a dict"
    game.set_params(**params)
    if check_render:
        frame = game.render(0)
        assert isinstance(frame, np.ndarray) and frame.dtype == np.uint8, "render() must return a uint8 array"
        assert frame.ndim == 3 and frame.shape[2] == 3, "render() must return an RGB image (H, W, 3)"
    return counts


def _checked_masks(game: TwoPlayerGame, n: int, mask_len: int | None, turn_based: bool) -> np.ndarray | None:
    """The game's action masks (None: it has none), after checking them and ``to_play()``."""
    to_play = game.to_play()
    masks = game.action_masks()
    if not turn_based:
        assert to_play is None, "a simultaneous-move game's to_play() must be None (else set turn_based = True)"
    else:
        assert masks is not None, "a turn-based game must report action_masks()"
        assert isinstance(to_play, np.ndarray) and to_play.shape == (n,), f"to_play() must be an array of shape ({n},)"
        assert np.issubdtype(to_play.dtype, np.integer), "to_play() must hold integer seats"
        assert np.isin(to_play, (0, 1)).all(), "to_play() must hold seats 0 or 1"
    if masks is None:
        return None
    assert mask_len is not None, f"masks need a Discrete, MultiDiscrete or MultiBinary space, not {game.action_space}"
    assert isinstance(masks, np.ndarray) and masks.dtype == np.bool_, "action_masks() must be a bool array"
    assert masks.shape == (n, 2, mask_len), f"action_masks() must have shape ({n}, 2, {mask_len})"
    if turn_based:
        movers = masks[np.arange(n), to_play]
        waiting = masks[np.arange(n), 1 - to_play]
        assert movers.any(axis=1).all(), "the seat to move must have a legal action in every env"
        assert not waiting.any(), "the seat not to move must have an all-False action mask"
    else:
        assert masks.any(axis=2).all(), "every seat must have a legal action in every env"
    return masks
