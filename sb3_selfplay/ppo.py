"""PPO: SB3's PPO that also logs per-head entropies of hybrid (categorical + Bernoulli) actions."""

from __future__ import annotations

from typing import ClassVar

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
        """SB3's ``train``, then the per-head entropies of this update when the policy has them."""
        super().train()
        if isinstance(self.policy, HybridMlpPolicy):
            heads = self.policy.pop_head_entropies()
            if heads is not None:
                self.logger.record("train/entropy_categorical", heads[0])
                self.logger.record("train/entropy_bernoulli", heads[1])
