"""Batched round-robin tournaments and their Bradley-Terry report."""

import numpy as np
import pytest
import torch as th

from sb3_selfplay import PPO, HybridMlpPolicy, RecurrentPPO
from sb3_selfplay.games import DuelEnv, make_game
from sb3_selfplay.policies import RecurrentPolicy
from sb3_selfplay.selfplay import OpponentPool
from sb3_selfplay.selfplay.tournament import load_model_policy, run_tournament, tournament_report, tournament_schedule


@pytest.mark.parametrize("games_per_pair", [1, 4, 7])
def test_schedule_alternates_seats(games_per_pair):
    a, b, a_first = tournament_schedule(4, games_per_pair)
    assert len(a) == 6 * games_per_pair and (a < b).all()
    for i in range(4):
        for j in range(i + 1, 4):
            mine = (a == i) & (b == j)
            assert mine.sum() == games_per_pair
            assert abs(int(a_first[mine].sum()) - int((~a_first[mine]).sum())) <= games_per_pair % 2


def test_bot_tournament_ranks_hunter_above_random(tmp_path):
    players = {"random": "random", "turret": "turret", "hunter": "hunter"}
    results = run_tournament(players, "Duel-v0", games_per_pair=16, seed=0, max_envs=20)  # 3 chunks
    assert len(results) == 3 * 16
    for pair in (("random", "turret"), ("random", "hunter"), ("turret", "hunter")):
        assert sum(1 for a, b, _ in results if (a, b) == pair) == 16
    assert all(s in (0.0, 0.5, 1.0) for _, _, s in results)
    again = run_tournament(players, "Duel-v0", games_per_pair=16, seed=0, max_envs=20)
    assert again == results  # seeded
    fit = tournament_report(results, tmp_path / "report", anchor="random", n_bootstrap=20)
    assert fit.ratings["hunter"] > fit.ratings["random"]
    assert fit.ratings["random"] == pytest.approx(1200.0)
    for name in ("ratings.md", "ratings.csv", "ratings.png"):
        assert (tmp_path / "report" / name).stat().st_size > 0
    text = (tmp_path / "report" / "ratings.md").read_text()
    assert "hunter" in text and "Mean score" in text


def test_policies_snapshots_and_model_files(tmp_path):
    game = make_game("Duel-v0", 1)
    th.manual_seed(0)
    lstm = RecurrentPolicy(game.observation_space, game.action_space, lambda _: 0.0, lstm_hidden_size=8, net_arch=[8])
    pool = OpponentPool(tmp_path / "pool")
    snap = pool.add_snapshot(lstm, learner_step=0)
    rppo = RecurrentPPO("MlpLstmPolicy", DuelEnv(), n_steps=8, batch_size=8, policy_kwargs=dict(lstm_hidden_size=8))
    rppo.save(tmp_path / "rppo.zip")
    ppo = PPO(HybridMlpPolicy, DuelEnv(), n_steps=8, batch_size=8, policy_kwargs=dict(net_arch=[8]))
    ppo.save(tmp_path / "ppo.zip")
    spaces = (game.observation_space, game.action_space)
    assert isinstance(load_model_policy(tmp_path / "rppo.zip", *spaces), RecurrentPolicy)
    assert isinstance(load_model_policy(tmp_path / "ppo.zip", *spaces), HybridMlpPolicy)
    loaded = load_model_policy(tmp_path / "rppo.zip", *spaces)  # read without unpickling, same weights
    for name, value in rppo.policy.state_dict().items():
        assert th.equal(loaded.state_dict()[name], value), name

    players = {
        "random": "random",
        "policy": lstm,
        "snapshot": snap,
        "rppo": str(tmp_path / "rppo.zip"),
        "ppo": str(tmp_path / "ppo.zip"),
        "model": ppo,
    }
    results = run_tournament(players, "Duel-v0", games_per_pair=2, seed=1, pool=pool, game_params={"max_steps": 10})
    assert len(results) == 15 * 2
    assert {p for a, b, _ in results for p in (a, b)} == set(players)
    again = run_tournament(players, "Duel-v0", games_per_pair=2, seed=1, pool=pool, game_params={"max_steps": 10})
    assert again == results  # seeded, sampling included
    det = run_tournament({"policy": lstm, "snapshot": snap}, "Duel-v0", games_per_pair=4, deterministic=True, pool=pool,
                         game_params={"max_steps": 10})  # fmt: skip
    assert len(det) == 4
    with pytest.raises(ValueError, match="not a bot"):
        run_tournament({"a": "random", "b": "nobody"}, "Duel-v0")
    with pytest.raises(ValueError, match="two players"):
        run_tournament({"a": "random"}, "Duel-v0")


def test_factory_and_report_without_anchor(tmp_path):
    results = run_tournament(
        {"r1": "random", "r2": "random"},
        lambda num_envs, **p: make_game("Duel-v0", num_envs, **p),
        games_per_pair=4,
        game_params={"max_steps": 5},
    )
    assert len(results) == 4
    fit = tournament_report(results, tmp_path, anchor="nobody", n_bootstrap=0)
    assert fit.anchor is None
    assert np.mean(list(fit.ratings.values())) == pytest.approx(1200.0)


def test_turn_based_tournament_and_evaluation_respect_masks_and_turns():
    """ConnectFour with illegal moves raising: bots and a recurrent model only ever play legal columns."""
    from sb3_selfplay import RecurrentPPO
    from sb3_selfplay.games import make_game
    from sb3_selfplay.selfplay import SelfPlayVecEnv
    from sb3_selfplay.selfplay.evaluation import play_games

    params = {"illegal_move": "raise"}
    env = SelfPlayVecEnv(make_game("ConnectFour-v0", 4, **params), None, latest_ratio=0.0, seed=0)
    model = RecurrentPPO("MlpLstmPolicy", env, n_steps=8, batch_size=32, seed=0,
                         policy_kwargs=dict(lstm_hidden_size=8, net_arch=[8]))
    results = run_tournament({"model": model}, "ConnectFour-v0", games_per_pair=12, seed=0, bots=None,
                             game_params=params)
    assert {p for r in results for p in r[:2]} >= {"model", "random", "greedy"}
    games = play_games(model, make_game("ConnectFour-v0", 6, **params), "random", seed=0)
    assert len(games) == 6
