"""RecurrentPPO: a fast drop-in subclass of sb3-contrib's RecurrentPPO (LSTM/GRU, truncated BPTT)."""

from __future__ import annotations

import warnings
from contextlib import nullcontext
from typing import Any, ClassVar

import numpy as np
import torch as th
from gymnasium import spaces
from sb3_contrib import RecurrentPPO as ContribRecurrentPPO
from sb3_contrib.common.recurrent.type_aliases import RNNStates
from stable_baselines3.common.base_class import maybe_make_env
from stable_baselines3.common.buffers import RolloutBuffer
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.type_aliases import GymEnv, Schedule
from stable_baselines3.common.utils import explained_variance, obs_as_tensor
from stable_baselines3.common.vec_env import VecEnv

from sb3_selfplay.buffers import DictSequenceBuffer, SequenceBuffer, resolve_sequence_mode
from sb3_selfplay.masks import is_masking_supported, read_action_masks
from sb3_selfplay.policies import POLICY_ALIASES, RecurrentPolicy
from sb3_selfplay.spaces import check_action_space


def masked_mean(values: th.Tensor, mask: th.Tensor, n_valid: th.Tensor | None = None) -> th.Tensor:
    """Mean of ``values`` over the rows where ``mask`` is True; other rows are selected out, so an
    inf or NaN there changes neither the result nor its gradient.

    :param values: ``(n,)`` tensor
    :param mask: ``(n,)`` bool tensor, True on valid rows
    :param n_valid: ``mask.sum()`` if already known (at least 1 is used)
    """
    count = mask.sum() if n_valid is None else n_valid
    return th.where(mask, values, th.zeros((), dtype=values.dtype, device=values.device)).sum() / count.clamp_min(1)


def _ours_for_contrib(policy_class: Any) -> Any:
    """
    sb3-contrib's recurrent policy classes (as a contrib zip names them) -> ours with the same
    parameter names, so ``RecurrentPPO.load(<an sb3-contrib zip>)`` needs no ``custom_objects``.
    Any other class is returned as it is.
    """
    from sb3_contrib.common.recurrent.policies import (
        RecurrentActorCriticCnnPolicy,
        RecurrentActorCriticPolicy,
        RecurrentMultiInputActorCriticPolicy,
    )

    if not isinstance(policy_class, type) or issubclass(policy_class, RecurrentPolicy):
        return policy_class
    ours = {
        RecurrentActorCriticPolicy: POLICY_ALIASES["MlpLstmPolicy"],
        RecurrentActorCriticCnnPolicy: POLICY_ALIASES["CnnLstmPolicy"],
        RecurrentMultiInputActorCriticPolicy: POLICY_ALIASES["MultiInputLstmPolicy"],
    }
    return ours.get(policy_class, policy_class)


