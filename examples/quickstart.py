"""Quickstart: train a recurrent agent on a memory task and print how well it does.

CartPoleNoVel-v1 is CartPole with the velocities hidden: a policy must remember past
positions to infer them. A feed-forward PPO scores ~40 here; an LSTM solves it (500).

    python examples/quickstart.py                # 100k steps, about a minute on 2 cores
    python examples/quickstart.py --steps 20000  # shorter
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch as th
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import VecNormalize

from sb3_selfplay import RecurrentPPO


def linear(initial: float):
    """rl-zoo's ``lin_<value>`` schedule: decays linearly to 0 over training."""
    return lambda progress_remaining: progress_remaining * initial


def evaluate(model: RecurrentPPO, venv: VecNormalize, episodes: int) -> list[float]:
    """Deterministic episodes, carrying the recurrent state from step to step."""
    eval_env = VecNormalize(make_vec_env("CartPoleNoVel-v1", n_envs=1, seed=1000), training=False, norm_reward=False)
    eval_env.obs_rms = venv.obs_rms
    returns: list[float] = []
    obs, state, start, total = eval_env.reset(), None, np.ones(1, dtype=bool), 0.0
    while len(returns) < episodes:
        action, state = model.predict(obs, state=state, episode_start=start, deterministic=True)
        obs, reward, start, _ = eval_env.step(action)
        total += float(eval_env.get_original_reward()[0])
        if start[0]:
            returns.append(total)
            total = 0.0
    return returns


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=100_000, help="training env-steps")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rnn-type", choices=["lstm", "gru"], default="lstm")
    args = parser.parse_args()
    th.set_num_threads(1)

    venv = VecNormalize(make_vec_env("CartPoleNoVel-v1", n_envs=8, seed=args.seed), gamma=0.98)
    model = RecurrentPPO(
        "MlpLstmPolicy",
        venv,
        n_steps=32,
        batch_size=256,
        n_epochs=20,
        gamma=0.98,
        gae_lambda=0.8,
        learning_rate=linear(1e-3),
        clip_range=linear(0.2),
        sequence_length=32,  # = n_steps: whole episode segments of each rollout
        policy_kwargs=dict(
            rnn_type=args.rnn_type,
            lstm_hidden_size=64,
            ortho_init=False,
            activation_fn=th.nn.ReLU,
            net_arch=dict(pi=[64], vf=[64]),
        ),
        seed=args.seed,
        device="cpu",
    )
    start = time.perf_counter()
    model.learn(args.steps)
    elapsed = time.perf_counter() - start
    returns = evaluate(model, venv, episodes=20)
    print(
        f"CartPoleNoVel-v1 ({args.rnn_type.upper()}, {args.steps:,} steps, {elapsed:.0f} s): "
        f"mean return {np.mean(returns):.1f} +/- {np.std(returns):.1f} over 20 episodes (max 500)"
    )


if __name__ == "__main__":
    main()
