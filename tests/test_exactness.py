"""Exactness of sequence training: one core call per minibatch equals a step-by-step reference.

The reference runs each env's rollout one step at a time, resetting the state at every
episode start and cutting the gradient where a truncated-BPTT chunk begins (the stored
state there is a constant). Log-probs, values and parameter gradients must match to 1e-5.
With action masks, the reference applies them its own way (-inf logits for masked choices, a
forced button's log-prob is 0), independently of sb3_selfplay.masks.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch as th
from gymnasium import spaces
from sb3_contrib.common.recurrent.type_aliases import RNNStates

from sb3_selfplay.buffers import SequenceBuffer
from sb3_selfplay.policies import RecurrentPolicy
from sb3_selfplay.spaces import hybrid_action_space

N_ENVS, N_STEPS, OBS_DIM = 3, 24, 4


def make_policy(rnn_type: str, action_space: spaces.Space, **kwargs) -> RecurrentPolicy:
    th.manual_seed(0)
    return RecurrentPolicy(
        spaces.Box(-1, 1, (OBS_DIM,)),
        action_space,
        lambda _: 1e-3,
        lstm_hidden_size=6,
        net_arch=[8],
        rnn_type=rnn_type,
        **kwargs,
    )


def reference_chunk_starts(starts: np.ndarray, length: int, mode: str, rollout_steps: int | None = None) -> np.ndarray:
    """Where a sequence begins, written directly from the definition (independent of buffers.py).

    ``starts`` may hold several rollouts of ``rollout_steps`` steps one after the other; an env
    counts its episode's steps from its first step when its episode start was not seen.
    """
    rollout_steps = rollout_steps or starts.shape[0]
    cut = np.zeros_like(starts)
    for e in range(starts.shape[1]):
        since_episode = 0
        for t in range(starts.shape[0]):
            if starts[t, e]:
                since_episode = 0
            if t % rollout_steps == 0 or starts[t, e]:
                cut[t, e] = True
            elif mode == "episode_aligned" and since_episode % length == 0:
                cut[t, e] = True
            elif mode == "rollout_aligned" and (t % rollout_steps) % length == 0:
                cut[t, e] = True
            since_episode += 1
    return cut


def random_masks(action_space: spaces.Space, rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Flat masks (MaskablePPO's layout) with at least one legal choice per dimension; for two-way
    dimensions (buttons) about a third of the rows force one value."""
    dims = [int(action_space.n)] if isinstance(action_space, spaces.Discrete) else list(action_space.nvec)
    parts = []
    for n in dims:
        part = rng.random((*shape, n)) < 0.5
        part[..., 0] |= ~part.any(-1)  # keep one legal choice
        if n == 2:
            part |= (rng.random((*shape, 1)) < 0.3) & ~part  # sometimes both allowed, sometimes forced
        parts.append(part)
    return np.concatenate(parts, axis=-1)


def fill_buffer(policy: RecurrentPolicy, buffer: SequenceBuffer, rng: np.random.Generator, masks: np.ndarray | None = None):
    """Random rollout through the policy's fused rollout step; returns what the reference needs.
    ``masks``: ``(N_STEPS, N_ENVS, mask size)`` action masks for the steps, or None."""
    h = policy.lstm_actor.num_layers, N_ENVS, policy.lstm_actor.hidden_size
    init = RNNStates(*(tuple(th.randn(h) for _ in range(2)) for _ in range(2)))
    states = init
    obs = rng.standard_normal((N_STEPS, N_ENVS, OBS_DIM)).astype(np.float32)
    starts = rng.random((N_STEPS, N_ENVS)) < 0.15
    starts[0] = [True, False, False]
    actions_all = []
    for t in range(N_STEPS):
        with th.no_grad():
            acts, values, logp, new_states = policy.rollout_step(
                th.as_tensor(obs[t]), states, th.as_tensor(starts[t], dtype=th.float32),
                action_masks=None if masks is None else masks[t],
            )
        acts = acts.numpy()
        actions_all.append(acts)
        rewards = rng.standard_normal(N_ENVS).astype(np.float32)
        buffer.add(obs[t], acts.reshape(N_ENVS, -1), rewards, starts[t], values, logp, lstm_states=states,
                   action_masks=None if masks is None else masks[t])
        states = new_states
    buffer.compute_returns_and_advantage(last_values=values, dones=np.zeros(N_ENVS, dtype=bool))
    return init, obs, starts, np.stack(actions_all)


