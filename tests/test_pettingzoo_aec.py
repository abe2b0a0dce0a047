"""PettingZooAECGame: PettingZoo's turn-based classic games (tic-tac-toe, Connect Four) as batched games."""

from __future__ import annotations

import numpy as np
import pytest
from sb3_contrib.common.maskable.utils import get_action_masks

from sb3_selfplay.games import PettingZooAECGame, check_game, make_game
from sb3_selfplay.games.base import GAME_REGISTRY, register_game
from sb3_selfplay.selfplay.tournament import run_tournament
from sb3_selfplay.selfplay.vecenv import SelfPlayVecEnv

tictactoe_v3 = pytest.importorskip("pettingzoo.classic.tictactoe_v3")
connect_four_v3 = pytest.importorskip("pettingzoo.classic.connect_four_v3")


def random_legal(rng: np.random.Generator, masks: np.ndarray) -> np.ndarray:
    keys = rng.random(masks.shape)
    keys[~masks] = -1.0
    return keys.argmax(axis=-1)


def play(game: PettingZooAECGame, moves: list[int], env: int = 0):
    out = None
    for move in moves:
        active = np.zeros(game.num_envs, bool)
        active[env] = True
        out = game.step(np.full((game.num_envs, 2), move), active=active)
    return out


@pytest.mark.parametrize("env_fn", [tictactoe_v3.env, connect_four_v3.env])
def test_check_game_passes(env_fn):
    game = PettingZooAECGame(env_fn, num_envs=4, seed=0)
    assert game.turn_based
    counts = check_game(game, n_steps=120, check_render=False, min_episodes=5)
    assert counts["wins_0"] + counts["wins_1"] > 0


def test_spaces_turn_order_and_masks():
    game = PettingZooAECGame(tictactoe_v3.env, num_envs=3)
    obs = game.reset(seed=0)
    assert game.observation_space.shape == (3, 3, 2) and game.action_space.n == 9
    assert obs.shape == (3, 2, 3, 3, 2)
    assert game.to_play().tolist() == [0, 0, 0]
    masks = game.action_masks()
    assert masks.shape == (3, 2, 9) and masks[:, 0].all() and not masks[:, 1].any()
    _, rewards, terminated, _, infos = play(game, [4], env=1)  # only env 1 moves
    assert game.to_play().tolist() == [0, 1, 0] and not rewards.any() and not terminated.any()
    masks = game.action_masks()
    assert not masks[1, 0].any() and masks[1, 1].sum() == 8 and not masks[1, 1, 4]
    assert infos == [{}, {}, {}]


def test_reward_credit_and_outcome_tictactoe():
    game = PettingZooAECGame(tictactoe_v3.env, num_envs=2)
    game.reset(seed=0)
    # Seat 0 takes the left column (0, 1, 2), seat 1 plays 3 and 4.
    _, rewards, terminated, truncated, infos = play(game, [0, 3, 1, 4, 2], env=0)
    assert terminated.tolist() == [True, False] and not truncated.any()
    assert rewards[0].tolist() == [1.0, -1.0] and not rewards[1].any()
    info = infos[0]
    assert info["outcome"] == {"winner": 0} and info["episode"] == {"r": [1.0, -1.0], "l": 5}
    assert info["terminal_observation"].shape == (2, 3, 3, 2)
    assert game.to_play()[0] == 0 and game.get_state(0)["step"] == 0  # restarted
    # An illegal move (an occupied square) ends the game: -1 for the mover, 0 for the other seat.
    _, rewards, terminated, _, infos = play(game, [4, 4], env=1)  # PettingZoo logs a warning
    assert terminated[1] and rewards[1].tolist() == [0.0, -1.0]
    assert infos[1]["outcome"] == {"winner": 0}


def test_same_as_builtin_connect_four():
    """The adapter over connect_four_v3 and the built-in ConnectFour-v0 agree move by move."""
    rng = np.random.default_rng(0)
    n = 4
    ours = make_game("ConnectFour-v0", n)
    theirs = PettingZooAECGame(connect_four_v3.env, num_envs=n)
    a, b = ours.reset(), theirs.reset(seed=0)
    for _ in range(150):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(ours.to_play(), theirs.to_play())
        np.testing.assert_array_equal(ours.action_masks(), theirs.action_masks())
        active = rng.random(n) < 0.8
        col = random_legal(rng, ours.action_masks()[np.arange(n), ours.to_play()])
        a, ra, ta, _, ia = ours.step(np.stack([col, col], 1), active=active)
        b, rb, tb, _, ib = theirs.step(np.stack([col, col], 1), active=active)
        np.testing.assert_array_equal(ra, rb)
        np.testing.assert_array_equal(ta, tb)
        for i in np.flatnonzero(ta):
            assert ia[i]["outcome"] == ib[i]["outcome"]
            np.testing.assert_array_equal(ia[i]["terminal_observation"], ib[i]["terminal_observation"])


def test_selfplay_env_over_tictactoe():
    """Through SelfPlayVecEnv: the learner moves only on its turns, wins/losses paid +1/-1."""
    n = 8
    game = PettingZooAECGame(tictactoe_v3.env, num_envs=n, seed=0)
    env = SelfPlayVecEnv(game, None, learner_seat="random", latest_ratio=0.0, bots=["random"], seed=0)
    env.reset()
    rng = np.random.default_rng(0)
    outcomes = []
    for _ in range(120):
        assert (game.to_play() == env.seats()).all()
        _, rewards, dones, infos = env.step(random_legal(rng, get_action_masks(env)))
        for i in np.flatnonzero(dones):
            sp = infos[i]["selfplay"]
            assert rewards[i] == {"win": 1.0, "loss": -1.0, "draw": 0.0}[sp["outcome"]]
            outcomes.append(sp["outcome"])
    assert {"win", "loss"} <= set(outcomes) and len(outcomes) > 50


def test_registered_aec_game_in_a_tournament():
    def factory(num_envs: int = 1, **params) -> PettingZooAECGame:
        return PettingZooAECGame(tictactoe_v3.env, num_envs=num_envs, game_id="TicTacToe-test")

    register_game("TicTacToe-test", factory)
    try:
        results = run_tournament({"r2": "random"}, "TicTacToe-test", games_per_pair=10, seed=0, bots=None)
        assert len(results) == 10 and {s for _, _, s in results} <= {0.0, 0.5, 1.0}
    finally:
        GAME_REGISTRY.pop("TicTacToe-test", None)
