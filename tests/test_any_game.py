"""Done-when test of issue 10: self-play for a user's own two-player PettingZoo game.

A small game of our own (a guessing duel) with a Discrete, a MultiDiscrete or a Box action
space is wrapped in ``PettingZooGame``, registered with ``register_game``, given its own
scripted bot with ONE ``register_bot`` call, and then trains through ``SelfPlayVecEnv(game,
pool)`` with default arguments: the bot is among the opponents, and tournaments include it.
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pettingzoo.test import parallel_api_test
from stable_baselines3.common.logger import configure

from sb3_selfplay import RecurrentPPO
from sb3_selfplay.callbacks import SelfPlayCallback
from sb3_selfplay.games import GAME_REGISTRY, PettingZooGame, check_game, game_bots, make_game, register_game
from sb3_selfplay.games.bots import _REGISTERED, register_bot
from sb3_selfplay.selfplay import OpponentPool, SelfPlayVecEnv, run_tournament

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "examples"))
from guess_duel import KINDS, GreedyBot, GuessDuel  # noqa: E402  (the documented bring-your-own-game example)

@pytest.fixture(params=KINDS)
def guess_game_id(request):
    """Register the guessing game of one kind, with its greedy bot; unregister afterwards."""
    kind = request.param
    game_id = f"Guess-{kind}-v0"

    def factory(num_envs: int = 1, seed: int | None = None, **params: Any) -> PettingZooGame:
        return PettingZooGame(functools.partial(GuessDuel, kind=kind, **params), num_envs=num_envs, seed=seed)

    register_game(game_id, factory)
    register_bot(game_id, "greedy", GreedyBot)  # the one call that gives the game its bot
    yield game_id
    GAME_REGISTRY.pop(game_id, None)
    _REGISTERED.pop(game_id, None)


@pytest.mark.parametrize("kind", KINDS)
def test_guess_duel_is_a_valid_parallel_env(kind):
    parallel_api_test(GuessDuel(kind), num_cycles=20)
    game = PettingZooGame(functools.partial(GuessDuel, kind), num_envs=3, seed=0)
    counts = check_game(game, n_steps=12, seed=0, check_render=False, min_episodes=9)
    assert counts["episodes"] == 9


def test_any_game_trains_against_its_own_bot(guess_game_id, tmp_path):
    game = make_game(guess_game_id, num_envs=8, seed=0)
    assert game.game_id == guess_game_id and list(game_bots(game)) == ["random", "greedy"]
    pool = OpponentPool(tmp_path / "pool")
    env = SelfPlayVecEnv(game, pool)  # default arguments: the game's bots, uniform sampling
    assert env.bots == ("random", "greedy")
    model = RecurrentPPO(
        "MlpLstmPolicy", env, n_steps=16, batch_size=32, n_epochs=1, seed=0,
        policy_kwargs=dict(lstm_hidden_size=8, net_arch=[8]),
    )  # fmt: skip
    model.set_logger(configure(None, []))
    callback = SelfPlayCallback(pool, save_steps=64)
    model.learn(64, callback=callback)
    matches = pool.matches()
    assert len(matches) >= 8 * 16 // 4  # one rollout of 16 steps in 8 envs, 4-step episodes
    opponents = {m.player_b for m in matches}
    assert "greedy" in opponents and "random" in opponents  # the registered bot played
    assert pool.snapshot_ids() and set(pool.snapshot_ids()) <= set(callback.snapshot_ids)

    results = run_tournament({"model": model}, guess_game_id, games_per_pair=8, seed=0, bots=None)
    names = {p for r in results for p in r[:2]}
    assert names == {"model", "random", "greedy"}  # the tournament's bots come from the game
    greedy_vs_random = [s if a == "greedy" else 1 - s for a, b, s in results if {a, b} == {"greedy", "random"}]
    assert len(greedy_vs_random) == 8 and np.mean(greedy_vs_random) > 0.75  # it guesses right every time
    with pytest.raises(ValueError, match=f"unknown bot 'hunter' for game '{guess_game_id}'; its bots: random, greedy"):
        SelfPlayVecEnv(make_game(guess_game_id, 2), None, bots=("hunter",))
