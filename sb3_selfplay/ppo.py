"""PPO: SB3's PPO that also logs per-head entropies of hybrid (categorical + Bernoulli) actions."""

from __future__ import annotations

from typing import ClassVar

import torch as th
from stable_baselines3 import PPO as SB3PPO
from stable_baselines3.common.policies import BasePolicy

from sb3_selfplay.policies import HybridMlpPolicy


class PPO(SB3PPO):
    """
    SB3 ``PPO`` with ``HybridMlpPolicy`` as an alias and ``train/entropy_categorical`` /
    ``train/entropy_bernoulli`` logged when the policy has dual heads. Otherwise identical:
    every argument and behaviour is SB3's. SB3's own ``PPO`` also trains ``HybridMlpPolicy``
    (dual heads included); only the per-head logs need this subclass.
    """

    policy_aliases: ClassVar[dict[str, type[BasePolicy]]] = {
        **SB3PPO.policy_aliases,
        "HybridMlpPolicy": HybridMlpPolicy,
    }

    def train(self) -> None:
        super().train()
        log = getattr(self.policy, "head_entropy_log", None)
        if log:
            ent = th.stack([th.stack(pair) for pair in log]).mean(dim=0)
            self.logger.record("train/entropy_categorical", float(ent[0]))
            self.logger.record("train/entropy_bernoulli", float(ent[1]))
            log.clear()
