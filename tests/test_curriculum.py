"""CurriculumCallback: ML-Agents lesson semantics, values pushed to the game and the opponent mix, resume."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from stable_baselines3.common.logger import configure

from sb3_selfplay import RecurrentPPO
from sb3_selfplay.callbacks.curriculum import CompletionCriteria, CurriculumCallback, Lesson, check_lessons
from sb3_selfplay.games import make_game
from sb3_selfplay.selfplay import LEARNER, OpponentPool, SelfPlayVecEnv


def lessons(values, measure="win_rate", threshold=0.6, min_lesson_length=4, smoothing=False, reset=False):
    criteria = CompletionCriteria(measure=measure, threshold=threshold, min_lesson_length=min_lesson_length,
                                  signal_smoothing=smoothing, require_reset=reset)
    return [Lesson(value=v, name=f"l{i}", completion_criteria=criteria if i < len(values) - 1 else None)
            for i, v in enumerate(values)]


def attach(cb: CurriculumCallback, env: SelfPlayVecEnv, total: int = 1000, pool: OpponentPool | None = None) -> None:
    """Wire a callback to an env without training (the hooks it uses: model.logger, training_env)."""
    cb.model = SimpleNamespace(logger=configure(None, []), _total_timesteps=total, num_timesteps=0, get_env=lambda: env)
    cb._on_training_start()


def finish(cb: CurriculumCallback, scores=(), returns=()) -> None:
    """Feed finished episodes to the callback as SB3 would (one env per episode)."""
    scores = list(scores) or [0.5] * len(returns)
    returns = list(returns) or [0.0] * len(scores)
    infos = [{"episode": {"r": r, "l": 10}, "selfplay": {"score": s}} for s, r in zip(scores, returns, strict=True)]
    cb.locals = {"dones": np.ones(len(infos), bool), "infos": infos}
    cb._on_step()


def duel_env(pool=None, n=2) -> SelfPlayVecEnv:
    return SelfPlayVecEnv(make_game("Duel-v0", n, max_steps=8), pool, latest_ratio=0.0, seed=0)


def test_win_rate_lesson_needs_min_length_and_threshold():
    env = duel_env()
    cb = CurriculumCallback({"shaping": lessons([0.5, 0.2, 0.0])})
    attach(cb, env)
    assert env.get_game_params()["shaping"] == 0.5
    finish(cb, scores=[1, 1, 1])
    cb._on_rollout_end()
    assert cb.lesson["shaping"] == 0  # 3 episodes < min_lesson_length 4
    finish(cb, scores=[1])
    cb._on_rollout_end()
    assert cb.lesson["shaping"] == 1 and env.get_game_params()["shaping"] == 0.2
    assert cb.episodes_in_lesson["shaping"] == 0  # the window restarts with the lesson
    finish(cb, scores=[1, 0, 0, 0.5])  # mean 0.375 < 0.6
    cb._on_rollout_end()
    assert cb.lesson["shaping"] == 1
    finish(cb, scores=[1, 1, 1, 1])  # last 4: mean 1.0
    cb._on_rollout_end()
    assert cb.lesson["shaping"] == 2 and env.get_game_params()["shaping"] == 0.0
    finish(cb, scores=[0] * 10)
    cb._on_rollout_end()
    assert cb.lesson["shaping"] == 2  # the last lesson has no criteria


def test_signal_smoothing_is_three_quarters_new():
    env = duel_env()
    cb = CurriculumCallback({"shaping": lessons([0.5, 0.0], measure="reward", threshold=0.9, min_lesson_length=1,
                                                smoothing=True)})
    attach(cb, env)
    finish(cb, returns=[0.0])
    cb._on_rollout_end()
    assert cb.smoothed["shaping"] == pytest.approx(0.0)
    finish(cb, returns=[1.0])
    cb._on_rollout_end()
    assert cb.smoothed["shaping"] == pytest.approx(0.75) and cb.lesson["shaping"] == 0
    finish(cb, returns=[1.0])
    cb._on_rollout_end()  # 0.25 * 0.75 + 0.75 * 1 = 0.9375 >= 0.9
    assert cb.lesson["shaping"] == 1


def test_progress_and_elo_measures(tmp_path):
    pool = OpponentPool(tmp_path / "pool")
    env = duel_env(pool)
    cb = CurriculumCallback({
        "fov": lessons([120.0, 90.0], measure="progress", threshold=0.5, min_lesson_length=0),
        "view_range": lessons([8.0, 6.0], measure="elo", threshold=1250.0, min_lesson_length=0),
    })
    attach(cb, env, total=100)
    cb.num_timesteps = 40
    cb._on_rollout_end()
    assert cb.lesson == {"fov": 0, "view_range": 0}
    cb.num_timesteps = 50
    for _ in range(20):
        pool.record_match(LEARNER, "random", 1.0)
    assert pool.rating(LEARNER) > 1250
    cb._on_rollout_end()
    assert cb.lesson == {"fov": 1, "view_range": 1}
    assert env.get_game_params()["fov"] == 90.0 and env.get_game_params()["view_range"] == 6.0


def test_selfplay_parameters_move_from_bots_to_self_play(tmp_path):
    pool = OpponentPool(tmp_path / "pool")
    env = SelfPlayVecEnv(make_game("Duel-v0", 2, max_steps=8), pool, bots=("random",), latest_ratio=0.5, seed=0)
    cb = CurriculumCallback({
        "selfplay.opponents": lessons([["turret", "hunter"], None], min_lesson_length=1),
        "selfplay.latest_ratio": lessons([0.0, 0.5], min_lesson_length=1),
        "selfplay.bot_ratio": lessons([0.0, 0.25], min_lesson_length=1),
    })
    attach(cb, env)
    assert env.opponents == ["turret", "hunter"] and env.latest_ratio == 0.0 and env.bot_ratio == 0.0
    assert {"turret", "hunter"} <= set(pool.player_ids(kind="bot"))  # results vs new bots can be recorded
    finish(cb, scores=[1.0])
    cb._on_rollout_end()
    assert env.opponents is None and env.latest_ratio == 0.5 and env.bot_ratio == 0.25


def test_require_reset_resets_envs_between_rollouts():
    env = SelfPlayVecEnv(make_game("Duel-v0", 2, max_steps=400), None, latest_ratio=0.0, seed=0)
    resets = []
    original = env.reset
    env.reset = lambda: resets.append(1) or original()  # type: ignore[method-assign]
    model = RecurrentPPO("MlpLstmPolicy", env, n_steps=8, batch_size=16, n_epochs=1, sequence_length=8, seed=0,
                         policy_kwargs=dict(lstm_hidden_size=4, net_arch=[4]))
    model.set_logger(configure(None, []))
    cb = CurriculumCallback({"shaping": lessons([0.5, 0.0], measure="progress", threshold=0.3, min_lesson_length=0,
                                                reset=True)})
    model.learn(48, callback=cb)
    assert cb.lesson["shaping"] == 1 and env.get_game_params()["shaping"] == 0.0
    assert len(resets) == 2  # learn()'s own reset, then the lesson change


def test_state_round_trip_and_resume_applies_values(tmp_path):
    env = duel_env()
    parameters = {"shaping": lessons([0.5, 0.2, 0.0])}
    cb = CurriculumCallback(parameters, state_path=tmp_path / "c.json")
    attach(cb, env)
    finish(cb, scores=[1] * 4)
    cb._on_rollout_end()  # lesson change -> saved
    assert (tmp_path / "c.json").exists()
    resumed = CurriculumCallback(parameters)
    resumed.load(tmp_path / "c.json")
    env2 = duel_env()
    attach(resumed, env2)
    assert resumed.lesson == {"shaping": 1} and env2.get_game_params()["shaping"] == 0.2
    assert resumed.values() == {"shaping": 0.2}


def test_lesson_checks():
    with pytest.raises(ValueError, match="lesson 0 needs completion_criteria"):
        check_lessons("shaping", [Lesson(0.5), Lesson(0.0)])
    with pytest.raises(ValueError, match="no lessons"):
        check_lessons("shaping", [])
    with pytest.raises(ValueError, match="known selfplay parameters"):
        check_lessons("selfplay.bogus", [Lesson(1)])
    with pytest.raises(ValueError, match="measure must be one of"):
        CompletionCriteria(measure="loss")


def test_curriculum_logs_lessons_while_training():
    env = SelfPlayVecEnv(make_game("Duel-v0", 2, max_steps=6), None, latest_ratio=0.0, seed=0)
    model = RecurrentPPO("MlpLstmPolicy", env, n_steps=8, batch_size=16, n_epochs=1, sequence_length=8, seed=0,
                         policy_kwargs=dict(lstm_hidden_size=4, net_arch=[4]))
    model.set_logger(configure(None, []))
    logged = []
    original = model.logger.record
    model.logger.record = lambda k, v, exclude=None: (logged.append((k, v)), original(k, v, exclude))[1]
    cb = CurriculumCallback({"shaping": lessons([0.5, 0.25, 0.0], measure="reward", threshold=-1e9,
                                                min_lesson_length=1)})
    model.learn(64, callback=cb)
    assert cb.lesson["shaping"] == 2
    assert ("curriculum/shaping", 2) in logged and ("curriculum/shaping_value", 0.0) in logged
