"""PPO: SB3's PPO with action masks (sb3-contrib MaskablePPO's conventions) and per-head entropy logs."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from gymnasium import spaces
from stable_baselines3 import PPO as SB3PPO
from stable_baselines3.common.buffers import RolloutBuffer
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.vec_env import VecEnv

from sb3_selfplay.buffers import MaskedDictRolloutBuffer, MaskedRolloutBuffer
from sb3_selfplay.masks import is_masking_supported, read_action_masks
from sb3_selfplay.policies import ActionMaskMixin, HybridMlpPolicy


class PPO(SB3PPO):
    """
    SB3 ``PPO`` with ``HybridMlpPolicy`` as an alias, action masks, and
    ``train/entropy_categorical`` / ``train/entropy_bernoulli`` logged when the policy has dual
    heads. Otherwise identical: every argument and behaviour is SB3's.

    Action masks, with sb3-contrib ``MaskablePPO``'s conventions: when the env has an
    ``action_masks()`` method (or is wrapped in ``ActionMasker``), each rollout step reads the
    masks of all envs with ``get_action_masks(env)`` (checked: a one-line ``ValueError`` names the
    env and the dimension of a bad row), samples only legal actions, stores the masks in the
    rollout buffer and applies them again in ``train()``; ``predict(..., action_masks=...)``
    takes them too. This needs a policy that applies masks: ``"HybridMlpPolicy"`` (which is
    ``MlpPolicy`` on other spaces). Without masks it is SB3's PPO, loops included: SB3's own
    rollout and update loops run in both cases, the masks reach the policy through
    :meth:`~sb3_selfplay.policies.ActionMaskMixin.mask_sources`.
    """

    policy_aliases: ClassVar[dict[str, type[BasePolicy]]] = {
        **SB3PPO.policy_aliases,
        "HybridMlpPolicy": HybridMlpPolicy,
    }

    def _setup_model(self) -> None:
        if self.rollout_buffer_class is None:  # SB3's buffers, plus masks when a rollout has them
            dict_obs = isinstance(self.observation_space, spaces.Dict)
            self.rollout_buffer_class = MaskedDictRolloutBuffer if dict_obs else MaskedRolloutBuffer
        super()._setup_model()

    def predict(  # type: ignore[override]
        self,
        observation: np.ndarray | dict[str, np.ndarray],
        state: tuple[np.ndarray, ...] | None = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = False,
        action_masks: np.ndarray | None = None,
    ) -> tuple[np.ndarray, tuple[np.ndarray, ...] | None]:
        """SB3's ``predict``; ``action_masks``: legal actions, one flat row per observation in
        MaskablePPO's layout (one boolean per choice of each dimension); None for no masks."""
        if action_masks is None:
            return self.policy.predict(observation, state, episode_start, deterministic)
        if not isinstance(self.policy, ActionMaskMixin):
            raise ValueError(self._no_mask_policy_message())
        return self.policy.predict(observation, state, episode_start, deterministic, action_masks=action_masks)

    def _no_mask_policy_message(self) -> str:
        return (
            f"PPO: action masks need a policy that applies them; {type(self.policy).__name__} does not "
            "(use policy='HybridMlpPolicy', which is MlpPolicy plus masks)"
        )

    def collect_rollouts(
        self,
        env: VecEnv,
        callback: BaseCallback,
        rollout_buffer: RolloutBuffer,
        n_rollout_steps: int,
    ) -> bool:
        """SB3's ``collect_rollouts``; when ``env`` has action masks, each step's policy call gets
        the masks read from ``env`` just before it, and the buffer stores them with the step."""
        if not is_masking_supported(env):
            return super().collect_rollouts(env, callback, rollout_buffer, n_rollout_steps)
        if not isinstance(self.policy, ActionMaskMixin):
            raise ValueError(self._no_mask_policy_message())
        if not isinstance(rollout_buffer, (MaskedRolloutBuffer, MaskedDictRolloutBuffer)):
            raise ValueError(
                f"PPO: action masks need a MaskedRolloutBuffer, got {type(rollout_buffer).__name__} "
                "(leave rollout_buffer_class unset, or subclass sb3_selfplay.buffers.MaskedRolloutBuffer)"
            )
        layout = self.policy.action_mask_layout

        def step_masks() -> np.ndarray:
            # SB3's loop calls policy(obs) once per step, then rollout_buffer.add(...) for that step
            masks = read_action_masks(env, layout)
            rollout_buffer.pending_masks = masks
            return masks

        with self.policy.mask_sources(forward=step_masks):
            return super().collect_rollouts(env, callback, rollout_buffer, n_rollout_steps)

    def train(self) -> None:
        """SB3's ``train`` (each minibatch evaluated under its stored masks, if the rollout had
        any), then the per-head entropies of this update when the policy has them."""
        buffer = self.rollout_buffer
        if getattr(buffer, "action_masks", None) is not None and isinstance(self.policy, ActionMaskMixin):
            # SB3's train evaluates each minibatch as soon as the buffer yields it
            with self.policy.mask_sources(evaluate_actions=lambda: buffer.sample_masks):  # type: ignore[attr-defined]
                super().train()
        else:
            super().train()
        if isinstance(self.policy, HybridMlpPolicy):
            heads = self.policy.pop_head_entropies()
            if heads is not None:
                self.logger.record("train/entropy_categorical", heads[0])
                self.logger.record("train/entropy_bernoulli", heads[1])
