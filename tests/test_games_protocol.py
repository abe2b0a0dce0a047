"""The two-player game protocol: registry, factory, and the contract checker on the built-in game."""

from __future__ import annotations

import json

import numpy as np
import pytest

from sb3_selfplay.games import (
    GAME_REGISTRY,
    DuelGame,
    TwoPlayerGame,
    check_game,
    make_game,
    outcome_winner,
    register_game,
    registered_games,
)


def test_duel_is_registered_and_built_with_params():
    assert "Duel-v0" in registered_games()
    game = make_game("Duel-v0", num_envs=3, fov=60.0, max_steps=50)
    assert isinstance(game, TwoPlayerGame) and isinstance(game, DuelGame)
    assert game.num_envs == 3
    assert game.get_params()["fov"] == 60.0
    assert game.get_params()["max_steps"] == 50


def test_unknown_game_id_names_it_and_the_known_ids():
    with pytest.raises(ValueError, match="Nope-v0") as err:
        make_game("Nope-v0", num_envs=1)
    assert "Duel-v0" in str(err.value)


def test_register_game_conflicts_and_overwrite():
    def factory(num_envs: int = 1, **params):
        return DuelGame(num_envs=num_envs, **params)

    def other(num_envs: int = 1, **params):
        return DuelGame(num_envs=num_envs, **params)

    try:
        register_game("Test-v0", factory)
        register_game("Test-v0", factory)  # same factory again: a no-op
        with pytest.raises(ValueError, match="already registered"):
            register_game("Test-v0", other)
        register_game("Test-v0", other, overwrite=True)
        assert GAME_REGISTRY["Test-v0"] is other
        assert make_game("Test-v0", num_envs=2).num_envs == 2
    finally:
        GAME_REGISTRY.pop("Test-v0", None)


def test_protocol_is_abstract():
    with pytest.raises(TypeError):
        TwoPlayerGame(num_envs=1)  # type: ignore[abstract]


@pytest.mark.parametrize("num_envs", [1, 5])
def test_duel_passes_check_game(num_envs):
    game = make_game("Duel-v0", num_envs=num_envs, max_steps=30, render_size=32)
    counts = check_game(game, n_steps=70, seed=3, min_episodes=2 * num_envs)
    assert counts["episodes"] == counts["wins_0"] + counts["wins_1"] + counts["draws"]


def test_step_shapes_dtypes_and_infos():
    game = make_game("Duel-v0", num_envs=4, seed=0)
    dim = game.observation_space.shape[0]
    obs = game.reset(seed=1)
    assert obs.shape == (4, 2, dim) and obs.dtype == np.float32
    actions = np.stack([game.action_space.sample() for _ in range(8)]).reshape(4, 2, -1)
    obs, rewards, terminated, truncated, infos = game.step(actions)
    assert obs.shape == (4, 2, dim) and obs.dtype == np.float32
    assert rewards.shape == (4, 2) and rewards.dtype == np.float32
    assert terminated.shape == truncated.shape == (4,)
    assert terminated.dtype == truncated.dtype == np.bool_
    assert isinstance(infos, list) and len(infos) == 4 and all(isinstance(i, dict) for i in infos)
    with pytest.raises(ValueError, match="shape"):
        game.step(actions[:, 0])


def test_auto_reset_and_end_of_episode_info():
    game = make_game("Duel-v0", num_envs=3, seed=0, max_steps=4)
    game.reset()
    idle = np.zeros((3, 2, 4), np.int64)
    for _ in range(3):
        _, _, terminated, truncated, infos = game.step(idle)
        assert not (terminated | truncated).any() and infos == [{}, {}, {}]
    obs, rewards, terminated, truncated, infos = game.step(idle)
    assert truncated.all() and not terminated.any()
    for info in infos:
        assert info["outcome"] == {"winner": None}
        assert info["terminal_observation"].shape == obs.shape[1:]
        assert info["episode"]["l"] == 4 and len(info["episode"]["r"]) == 2
        assert set(info["metrics"]) >= {"shots", "hits", "accuracy", "damage_dealt", "damage_taken",
                                        "distance_moved", "steps_opponent_visible"}  # fmt: skip
        assert all(len(v) == 2 for v in info["metrics"].values())
        assert set(info["reward_components"]) == {"outcome", "damage_dealt", "damage_taken", "time"}
        json.dumps({k: v for k, v in info.items() if k != "terminal_observation"})
    # The returned observation already belongs to the next episode; the terminal one is in the info.
    t = 7  # OBS_TIME
    assert np.all(obs[:, :, t] == 0.0)
    assert np.all(np.stack([i["terminal_observation"][:, t] for i in infos]) == 1.0)


def test_reset_with_seed_is_deterministic():
    a = make_game("Duel-v0", num_envs=4, seed=0)
    b = make_game("Duel-v0", num_envs=4, seed=123)
    np.testing.assert_array_equal(a.reset(seed=7), b.reset(seed=7))
    actions = np.random.default_rng(0).integers(0, a.action_space.nvec, size=(20, 4, 2, 4))
    for act in actions:
        oa, ra, *_ = a.step(act)
        ob, rb, *_ = b.step(act)
        np.testing.assert_array_equal(oa, ob)
        np.testing.assert_array_equal(ra, rb)


class NoOutcome(DuelGame):
    """Duel with a bug: finished envs report everything but the outcome."""

    game_id = None

    def step(self, actions):
        obs, rewards, terminated, truncated, infos = super().step(actions)
        for info in infos:
            info.pop("outcome", None)
        return obs, rewards, terminated, truncated, infos


def test_missing_outcome_is_an_error_naming_the_game():
    game = NoOutcome(num_envs=2, max_steps=3)
    with pytest.raises(AssertionError, match="game 'NoOutcome': a finished episode \\(env 0\\) has no outcome"):
        check_game(game, n_steps=5)
    with pytest.raises(ValueError, match="'Duel-v0': outcome winner \\(env 3\\) must be 0, 1 or None, got 2"):
        outcome_winner({"outcome": {"winner": 2}}, make_game("Duel-v0"), 3)
    assert outcome_winner({"outcome": {"winner": np.int64(1)}}, "G") == 1
    assert outcome_winner({"outcome": {"winner": None}}, "G") is None


def test_make_game_sets_the_game_id():
    assert make_game("Duel-v0").game_id == DuelGame.game_id == "Duel-v0"
    try:
        register_game("Alias-v0", DuelGame)
        assert make_game("Alias-v0").game_id == "Alias-v0"
        assert DuelGame.game_id == "Duel-v0"  # set on the instance, not the class
    finally:
        GAME_REGISTRY.pop("Alias-v0", None)
