"""A small hybrid-action task that needs both heads, learned by RecurrentPPO and by PPO."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces
from stable_baselines3.common.logger import configure
from stable_baselines3.common.vec_env import DummyVecEnv

from sb3_selfplay import PPO, HybridMlpPolicy, RecurrentPPO
from sb3_selfplay.distributions import CategoricalBernoulliDistribution
from sb3_selfplay.spaces import hybrid_action_space


class CueEnv(gym.Env):
    """One-step task: pick the cued category AND press button 0 iff the cue bit is set,
    button 1 iff it is not. Max return 2; a random policy gets 1/3 + 1/2."""

    def __init__(self) -> None:
        self.observation_space = spaces.Box(0.0, 1.0, (4,), dtype=np.float32)
        self.action_space = hybrid_action_space(3, 2)
        self._cue, self._bit = 0, 0

    def _obs(self) -> np.ndarray:
        obs = np.zeros(4, dtype=np.float32)
        obs[self._cue] = 1.0
        obs[3] = self._bit
        return obs

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        self._cue = int(self.np_random.integers(3))
        self._bit = int(self.np_random.integers(2))
        return self._obs(), {}

    def step(self, action):
        action = np.asarray(action)
        reward = float(action[0] == self._cue) + 0.5 * float(action[1] == self._bit) + 0.5 * float(action[2] != self._bit)
        return self._obs(), reward, True, False, {}


def evaluate(model, n: int = 60) -> float:
    env = CueEnv()
    total = 0.0
    for i in range(n):
        obs, _ = env.reset(seed=i)
        action, _ = model.predict(obs, deterministic=True)
        total += env.step(action)[1]
    return total / n


def test_cue_env_passes_check_env():
    from stable_baselines3.common.env_checker import check_env

    check_env(CueEnv())


@pytest.mark.parametrize("algo", ["rppo", "ppo"])
def test_hybrid_task_is_learned(algo, tmp_path):
    env = DummyVecEnv([CueEnv] * 4)
    if algo == "ppo":
        model = PPO(HybridMlpPolicy, env, n_steps=64, batch_size=64, n_epochs=4, learning_rate=3e-3, seed=0)
    else:
        model = RecurrentPPO("MlpLstmPolicy", env, n_steps=64, batch_size=64, n_epochs=4, sequence_length=8,
                             learning_rate=3e-3, policy_kwargs={"lstm_hidden_size": 16}, seed=0)
    assert isinstance(model.policy.action_dist, CategoricalBernoulliDistribution)
    assert model.policy.action_net.out_features == 3 + 2  # one logit per button
    model.set_logger(configure(str(tmp_path), ["csv"]))
    before = evaluate(model)
    model.learn(4096)
    after = evaluate(model)
    assert after >= 1.8, (before, after)
    logged = (tmp_path / "progress.csv").read_text().splitlines()[0].split(",")
    assert "train/entropy_categorical" in logged and "train/entropy_bernoulli" in logged


def test_hybrid_policy_is_plain_mlp_on_other_spaces():
    from stable_baselines3.common.distributions import CategoricalDistribution

    model = PPO(HybridMlpPolicy, "CartPole-v1", n_steps=16, batch_size=16)
    assert isinstance(model.policy.action_dist, CategoricalDistribution)
    model.learn(32)


@pytest.mark.parametrize("algo", ["PPO", "A2C"])
def test_head_entropy_log_is_bounded_under_sb3_algorithms(algo):
    """Under SB3's own PPO/A2C (nobody reads the log) it holds one train() call at most, not all of them."""
    import stable_baselines3

    algo_cls = getattr(stable_baselines3, algo)
    kwargs = dict(n_steps=16, batch_size=16, n_epochs=2) if algo == "PPO" else dict(n_steps=16)
    per_train = 2 * 2 if algo == "PPO" else 1  # epochs x minibatches of 2 envs x 16 steps / A2C: one
    model = algo_cls(HybridMlpPolicy, DummyVecEnv([CueEnv] * 2), seed=0, **kwargs)
    lengths = []
    for _ in range(3):
        model.learn(32, reset_num_timesteps=False)  # one rollout, one train() call
        lengths.append(len(model.policy.head_entropy_log))
    assert lengths == [per_train] * 3


def test_head_entropy_log_is_consumed_by_our_ppo():
    model = PPO(HybridMlpPolicy, DummyVecEnv([CueEnv] * 2), n_steps=16, batch_size=16, n_epochs=2, seed=0)
    for _ in range(2):
        model.learn(32, reset_num_timesteps=False)
        assert model.policy.head_entropy_log == []