def reference_log_prob(policy, latent_pi: th.Tensor, act: th.Tensor, mask: np.ndarray) -> th.Tensor:
    """Log-prob of one action under flat masks, written from the definition: masked categorical
    choices get -inf logits; a button that may take one value only has log-prob 0 (no gradient)."""
    logits = policy.action_net(latent_pi)[0]
    mask = th.as_tensor(mask)
    if isinstance(policy.action_space, spaces.Discrete):
        return th.distributions.Categorical(logits=logits.masked_fill(~mask, -th.inf)).log_prob(act.view(()))
    n_cat = policy.action_space.n_categorical
    act = act.view(-1)
    total = th.distributions.Categorical(logits=logits[:n_cat].masked_fill(~mask[:n_cat], -th.inf)).log_prob(act[0])
    pairs = mask[n_cat:].view(-1, 2)
    for k, logit in enumerate(logits[n_cat:]):
        assert pairs[k, int(act[1 + k])], "the sampled button value must be legal"
        if pairs[k].all():
            total = total + th.distributions.Bernoulli(logits=logit).log_prob(act[1 + k].float())
    return total


def reference_outputs(policy, init, obs, starts, actions, cuts, masks=None):
    """Step-by-step log-probs and values (with grad), shaped (n_steps, n_envs)."""
    logps = th.zeros(N_STEPS, N_ENVS)
    vals = th.zeros(N_STEPS, N_ENVS)
    cores = [(policy.lstm_actor, init.pi), (policy.lstm_critic, init.vf)]
    for e in range(N_ENVS):
        st = [(s[0][:, e : e + 1], s[1][:, e : e + 1]) for _, s in cores]
        for t in range(N_STEPS):
            x = th.as_tensor(obs[t, e]).view(1, 1, -1)
            latents = []
            for k, (core, _) in enumerate(cores):
                h, c = st[k]
                if starts[t, e]:
                    h, c = th.zeros_like(h), th.zeros_like(c)
                if cuts[t, e]:
                    h, c = h.detach(), c.detach()
                out, st[k] = core(x, (h, c))
                latents.append(out.view(1, -1))
            latent_pi = policy.mlp_extractor.forward_actor(latents[0])
            act = th.as_tensor(actions[t, e]).view(1, *policy.action_space.shape)
            if isinstance(policy.action_space, spaces.Discrete):
                act = act.view(1)
            if masks is None:
                logps[t, e] = policy._get_action_dist_from_latent(latent_pi).log_prob(act)[0]
            else:
                logps[t, e] = reference_log_prob(policy, latent_pi, act, masks[t, e])
            vals[t, e] = policy.value_net(policy.mlp_extractor.forward_critic(latents[1]))[0, 0]
    return logps, vals


