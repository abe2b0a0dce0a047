"""Experiment manager: YAML loading and validation, schedules, class look-up, env/pool/model building."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch as th
import yaml
from stable_baselines3.common.utils import LinearSchedule
from stable_baselines3.common.vec_env import VecNormalize

from sb3_selfplay import PPO, RecurrentPPO
from sb3_selfplay.callbacks import find_selfplay_env
from sb3_selfplay.selfplay import SelfPlayVecEnv
from sb3_selfplay.zoo.config import load_hyperparams, parse_overrides, settings_to_section
from sb3_selfplay.zoo.debug import debug_settings
from sb3_selfplay.zoo.factories import make_callbacks, make_env, make_model, make_pool
from sb3_selfplay.zoo.resolve import parse_schedule, resolve_policy_kwargs
from sb3_selfplay.zoo.run_folder import find_trained_agent, make_run_dir
from sb3_selfplay.zoo.settings import ConfigError, ExperimentSettings, RunOptions, SelfPlaySettings, replace

HYPERPARAMS = Path(__file__).resolve().parent.parent / "hyperparams"


def write(tmp_path: Path, doc: dict) -> Path:
    path = tmp_path / "hp.yml"
    path.write_text(yaml.safe_dump(doc))
    return path


@pytest.mark.parametrize("algo", ["rppo", "ppo"])
@pytest.mark.parametrize("env_id", ["Duel-v0", "CartPoleNoVel-v1", "CartPole-v1"])
def test_shipped_hyperparams_load(algo, env_id):
    settings = load_hyperparams(HYPERPARAMS / f"{algo}.yml", env_id, algo)
    assert settings.env_id == env_id and settings.algo == algo and settings.n_timesteps > 0
    if env_id == "Duel-v0":
        assert settings.selfplay is not None and settings.curriculum and settings.replays and settings.metrics
        assert settings.selfplay.bots is None  # the game's bots
        env = make_env(settings, None, seed=0, n_envs=2)
        assert set(find_selfplay_env(env).bots) == {"random", "turret", "hunter"}
        env.close()
        shaping = [lesson.value for lesson in settings.curriculum["shaping"]]
        assert shaping[0] > 0 and shaping[-1] == 0  # shaped -> sparse
        opponents = settings.curriculum["selfplay.opponents"]
        assert list(opponents[0].value) == ["random"] and "hunter" in opponents[-2].value  # bots first,
        assert opponents[-1].value is None  # then self-play (bots + snapshots)
        ratios = settings.curriculum["selfplay.latest_ratio"]  # in step with the opponents
        assert [r.completion_criteria for r in ratios] == [o.completion_criteria for o in opponents]
        assert ratios[0].value == 0.0 and ratios[-1].value > 0


def test_default_merges_under_the_env_section(tmp_path):
    path = write(tmp_path, {"default": {"n_envs": 3, "policy_kwargs": {"lstm_hidden_size": 8}},
                            "CartPole-v1": {"n_steps": 16, "policy_kwargs": {"n_lstm_layers": 2}}})
    s = load_hyperparams(path, "CartPole-v1", "rppo")
    assert s.n_envs == 3 and s.algo_kwargs.n_steps == 16
    assert s.policy_kwargs == {"lstm_hidden_size": 8, "n_lstm_layers": 2}
    s = load_hyperparams(path, "CartPoleNoVel-v1", "rppo")  # not in the file: default only
    assert s.n_envs == 3 and s.algo_kwargs.n_steps is None


@pytest.mark.parametrize(
    ("doc", "env_id", "needle"),
    [
        ({"CartPole-v1": {"n_stepz": 3}}, "CartPole-v1", "unknown key 'CartPole-v1.n_stepz'"),
        ({"CartPole-v1": {"n_steps": "abc"}}, "CartPole-v1", "CartPole-v1.n_steps: expected an integer"),
        ({"CartPole-v1": {"n_steps": 1.5}}, "CartPole-v1", "CartPole-v1.n_steps: expected an integer"),
        ({"CartPole-v1": {"normalize_advantage": "yes"}}, "CartPole-v1", "normalize_advantage: expected a boolean"),
        ({"Nope-v3": {"n_steps": 8}}, "Nope-v3", "unknown env id 'Nope-v3'"),
        ({"default": {}}, "Nope-v3", "unknown env id 'Nope-v3'"),
        ({"Duel-v0": {"selfplay": {"bogus": 1}}}, "Duel-v0", "unknown key 'Duel-v0.selfplay.bogus'"),
        ({"Duel-v0": {"selfplay": {"save_steps": "x"}}}, "Duel-v0", "Duel-v0.selfplay.save_steps: expected an integer"),
        ({"Duel-v0": {"selfplay": {"bots": ["nobody"]}}}, "Duel-v0",
         "Duel-v0.selfplay.bots: unknown bots ['nobody'] for game 'Duel-v0'; its bots: random, turret, hunter"),
        ({"Duel-v0": {"selfplay": {"eval_opponents": ["snap_1"]}}}, "Duel-v0",
         "Duel-v0.selfplay.eval_opponents: ['snap_1'] are neither bots of 'Duel-v0'"),
        ({"Duel-v0": {"selfplay": {"strategy": "best"}}}, "Duel-v0", "Duel-v0.selfplay: "),
        ({"Duel-v0": {"normalize": "yes"}}, "Duel-v0", "Duel-v0.normalize: expected a boolean or a mapping"),
        ({"Duel-v0": {"selfplay": {}, "env_kwargs": {"nope": 1}}}, "Duel-v0", "Duel-v0.env_kwargs"),
        ({"Duel-v0": {"replays": {"top_kk": 1}}}, "Duel-v0", "unknown key 'Duel-v0.replays.top_kk'"),
        ({"Duel-v0": {"metrics": {"behavior": True}}}, "Duel-v0", "unknown key 'Duel-v0.metrics.behavior'"),
        ({"Duel-v0": {"curriculum": {"shaping": [{"value": 1, "completion_criteria": {"measure": "x"}},
                                                  {"value": 0}]}}}, "Duel-v0", "measure must be one of"),
        ({"Duel-v0": {"curriculum": {"shaping": [{"value": 1, "completion_criteria": {"treshold": 1}}, {"value": 0}]}}},
         "Duel-v0", "unknown key 'Duel-v0.curriculum.shaping[0].completion_criteria.treshold'"),
        ({"CartPole-v1": {"selfplay": {}}}, "CartPole-v1", "not a registered two-player game"),
        ({"CartPole-v1": {"policy_kwargs": {"lstm_size": 4}}}, "CartPole-v1",
         "unknown key 'CartPole-v1.policy_kwargs.lstm_size'"),
        ({"CartPole-v1": {"policy_kwargs": {"lstm_hidden_size": "big"}}}, "CartPole-v1",
         "lstm_hidden_size: expected an integer"),
        ({"CartPole-v1": {"learning_rate": "exp_3"}}, "CartPole-v1", "not a number or a schedule"),
        ({"CartPole-v1": {"use_lstm": False}}, "CartPole-v1", "use_lstm"),
        ({"CartPole-v1": {"policy": "NoSuchPolicy"}}, "CartPole-v1", "unknown policy 'NoSuchPolicy'"),
    ],
)
def test_bad_entries_raise_one_line_naming_key_and_file(tmp_path, doc, env_id, needle):
    path = write(tmp_path, doc)
    with pytest.raises(ConfigError) as info:
        load_hyperparams(path, env_id, "rppo")
    message = str(info.value)
    assert "\n" not in message and str(path) in message and needle in message, message


def test_recurrent_keys_rejected_for_ppo(tmp_path):
    path = write(tmp_path, {"CartPole-v1": {"sequence_length": 8}})
    with pytest.raises(ConfigError, match="sequence_length is a RecurrentPPO option"):
        load_hyperparams(path, "CartPole-v1", "ppo")
    path = write(tmp_path, {"CartPole-v1": {"lstm_hidden_size": 8}})
    with pytest.raises(ConfigError, match="needs --algo rppo"):
        load_hyperparams(path, "CartPole-v1", "ppo")


def test_seed_keys_and_yaml_1_1_numbers(tmp_path):
    path = write(tmp_path, {"CartPole-v1": {"use_lstm": True, "lstm_hidden_size": 12, "lstm_num_layers": 2,
                                            "sequence_length": 8, "truncate_bptt": False, "store_full_episodes": True,
                                            "use_amp": False, "n_timesteps": "1e4", "learning_rate": "lin_3e-4"}})
    s = load_hyperparams(path, "CartPole-v1", "rppo")
    assert s.policy_kwargs == {"lstm_hidden_size": 12, "n_lstm_layers": 2}
    assert s.n_timesteps == 10_000 and s.algo_kwargs.sequence_length == 8 and s.algo_kwargs.truncate_bptt is False
    kwargs = s.algo_kwargs.kwargs()
    assert isinstance(kwargs["learning_rate"], LinearSchedule) and kwargs["learning_rate"](0.5) == pytest.approx(1.5e-4)


def test_overrides_name_the_flag(tmp_path):
    path = write(tmp_path, {"Duel-v0": {"selfplay": {"save_steps": 100}}})
    s = load_hyperparams(path, "Duel-v0", "rppo", parse_overrides(["selfplay.save_steps:7", "n_steps:1e2"], "-params"),
                         parse_overrides(["max_steps:30"], "--env-kwargs"))
    assert s.selfplay.save_steps == 7 and s.algo_kwargs.n_steps == 100 and s.env_kwargs == {"max_steps": 30}
    with pytest.raises(ConfigError, match="^-params: .*n_steps: expected an integer"):
        load_hyperparams(path, "Duel-v0", "rppo", {"n_steps": "many"})
    with pytest.raises(ConfigError, match="^--env-kwargs: "):
        load_hyperparams(path, "Duel-v0", "rppo", None, {"bogus": 1})
    with pytest.raises(ConfigError, match="expected key:value"):
        parse_overrides(["n_steps"], "-params")


def test_schedules_and_classes():
    assert parse_schedule(0.1) == 0.1 and parse_schedule("const_0.5") == 0.5 and parse_schedule("2e-3") == 0.002
    assert parse_schedule("lin_0.2")(0.25) == pytest.approx(0.05)
    extractor = "stable_baselines3.common.torch_layers.FlattenExtractor"
    kwargs = resolve_policy_kwargs({"activation_fn": "ReLU", "optimizer_class": "adamw", "net_arch": [8],
                                    "features_extractor_class": extractor})
    assert kwargs["activation_fn"] is th.nn.ReLU and kwargs["optimizer_class"] is th.optim.AdamW
    assert resolve_policy_kwargs({"activation_fn": "torch.nn.Hardswish"})["activation_fn"] is th.nn.Hardswish
    with pytest.raises(ValueError, match="refusing to import 'os.system'"):
        resolve_policy_kwargs({"activation_fn": "os.system"})


def test_settings_round_trip_through_yaml(tmp_path):
    s = load_hyperparams(HYPERPARAMS / "rppo.yml", "Duel-v0", "rppo")
    path = write(tmp_path, {"Duel-v0": settings_to_section(s)})
    again = load_hyperparams(path, "Duel-v0", "rppo")
    assert replace(again, source=s.source) == s


def test_debug_settings_are_tiny_and_visit_every_lesson():
    s = debug_settings(load_hyperparams(HYPERPARAMS / "rppo.yml", "Duel-v0", "rppo"), 256)
    assert s.n_timesteps == 256 and s.n_envs <= 4 and s.algo_kwargs.n_epochs == 1
    assert s.env_kwargs["max_steps"] <= 24 and s.selfplay.save_steps == 64
    for lessons in s.curriculum.values():
        criteria = [lesson.completion_criteria for lesson in lessons[:-1]]
        assert all(c.measure == "progress" and c.threshold < 0.7 for c in criteria)
    with pytest.raises(ConfigError, match="debug-ticks"):
        debug_settings(s, 4)


def test_selfplay_settings_validation():
    with pytest.raises(ValueError, match="eval_opponents must be null or a non-empty list"):
        SelfPlaySettings(eval_opponents=())
    with pytest.raises(ValueError, match="bot_ratio"):
        SelfPlaySettings(bot_ratio=-0.1)
    with pytest.raises(ValueError, match="unknown strategy|strategy"):
        SelfPlaySettings(strategy="nope")
    with pytest.raises(ValueError, match="extra|bogus"):
        SelfPlaySettings(bogus=1)
    with pytest.raises(ValueError, match="RecurrentPPO option"):
        ExperimentSettings(env_id="CartPole-v1", algo="ppo",
                           algo_kwargs=load_hyperparams(HYPERPARAMS / "rppo.yml", "CartPole-v1", "rppo").algo_kwargs)


def test_run_dirs_count_up(tmp_path):
    assert make_run_dir(tmp_path, "rppo", "Duel-v0").name == "Duel-v0_1"
    (tmp_path / "rppo" / "Duel-v0_7").mkdir()
    assert make_run_dir(tmp_path, "rppo", "Duel-v0").name == "Duel-v0_8"
    with pytest.raises(ConfigError, match="trained agent not found"):
        find_trained_agent(tmp_path / "missing.zip", "Duel-v0")


def test_selfplay_env_pool_callbacks_and_model_wire_up(tmp_path):
    s = debug_settings(load_hyperparams(HYPERPARAMS / "rppo.yml", "Duel-v0", "rppo"), 64)
    s = replace(s, policy_kwargs={"lstm_hidden_size": 8, "net_arch": [8]}, normalize=True)
    options = RunOptions(seed=0, verbose=0, eval_freq=-1, save_freq=32, device="cpu")
    pool = make_pool(s, tmp_path)
    env = make_env(s, pool, seed=0, run_dir=tmp_path)
    assert isinstance(env, VecNormalize) and isinstance(find_selfplay_env(env), SelfPlayVecEnv)
    assert find_selfplay_env(env).bot_ratio == s.selfplay.bot_ratio
    model = make_model(s, env, options)
    assert isinstance(model, RecurrentPPO) and model.n_steps == s.algo_kwargs.n_steps
    callbacks = make_callbacks(s, options, env, pool, tmp_path)
    assert list(callbacks) == ["nan_guard", "selfplay", "curriculum", "metrics", "replays", "checkpoint"]
    env.close()
    pool.close()


def test_gym_env_with_ppo(tmp_path):
    s = load_hyperparams(HYPERPARAMS / "ppo.yml", "CartPole-v1", "ppo", {"n_envs": 2, "n_steps": 8, "batch_size": 16})
    env = make_env(s, seed=0, run_dir=tmp_path)
    model = make_model(s, env, RunOptions(seed=0, verbose=0, device="cpu"))
    assert isinstance(model, PPO) and env.num_envs == 2
    model.learn(16)
    assert np.isfinite(model.logger.name_to_value.get("train/loss", 0.0))
    env.close()


# ----------------------------------------------------------------------------- metrics and evaluation
def test_metrics_callback_logs_learner_values(tmp_path):
    from types import SimpleNamespace

    from stable_baselines3.common.logger import configure

    from sb3_selfplay.callbacks import MetricsCallback

    cb = MetricsCallback()
    cb.model = SimpleNamespace(logger=configure(str(tmp_path), ["csv"]))
    infos = [
        {"metrics": {"hits": 2.0}, "reward_components": {"outcome": 1.0},
         "selfplay": {"opponent": "turret", "kind": "bot", "outcome": "win", "score": 1.0}},
        {"metrics": {"hits": [4.0, 9.0]}, "reward_components": {"outcome": [-1.0, 1.0]}},  # gym view: seat 0
        {},
    ]
    cb.locals = {"dones": np.array([True, True, False]), "infos": infos}
    cb._on_step()
    cb._on_rollout_end()
    values = cb.model.logger.name_to_value
    assert values["metrics/hits"] == 3.0 and values["reward/outcome"] == 0.0
    assert values["selfplay/win_rate_vs_turret"] == 1.0
    assert cb.logged == {"metrics/hits", "reward/outcome", "selfplay/win_rate_vs_turret"}


def test_performance_rating_inverts_expected_score():
    from sb3_selfplay.selfplay.evaluation import performance_rating
    from sb3_selfplay.selfplay import expected_score

    ratings = {"a": 1000.0, "b": 1400.0}
    results = [("a", 1.0)] * 7 + [("a", 0.0)] * 3 + [("b", 0.5)] * 4 + [("b", 0.0)] * 6
    r = performance_rating(results, ratings)
    assert sum(expected_score(r, ratings[o]) for o, _ in results) == pytest.approx(sum(s for _, s in results), abs=1e-6)
    assert performance_rating([("a", 1.0)] * 5, ratings) == pytest.approx(1000.0 + 800.0, abs=1e-6)  # clipped


def test_selfplay_evaluation_against_a_fixed_set(tmp_path):
    from stable_baselines3.common.logger import configure

    from sb3_selfplay.callbacks import SelfPlayEvalCallback
    from sb3_selfplay.selfplay.evaluation import play_games, rate_opponents

    game_kwargs = {"max_steps": 12}
    env = SelfPlayVecEnv(make_game_for_test(2, **game_kwargs), None, latest_ratio=0.0, seed=0)
    model = RecurrentPPO("MlpLstmPolicy", env, n_steps=8, batch_size=16, n_epochs=1, sequence_length=8, seed=0,
                         policy_kwargs=dict(lstm_hidden_size=4, net_arch=[4]))
    model.set_logger(configure(str(tmp_path), ["csv"]))
    ratings = rate_opponents(["random", "turret"], "Duel-v0", game_kwargs, games_per_pair=4, seed=0)
    assert ratings["random"] == pytest.approx(1200.0)
    games = play_games(model, make_game_for_test(3, **game_kwargs), "turret", seed=1)
    assert len(games) == 3 and {g["opponent"] for g in games} == {"turret"}
    mixed = play_games(model, make_game_for_test(4, **game_kwargs), ["turret", "random", model.policy, "turret"], seed=1)
    assert [g["opponent"] for g in mixed] == ["turret", "random", "eval_opponent", "turret"]
    with pytest.raises(ValueError, match="play_games: 2 opponents for a game of 3 envs"):
        play_games(model, make_game_for_test(3, **game_kwargs), ["turret", "random"])
    seen = []
    cb = SelfPlayEvalCallback("Duel-v0", ["random", "turret"], game_kwargs, n_games=2, eval_freq=4, ratings=ratings,
                              best_model_save_path=str(tmp_path), log_path=str(tmp_path),
                              on_result=lambda n, v: seen.append((n, v)) or True)
    model.learn(16, callback=cb)
    assert len(seen) == 2 and all(np.isfinite(v) for _, v in seen)
    data = np.load(tmp_path / "evaluations.npz")
    assert data["results"].shape == (2, 2, 2) and (tmp_path / "best_model.zip").exists()


def make_game_for_test(n: int, **params):
    from sb3_selfplay.games import make_game

    return make_game("Duel-v0", n, **params)
