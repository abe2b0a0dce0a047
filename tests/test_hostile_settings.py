"""Issue 11, settings: values that passed validation and crashed later are refused where they are
given, with one line naming the key and where it came from (file, -params, --env-kwargs)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from sb3_selfplay.zoo.config import load_hyperparams, parse_overrides
from sb3_selfplay.zoo.settings import ConfigError

HYPERPARAMS = Path(__file__).resolve().parent.parent / "hyperparams"


def write(tmp_path: Path, doc: dict) -> Path:
    path = tmp_path / "hp.yml"
    path.write_text(yaml.safe_dump(doc))
    return path


def one_line(exc_info) -> str:
    message = str(exc_info.value)
    assert "\n" not in message
    return message


def test_switching_strategy_on_the_command_line_drops_the_files_strategy_params(tmp_path):
    path = write(tmp_path, {"Duel-v0": {"selfplay": {"strategy": "pfsp",
                                                     "strategy_params": {"weighting": "hard", "k": 2.0}}}})
    s = load_hyperparams(path, "Duel-v0", "rppo", parse_overrides(["selfplay.strategy:uniform"], "-params"))
    assert s.selfplay.strategy == "uniform" and s.selfplay.strategy_params == {}
    s = load_hyperparams(path, "Duel-v0", "rppo", parse_overrides(["selfplay.strategy:elo"], "-params"))
    assert s.selfplay.strategy_params == {}
    with pytest.raises(ConfigError) as info:  # set explicitly with the switch: an error naming them
        load_hyperparams(path, "Duel-v0", "rppo",
                         parse_overrides(["selfplay.strategy:uniform", "selfplay.strategy_params:{k: 2}"], "-params"))
    assert one_line(info).startswith("-params") and "'k'" in str(info.value) and "uniform" in str(info.value)


@pytest.mark.parametrize(
    ("section", "needle"),
    [
        ({"selfplay": {"strategy": "pfsp", "strategy_params": {"bogus": 1}}}, "unknown parameter(s) 'bogus'"),
        ({"selfplay": {"strategy": "pfsp", "strategy_params": {"weighting": "nonsense"}}}, "nonsense"),
        ({"policy_kwargs": {"net_arch": {"pi": [-5]}}}, "Duel-v0.policy_kwargs.net_arch"),
        ({"policy_kwargs": {"lstm_hidden_size": 0}}, "Duel-v0.policy_kwargs.lstm_hidden_size: must be >= 1, got 0"),
        ({"policy_kwargs": {"n_lstm_layers": 0}}, "n_lstm_layers: must be >= 1"),
        ({"gamma": 2.0}, "Duel-v0.gamma: must be <= 1.0, got 2.0"),
        ({"gamma": 0}, "Duel-v0.gamma: must be > 0.0"),
        ({"gae_lambda": 1.5}, "Duel-v0.gae_lambda: must be <= 1.0"),
        ({"n_envs": 0}, "Duel-v0.n_envs: must be >= 1, got 0"),
        ({"selfplay": {"window": 0}}, "Duel-v0.selfplay.window: must be >= 1"),
        ({"selfplay": {"latest_ratio": 1.5}}, "Duel-v0.selfplay.latest_ratio: must be <= 1.0"),
        ({"replays": {"record_every": 0}}, "Duel-v0.replays.record_every: must be >= 1"),
    ],
)
def test_bad_values_are_refused_in_the_file(tmp_path, section, needle):
    path = write(tmp_path, {"Duel-v0": section})
    with pytest.raises(ConfigError) as info:
        load_hyperparams(path, "Duel-v0", "rppo")
    message = one_line(info)
    assert message.startswith(str(path)) and needle in message, message


@pytest.mark.parametrize(
    ("override", "needle"),
    [
        ("n_envs:-4", "-params: Duel-v0.n_envs: must be >= 1, got -4"),
        ("selfplay.save_steps:-1", "-params: Duel-v0.selfplay.save_steps: must be >= 0"),
        ("policy_kwargs.lstm_hidden_size:0", "-params: Duel-v0.policy_kwargs.lstm_hidden_size: must be >= 1"),
        ("sequence_length:0", "-params: Duel-v0.sequence_length: must be >= 1"),
    ],
)
def test_bad_overrides_name_the_flag_not_the_file(tmp_path, override, needle):
    path = write(tmp_path, {"Duel-v0": {"n_envs": 4}})
    with pytest.raises(ConfigError) as info:
        load_hyperparams(path, "Duel-v0", "rppo", parse_overrides([override], "-params"))
    assert one_line(info).startswith(needle), str(info.value)


def test_a_bad_file_value_is_not_blamed_on_an_unrelated_flag(tmp_path):
    path = write(tmp_path, {"Duel-v0": {"selfplay": {"window": 0}}})
    with pytest.raises(ConfigError) as info:
        load_hyperparams(path, "Duel-v0", "rppo", parse_overrides(["selfplay.save_steps:64", "n_envs:2"], "-params"))
    assert one_line(info).startswith(f"{path}: Duel-v0.selfplay.window")


def test_recurrent_option_for_ppo_names_its_source(tmp_path):
    path = write(tmp_path, {"CartPole-v1": {"n_steps": 8}})
    with pytest.raises(ConfigError) as info:
        load_hyperparams(path, "CartPole-v1", "ppo", parse_overrides(["sequence_length:8"], "-params"))
    assert one_line(info).startswith("-params: CartPole-v1.sequence_length: sequence_length is a RecurrentPPO option")


def test_batch_size_beyond_the_rollout_is_warned_about(tmp_path):
    path = write(tmp_path, {"CartPole-v1": {"n_envs": 2, "n_steps": 16, "batch_size": 100000}})
    with pytest.warns(UserWarning, match=r"batch_size: 100000 is larger than the rollout \(n_steps x n_envs = "
                                         r"16 x 2 = 32\)"):
        load_hyperparams(path, "CartPole-v1", "rppo")


def test_shipped_hyperparameters_still_load():
    for algo in ("rppo", "ppo"):
        for env_id in yaml.safe_load((HYPERPARAMS / f"{algo}.yml").read_text()):
            if env_id != "default":
                load_hyperparams(HYPERPARAMS / f"{algo}.yml", env_id, algo)