class RecurrentPPO(ContribRecurrentPPO):
    """
    Recurrent PPO (LSTM or GRU) with truncated BPTT and one core call per minibatch.

    Takes every argument of ``sb3_contrib.RecurrentPPO`` and behaves the same, plus:

    :param sequence_length: maximum length ``L`` of a training sequence (truncated BPTT) in the
        aligned modes. ``batch_size`` counts steps, as in PPO: an epoch has
        ``ceil(n_steps * n_envs / batch_size)`` minibatches of whole sequences, each with
        ``batch_size`` steps on average. ``batch_size`` must be >= ``sequence_length`` and is
        rounded down to a multiple of it, with a warning, when it does not fit.
    :param sequence_mode: how each rollout is cut into training sequences. Every mode cuts at
        each episode start and at the rollout start, so a sequence never crosses an episode
        boundary, and the state stored at a cut is the rollout's own (gradients stop there):

        - ``"rollout_aligned"`` (default): also cut every ``L`` steps of the rollout (steps 0,
          L, 2L, ... of the rollout);
        - ``"episode_aligned"``: also cut every ``L`` steps of each episode (steps 0, L, 2L, ...
          of the episode, counted across rollouts), so a sequence covers steps kL..(k+1)L-1 of
          its episode;
        - ``"episode_segments"``: no other cut: a sequence is the part of one episode inside the
          rollout, as in sb3-contrib (``sequence_length`` is ignored).
    :param truncate_bptt: old alias of ``sequence_mode``: False means ``"episode_segments"``,
        True one of the two aligned modes.
    :param store_full_episodes: old alias of ``sequence_mode``: with ``truncate_bptt`` True (or
        unset), True means ``"episode_aligned"`` and False ``"rollout_aligned"``; ignored when
        ``truncate_bptt`` is False. Given with ``sequence_mode``, an old keyword must agree with
        it (else a ``ValueError``); a model saved with the old keywords loads with the mode they mean.
    :param use_amp: mixed precision in ``train()``: float16 autocast with a GradScaler on CUDA;
        bfloat16 autocast on CPU (helps only on CPUs with bf16 units; rollouts stay float32).
    :param compile_policy: ``torch.compile`` the feed-forward parts of the policy in place
        (features extractor, MLP extractor, heads); the recurrent cores stay eager (they
        graph-break) and saved parameter names are unchanged.

    Policies: ``MlpLstmPolicy``, ``CnnLstmPolicy``, ``MultiInputLstmPolicy`` and their GRU
    twins ``MlpGruPolicy``, ``CnnGruPolicy``, ``MultiInputGruPolicy``; or
    ``policy_kwargs=dict(rnn_type="gru")``.

    Action masks, with sb3-contrib ``MaskablePPO``'s conventions: when the env has an
    ``action_masks()`` method (or is wrapped in ``ActionMasker``), every rollout step reads the
    masks of all envs with ``get_action_masks(env)`` (checked: a one-line ``ValueError`` names the
    env and the dimension of a bad row), samples only legal actions, stores the masks in the
    sequence buffer and applies them again in ``train()``. ``predict(..., action_masks=...)``
    takes them too; :func:`sb3_selfplay.masks.evaluate_masked_policy` evaluates with them.
    Without masks nothing changes. Layout: one boolean per choice of each action dimension.

    Hidden-state API (for evaluation and self-play): :meth:`reset_hidden_states`,
    :meth:`get_hidden_state`, :meth:`set_hidden_state`. A hidden state is one tensor shaped
    ``(2, 2, n_layers, hidden)``: [actor, critic] x [h, c]; for a GRU the ``c`` slot is zeros.
    """

    policy_aliases: ClassVar[dict[str, type[BasePolicy]]] = dict(POLICY_ALIASES)  # type: ignore[assignment]
    policy: RecurrentPolicy

    def __init__(
        self,
        policy: str | type[RecurrentPolicy],
        env: GymEnv | str,
        learning_rate: float | Schedule = 3e-4,
        n_steps: int = 128,
        batch_size: int | None = 128,
        n_epochs: int = 10,
        gamma: float = 0.99,
        gae_lambda: float = 0.95,
        clip_range: float | Schedule = 0.2,
        clip_range_vf: float | Schedule | None = None,
        normalize_advantage: bool = True,
        ent_coef: float = 0.0,
        vf_coef: float = 0.5,
        max_grad_norm: float = 0.5,
        use_sde: bool = False,
        sde_sample_freq: int = -1,
        target_kl: float | None = None,
        stats_window_size: int = 100,
        tensorboard_log: str | None = None,
        policy_kwargs: dict[str, Any] | None = None,
        verbose: int = 0,
        seed: int | None = None,
        device: th.device | str = "auto",
        _init_setup_model: bool = True,
        sequence_length: int = 16,
        sequence_mode: str | None = None,
        use_amp: bool = False,
        compile_policy: bool = False,
        truncate_bptt: bool | None = None,
        store_full_episodes: bool | None = None,
    ):
        if int(sequence_length) < 1:
            raise ValueError(f"RecurrentPPO: sequence_length must be >= 1 (got {sequence_length})")
        if env is not None:
            env = maybe_make_env(env, verbose)
            check_action_space(env.action_space, "RecurrentPPO")
        self.sequence_length = int(sequence_length)
        self.sequence_mode = resolve_sequence_mode(sequence_mode, truncate_bptt, store_full_episodes)
        self.use_amp = bool(use_amp)
        self.compile_policy = bool(compile_policy)
        super().__init__(
            policy,
            env,
            learning_rate=learning_rate,
            n_steps=n_steps,
            batch_size=batch_size,
            n_epochs=n_epochs,
            gamma=gamma,
            gae_lambda=gae_lambda,
            clip_range=clip_range,
            clip_range_vf=clip_range_vf,
            normalize_advantage=normalize_advantage,
            ent_coef=ent_coef,
            vf_coef=vf_coef,
            max_grad_norm=max_grad_norm,
            use_sde=use_sde,
            sde_sample_freq=sde_sample_freq,
            target_kl=target_kl,
            stats_window_size=stats_window_size,
            tensorboard_log=tensorboard_log,
            policy_kwargs=policy_kwargs,
            verbose=verbose,
            seed=seed,
            device=device,
            _init_setup_model=_init_setup_model,
        )

    # ------------------------------------------------------------------ setup
    def _setup_model(self) -> None:
        if self.action_space is not None:
            check_action_space(self.action_space, "RecurrentPPO")
        # A model saved before ``sequence_mode`` (or loaded with the old keywords) carries them as attributes.
        legacy = {key: self.__dict__.pop(key) for key in ("truncate_bptt", "store_full_episodes")
                  if key in self.__dict__}
        if legacy:
            self.sequence_mode = resolve_sequence_mode(None, **legacy)
        self._check_batch_size()
        self.policy_class = _ours_for_contrib(self.policy_class)
        super()._setup_model()
        if not isinstance(self.policy, RecurrentPolicy):
            raise ValueError(
                f"RecurrentPPO: policy must be an sb3_selfplay RecurrentPolicy (got {type(self.policy).__name__})"
            )
        buffer_cls = DictSequenceBuffer if isinstance(self.observation_space, spaces.Dict) else SequenceBuffer
        self.rollout_buffer = buffer_cls(
            self.n_steps,
            self.observation_space,
            self.action_space,
            self.device,
            gamma=self.gamma,
            gae_lambda=self.gae_lambda,
            n_envs=self.n_envs,
            sequence_length=self.sequence_length,
            sequence_mode=self.sequence_mode,
        )
        self._amp_scaler = th.amp.GradScaler("cuda") if self.use_amp and self.device.type == "cuda" else None
        if self.compile_policy:
            self._compile_policy()

    def _check_batch_size(self) -> None:
        if self.batch_size is None or self.sequence_mode == "episode_segments":
            return
        length = min(self.sequence_length, self.n_steps)
        if self.batch_size < length:
            raise ValueError(
                f"RecurrentPPO: batch_size ({self.batch_size}) must be >= sequence_length ({length}); "
                "a minibatch holds whole sequences"
            )
        if self.batch_size % length:
            rounded = self.batch_size - self.batch_size % length
            warnings.warn(
                f"RecurrentPPO: batch_size {self.batch_size} is not a multiple of sequence_length {length}; "
                f"using {rounded}",
                stacklevel=3,
            )
            self.batch_size = rounded

    def _compile_policy(self) -> None:
        """Compile the feed-forward submodules in place (``Module.compile`` keeps parameter names)."""
        for name in ("features_extractor", "pi_features_extractor", "vf_features_extractor", "mlp_extractor",
                     "action_net", "value_net", "critic"):
            module = getattr(self.policy, name, None)
            if isinstance(module, th.nn.Module):
                module.compile(dynamic=True)

    def _excluded_save_params(self) -> list[str]:
        return [*super()._excluded_save_params(), "_amp_scaler"]

    # ------------------------------------------------------------------ hidden-state API
    def _check_env_id(self, env_id: int) -> int:
        if not 0 <= int(env_id) < self.n_envs:
            raise IndexError(f"env_id {env_id} out of range for {self.n_envs} envs")
        return int(env_id)

    def reset_hidden_states(self, env_ids: int | list[int] | np.ndarray | None = None) -> None:
        """Zero the recurrent state of the given envs (all when None)."""
        states = self._last_lstm_states
        if env_ids is None:
            index: Any = slice(None)
        else:
            ids = np.atleast_1d(np.asarray(env_ids, dtype=np.int64))
            for env_id in ids:
                self._check_env_id(int(env_id))
            index = th.as_tensor(ids, device=self.device)
        for t in (*states.pi, *states.vf):
            t[:, index] = 0.0

    def get_hidden_state(self, env_id: int) -> th.Tensor:
        """A copy of one env's state, shaped ``(2, 2, n_layers, hidden)``: [actor, critic] x [h, c]."""
        env_id = self._check_env_id(env_id)
        s = self._last_lstm_states
        return th.stack([th.stack((s.pi[0][:, env_id], s.pi[1][:, env_id])),
                         th.stack((s.vf[0][:, env_id], s.vf[1][:, env_id]))]).clone()

    def set_hidden_state(self, env_id: int, hidden: th.Tensor | np.ndarray) -> None:
        """Set one env's state from a tensor laid out as :meth:`get_hidden_state` returns."""
        env_id = self._check_env_id(env_id)
        s = self._last_lstm_states
        hidden = th.as_tensor(hidden, dtype=s.pi[0].dtype, device=self.device)
        expected = (2, 2, s.pi[0].shape[0], s.pi[0].shape[2])
        if tuple(hidden.shape) != expected:
            raise ValueError(f"set_hidden_state: expected a tensor of shape {expected}, got {tuple(hidden.shape)}")
        shared_vf = s.vf[0] is s.pi[0]
        s.pi[0][:, env_id] = hidden[0, 0]
        s.pi[1][:, env_id] = hidden[0, 1]
        if not shared_vf:
            s.vf[0][:, env_id] = hidden[1, 0]
            s.vf[1][:, env_id] = hidden[1, 1]

    def predict(  # type: ignore[override]
        self,
        observation: np.ndarray | dict[str, np.ndarray],
        state: tuple[np.ndarray, ...] | None = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = False,
        action_masks: np.ndarray | None = None,
    ) -> tuple[np.ndarray, tuple[np.ndarray, ...] | None]:
        """The policy's action(s) and next recurrent state, as contrib's ``predict``.

        :param action_masks: legal actions, one flat row per observation in MaskablePPO's layout
            (one boolean per choice of each dimension); None for no masks
        """
        return self.policy.predict(observation, state, episode_start, deterministic, action_masks=action_masks)

    # ------------------------------------------------------------------ rollouts
    def collect_rollouts(
        self,
        env: VecEnv,
        callback: BaseCallback,
        rollout_buffer: RolloutBuffer,
        n_rollout_steps: int,
    ) -> bool:
        """Collect ``n_rollout_steps`` per env with the fused one-step cores (no per-env loops);
        with the env's action masks read at every step when it has them."""
        assert self._last_obs is not None, "No previous observation was provided"
        mask_layout = self.policy.action_mask_layout if is_masking_supported(env) else None
        action_masks = None
        self.policy.set_training_mode(False)
        self.policy.refresh_fused_weights()
        n_steps = 0
        rollout_buffer.reset()
        if self.use_sde:
            self.policy.reset_noise(env.num_envs)
        callback.on_rollout_start()
        states = self._last_lstm_states
        dones = self._last_episode_starts

        while n_steps < n_rollout_steps:
            if self.use_sde and self.sde_sample_freq > 0 and n_steps % self.sde_sample_freq == 0:
                self.policy.reset_noise(env.num_envs)
            with th.no_grad():
                obs_tensor = obs_as_tensor(self._last_obs, self.device)
                episode_starts = th.as_tensor(self._last_episode_starts, dtype=th.float32, device=self.device)
                if mask_layout is not None:
                    action_masks = read_action_masks(env, mask_layout)
                actions, values, log_probs, new_states = self.policy.rollout_step(
                    obs_tensor, states, episode_starts, action_masks=action_masks
                )
            actions = actions.cpu().numpy()
            clipped_actions = actions
            if isinstance(self.action_space, spaces.Box):
                clipped_actions = np.clip(actions, self.action_space.low, self.action_space.high)

            new_obs, rewards, dones, infos = env.step(clipped_actions)
            self.num_timesteps += env.num_envs
            callback.update_locals(locals())
            if not callback.on_step():
                return False
            self._update_info_buffer(infos, dones)
            n_steps += 1

            if isinstance(self.action_space, spaces.Discrete):
                actions = actions.reshape(-1, 1)
            self._bootstrap_timeouts(rewards, dones, infos, new_states)

            rollout_buffer.add(
                self._last_obs,
                actions,
                rewards,
                self._last_episode_starts,
                values,
                log_probs,
                lstm_states=states,
                action_masks=action_masks,
            )
            self._last_obs = new_obs
            self._last_episode_starts = dones
            states = new_states
            self._last_lstm_states = states

        with th.no_grad():
            episode_starts = th.as_tensor(dones, dtype=th.float32, device=self.device)
            _, values, _, _ = self.policy.rollout_step(obs_as_tensor(new_obs, self.device), states, episode_starts)
        rollout_buffer.compute_returns_and_advantage(last_values=values, dones=dones)
        callback.on_rollout_end()
        return True

    def _bootstrap_timeouts(self, rewards: np.ndarray, dones: np.ndarray, infos: list[dict], states: RNNStates) -> None:
        """Add gamma * V(terminal obs) to rewards of truncated episodes, in one batched call."""
        idx = [
            i
            for i in np.flatnonzero(dones)
            if infos[i].get("terminal_observation") is not None and infos[i].get("TimeLimit.truncated", False)
        ]
        if not idx:
            return
        terminal_obs = [infos[i]["terminal_observation"] for i in idx]
        if isinstance(self.observation_space, spaces.Dict):
            stacked: Any = {k: np.stack([o[k] for o in terminal_obs]) for k in terminal_obs[0]}
        else:
            stacked = np.stack(terminal_obs)
        obs_t, _ = self.policy.obs_to_tensor(stacked)
        index = th.as_tensor(idx, device=self.device)
        vf_state = (states.vf[0].index_select(1, index), states.vf[1].index_select(1, index))
        with th.no_grad():
            starts = th.zeros(len(idx), device=self.device)
            terminal_values = self.policy.predict_values(obs_t, vf_state, starts).flatten().cpu().numpy()
        rewards[idx] += self.gamma * terminal_values

    # ------------------------------------------------------------------ training
    def _autocast(self) -> Any:
        if not self.use_amp:
            return nullcontext()
        if self.device.type == "cuda":
            return th.autocast("cuda", dtype=th.float16)
        return th.autocast("cpu", dtype=th.bfloat16)

    def train(self) -> None:
        """PPO update on whole padded sequences: one core call per minibatch, masked losses."""
        self.policy.set_training_mode(True)
        self._update_learning_rate(self.policy.optimizer)
        clip_range = self.clip_range(self._current_progress_remaining)  # type: ignore[operator]
        clip_range_vf = None
        if self.clip_range_vf is not None:
            clip_range_vf = self.clip_range_vf(self._current_progress_remaining)  # type: ignore[operator]

        # Per-minibatch statistics stay on the device; one sync at the end.
        stats: dict[str, list[th.Tensor]] = {k: [] for k in ("pg", "vf", "ent", "clip", "kl", "ent_cat", "ent_bern")}
        continue_training = True
        loss = th.zeros(())
        for epoch in range(self.n_epochs):
            approx_kl_divs = []
            for data in self.rollout_buffer.get(self.batch_size):
                mask = data.mask
                n_valid = mask.sum().clamp_min(1)

                def mean_valid(t: th.Tensor) -> th.Tensor:
                    return masked_mean(t, mask, n_valid)

                actions = data.actions
                if isinstance(self.action_space, spaces.Discrete):
                    actions = actions.long().flatten()
                with self._autocast():
                    values, log_prob, entropy, distribution = self.policy.evaluate_sequences(
                        data.observations, actions, data.lstm_states, action_masks=data.action_masks
                    )
                # Padded rows are selected out here (not multiplied by 0), so whatever they hold
                # (an inf log-prob of a masked action, say) reaches neither the losses nor the gradients.
                values = th.where(mask, values.flatten().float(), data.old_values)
                log_prob = th.where(mask, log_prob.float(), data.old_log_prob)
                if entropy is not None:
                    entropy = th.where(mask, entropy.float(), 0.0)
                advantages = data.advantages
                if self.normalize_advantage:
                    mean = mean_valid(advantages)
                    std = (mean_valid((advantages - mean) ** 2) * n_valid / (n_valid - 1).clamp_min(1)).sqrt()
                    advantages = (advantages - mean) / (std + 1e-8)

                log_ratio = log_prob - data.old_log_prob
                ratio = th.exp(log_ratio)
                policy_loss = -mean_valid(
                    th.min(advantages * ratio, advantages * th.clamp(ratio, 1 - clip_range, 1 + clip_range))
                )
                if clip_range_vf is None:
                    values_pred = values
                else:
                    values_pred = data.old_values + th.clamp(values - data.old_values, -clip_range_vf, clip_range_vf)
                value_loss = mean_valid((data.returns - values_pred) ** 2)
                entropy_loss = -mean_valid(-log_prob if entropy is None else entropy)
                loss = policy_loss + self.ent_coef * entropy_loss + self.vf_coef * value_loss

                with th.no_grad():
                    approx_kl_div = mean_valid((ratio - 1) - log_ratio)
                    stats["pg"].append(policy_loss.detach())
                    stats["vf"].append(value_loss.detach())
                    stats["ent"].append(entropy_loss.detach())
                    stats["clip"].append(mean_valid((th.abs(ratio - 1) > clip_range).float()))
                    stats["kl"].append(approx_kl_div)
                    heads = self.policy.head_entropies(distribution)
                    if heads is not None:
                        stats["ent_cat"].append(mean_valid(heads[0].float()))
                        stats["ent_bern"].append(mean_valid(heads[1].float()))
                approx_kl_divs.append(approx_kl_div)
                if self.target_kl is not None and float(approx_kl_div) > 1.5 * self.target_kl:
                    continue_training = False
                    if self.verbose >= 1:
                        print(f"Early stopping at step {epoch} due to reaching max kl: {float(approx_kl_div):.2f}")
                    break

                self.policy.optimizer.zero_grad(set_to_none=True)
                if self._amp_scaler is not None:
                    self._amp_scaler.scale(loss).backward()
                    self._amp_scaler.unscale_(self.policy.optimizer)
                    th.nn.utils.clip_grad_norm_(self.policy.parameters(), self.max_grad_norm)
                    self._amp_scaler.step(self.policy.optimizer)
                    self._amp_scaler.update()
                else:
                    loss.backward()
                    th.nn.utils.clip_grad_norm_(self.policy.parameters(), self.max_grad_norm)
                    self.policy.optimizer.step()
            self._n_updates += 1
            if not continue_training:
                break

        self._log_train_stats(stats, loss, clip_range, clip_range_vf)

    def _log_train_stats(self, stats: dict[str, list[th.Tensor]], loss: th.Tensor, clip_range: float,
                         clip_range_vf: float | None) -> None:
        def mean(key: str) -> float:
            return float(th.stack(stats[key]).mean()) if stats[key] else float("nan")

        buf = self.rollout_buffer
        explained_var = explained_variance(buf.values.flatten(), buf.returns.flatten())
        self.logger.record("train/entropy_loss", mean("ent"))
        self.logger.record("train/policy_gradient_loss", mean("pg"))
        self.logger.record("train/value_loss", mean("vf"))
        self.logger.record("train/approx_kl", mean("kl"))
        self.logger.record("train/clip_fraction", mean("clip"))
        self.logger.record("train/loss", float(loss.detach()))
        self.logger.record("train/explained_variance", explained_var)
        if stats["ent_cat"]:
            self.logger.record("train/entropy_categorical", mean("ent_cat"))
            self.logger.record("train/entropy_bernoulli", mean("ent_bern"))
        if hasattr(self.policy, "log_std"):
            self.logger.record("train/std", th.exp(self.policy.log_std).mean().item())
        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        self.logger.record("train/clip_range", clip_range)
        if clip_range_vf is not None:
            self.logger.record("train/clip_range_vf", clip_range_vf)