@pytest.mark.parametrize("rnn_type", ["lstm", "gru"])
@pytest.mark.parametrize(
    "mode,length",
    [("rollout_aligned", 5), ("episode_aligned", 5), ("episode_segments", 16), ("rollout_aligned", 1)],
)
@pytest.mark.parametrize("hybrid", [False, True])
@pytest.mark.parametrize("masked", [False, True])
def test_sequences_match_step_by_step(rnn_type, mode, length, hybrid, masked):
    truncate = mode != "episode_segments"
    action_space = hybrid_action_space(3, 2) if hybrid else spaces.Discrete(3)
    policy = make_policy(rnn_type, action_space, n_lstm_layers=2 if rnn_type == "lstm" else 1)
    rng = np.random.default_rng(1)
    buffer = SequenceBuffer(
        N_STEPS, policy.observation_space, action_space, "cpu", n_envs=N_ENVS,
        sequence_length=length, sequence_mode=mode,
    )
    masks = random_masks(action_space, np.random.default_rng(2), (N_STEPS, N_ENVS)) if masked else None
    if masked:  # the masks bite: some choices forbidden, and (hybrid) some buttons forced
        assert (~masks).any(axis=(0, 1)).sum() >= 2
    init, obs, starts, actions = fill_buffer(policy, buffer, rng, masks)
    cuts = reference_chunk_starts(starts, length, mode)
    np.testing.assert_array_equal(buffer._seq_starts, cuts)
    weights = th.as_tensor(rng.standard_normal((2, N_STEPS * N_ENVS)), dtype=th.float32)

    policy.zero_grad()
    ours_logp = th.full((N_ENVS * N_STEPS,), float("nan"))
    ours_val = th.full((N_ENVS * N_STEPS,), float("nan"))
    n_batches = 0
    for data in buffer.get(batch_size=2 * length if truncate else 40):
        n_batches += 1
        acts = data.actions.long().flatten() if isinstance(action_space, spaces.Discrete) else data.actions
        values, logp, _, _ = policy.evaluate_sequences(data.observations, acts, data.lstm_states,
                                                       action_masks=data.action_masks)
        valid = data.mask
        if masked:  # each real row carries its own step's masks; padding rows are all legal
            t_idx, e_idx = (data.indices[valid] % N_STEPS).numpy(), (data.indices[valid] // N_STEPS).numpy()
            np.testing.assert_array_equal(data.action_masks[valid].numpy(), masks[t_idx, e_idx])
            assert data.action_masks[~valid].all()
        else:
            assert data.action_masks is None
        idx = data.indices[valid]
        ours_logp[idx] = logp[valid].detach()
        ours_val[idx] = values.flatten()[valid].detach()
        loss = (weights[0, idx] * logp[valid]).sum() + (weights[1, idx] * values.flatten()[valid]).sum()
        loss.backward()
        # rows carry the right data
        t_idx, e_idx = (idx % N_STEPS).numpy(), (idx // N_STEPS).numpy()
        np.testing.assert_array_equal(data.observations[valid].numpy(), obs[t_idx, e_idx])
        # each row of a sequence follows its predecessor in time within one env
        rows = data.indices.view(data.n_seq, -1)
        for row in rows:
            real = row[row >= 0]
            assert th.all(real[1:] - real[:-1] == 1)
            assert len(real) <= (length if truncate else N_STEPS)
    assert n_batches > 1
    ours_grads = {n: p.grad.clone() for n, p in policy.named_parameters() if p.grad is not None}

    policy.zero_grad()
    ref_logp, ref_val = reference_outputs(policy, init, obs, starts, actions, cuts, masks)
    # env-major flat order, as the buffer's indices
    ref_logp, ref_val = ref_logp.T.reshape(-1), ref_val.T.reshape(-1)
    ((weights[0] * ref_logp).sum() + (weights[1] * ref_val).sum()).backward()

    assert not th.isnan(ours_logp).any(), "every step must appear in exactly one minibatch"
    th.testing.assert_close(ours_logp, ref_logp.detach(), atol=1e-5, rtol=1e-5)
    th.testing.assert_close(ours_val, ref_val.detach(), atol=1e-5, rtol=1e-5)
    ref_grads = {n: p.grad for n, p in policy.named_parameters() if p.grad is not None}
    assert ours_grads.keys() == ref_grads.keys()
    for name in ref_grads:
        th.testing.assert_close(ours_grads[name], ref_grads[name], atol=1e-5, rtol=1e-4, msg=name)


def test_state_stored_only_at_sequence_starts():
    policy = make_policy("lstm", spaces.Discrete(3))
    buffer = SequenceBuffer(N_STEPS, policy.observation_space, spaces.Discrete(3), "cpu", n_envs=N_ENVS,
                            sequence_length=8)
    _, _, starts, _ = fill_buffer(policy, buffer, np.random.default_rng(3))
    stored = sum(len(c[0]) for c in buffer._state_chunks)
    expected = reference_chunk_starts(starts, 8, "rollout_aligned").sum()
    assert stored == expected < N_STEPS * N_ENVS


@pytest.mark.parametrize("mode", ["rollout_aligned", "episode_aligned", "episode_segments"])
def test_cuts_over_consecutive_rollouts(mode):
    """Each mode cuts where its definition says, over three rollouts (the episode phase carries over)."""
    policy = make_policy("gru", spaces.Discrete(3))
    buffer = SequenceBuffer(N_STEPS, policy.observation_space, spaces.Discrete(3), "cpu", n_envs=N_ENVS,
                            sequence_length=5, sequence_mode=mode)
    rng = np.random.default_rng(4)
    all_starts, all_cuts = [], []
    for _ in range(3):
        buffer.reset()
        _, _, starts, _ = fill_buffer(policy, buffer, rng)
        all_starts.append(starts)
        all_cuts.append(buffer._seq_starts.copy())
    expected = reference_chunk_starts(np.concatenate(all_starts), 5, mode, rollout_steps=N_STEPS)
    np.testing.assert_array_equal(np.concatenate(all_cuts), expected)
    if mode == "episode_aligned":  # differs from the rollout grid once an episode spans two rollouts
        assert not np.array_equal(expected, reference_chunk_starts(np.concatenate(all_starts), 5, "rollout_aligned",
                                                                   rollout_steps=N_STEPS))
