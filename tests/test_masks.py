"""Action masks (sb3-contrib MaskablePPO's conventions) in the distributions, policies, buffers,
RecurrentPPO (LSTM and GRU), PPO, predict and the evaluation helper.

References are written from the definitions: a masked distribution is the unmasked one
renormalised over the legal choices (``torch.distributions`` on renormalised probabilities);
sb3-contrib's ``MaskablePPO`` is the reference for the feed-forward policy.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from gymnasium import spaces
from sb3_contrib import MaskablePPO
from sb3_contrib.common.wrappers import ActionMasker
from stable_baselines3.common.distributions import make_proba_distribution
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import DummyVecEnv

from sb3_selfplay import PPO, RecurrentPPO
from sb3_selfplay.distributions import CategoricalBernoulliDistribution
from sb3_selfplay.masks import check_action_masks, evaluate_masked_policy, mask_layout, mask_logits
from sb3_selfplay.spaces import hybrid_action_space

SPACES = {
    "discrete": lambda: spaces.Discrete(5),
    "multidiscrete": lambda: spaces.MultiDiscrete([4, 3]),
    "hybrid": lambda: hybrid_action_space(4, 2),
}


def dims_of(space: spaces.Space) -> list[int]:
    return [int(space.n)] if isinstance(space, spaces.Discrete) else [int(n) for n in space.nvec]


def random_masks(space: spaces.Space, rng: np.random.Generator, n: int) -> np.ndarray:
    """Flat masks, at least one legal choice per dimension; two-way dimensions (buttons) are
    forced to one value in about a third of the rows."""
    parts = []
    for size in dims_of(space):
        part = rng.random((n, size)) < 0.5
        part[np.arange(n), rng.integers(size, size=n)] = True
        if size == 2:
            forced = rng.random(n) < 0.35
            part[forced] = False
            part[forced, rng.integers(2, size=int(forced.sum()))] = True
        parts.append(part)
    return np.concatenate(parts, axis=1)


def legal(space: spaces.Space, masks: np.ndarray, actions: np.ndarray) -> np.ndarray:
    """Per row: is every dimension's chosen value allowed by the flat mask row?"""
    actions = np.asarray(actions).reshape(len(masks), -1).astype(np.int64)
    starts = np.concatenate([[0], np.cumsum(dims_of(space))[:-1]])
    return masks[np.arange(len(masks))[:, None], starts[None] + actions].all(axis=1)


def make_distribution(space: spaces.Space):
    """The action distribution our policies use on ``space`` (dual heads on the hybrid space)."""
    if hasattr(space, "n_bernoulli"):
        return CategoricalBernoulliDistribution(space.n_categorical, space.n_bernoulli)
    return make_proba_distribution(space)


def masked_distribution(space: spaces.Space, logits: th.Tensor, masks: np.ndarray):
    dist = make_distribution(space)
    masks_t = th.as_tensor(masks)
    if isinstance(dist, CategoricalBernoulliDistribution):
        return dist.proba_distribution(logits, action_masks=masks_t)
    return dist.proba_distribution(mask_logits(logits, masks_t, mask_layout(space, dist).n_binary_logits))


def n_logits(space: spaces.Space) -> int:
    return space.n_categorical + space.n_bernoulli if hasattr(space, "n_bernoulli") else sum(dims_of(space))


def reference(space: spaces.Space, logits: th.Tensor, masks: np.ndarray) -> list[th.distributions.Categorical]:
    """One Categorical per dimension on the legal choices' renormalised probabilities."""
    masks_t = th.as_tensor(masks)
    out, col, mcol = [], 0, 0
    hybrid = hasattr(space, "n_bernoulli")
    for d, size in enumerate(dims_of(space)):
        if hybrid and d > 0:  # a button: probabilities [1 - sigmoid(l), sigmoid(l)] from ONE logit
            p1 = th.sigmoid(logits[:, col])
            probs = th.stack([1 - p1, p1], dim=1)
            col += 1
        else:
            probs = th.softmax(logits[:, col : col + size], dim=1)
            col += size
        probs = probs * masks_t[:, mcol : mcol + size]
        mcol += size
        out.append(th.distributions.Categorical(probs=probs / probs.sum(1, keepdim=True)))
    return out


# ---------------------------------------------------------------- layout and checks


def test_mask_layout_follows_maskableppo():
    assert mask_layout(spaces.Discrete(5)).dims == (5,)
    assert mask_layout(spaces.MultiDiscrete([4, 3])).size == 7
    space = hybrid_action_space(4, 2)
    assert mask_layout(space).size == 8 and mask_layout(space).n_binary_logits == 0  # SB3's MultiCategorical head
    assert mask_layout(space, make_distribution(space)).n_binary_logits == 2  # dual heads: one logit per button
    assert mask_layout(spaces.MultiBinary(3), make_proba_distribution(spaces.MultiBinary(3))).n_binary_logits == 3
    with pytest.raises(ValueError, match="Discrete, MultiDiscrete"):
        mask_layout(spaces.Box(-1, 1, (2,)))


def test_bad_masks_are_one_line_errors_naming_env_and_dimension():
    layout = mask_layout(spaces.MultiDiscrete([3, 2]))
    good = np.ones((4, 5), dtype=bool)
    assert check_action_masks(good, layout, 4).shape == (4, 5)
    with pytest.raises(ValueError, match="env 0 gave 4 entries, expected 5") as err:
        check_action_masks(np.ones((4, 4), dtype=bool), layout, 4)
    assert "\n" not in str(err.value)
    bad = good.copy()
    bad[2, 3:5] = False
    with pytest.raises(ValueError, match=r"env 2 has no legal choice in dimension 1 .*entries 3:5") as err:
        check_action_masks(bad, layout, 4)
    assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match="3 rows for 4 envs"):
        check_action_masks(good[:3], layout, 4)


# ---------------------------------------------------------------- the maths


@pytest.mark.parametrize("kind", list(SPACES))
def test_masked_choice_is_never_sampled(kind):
    """>= 100k draws; the logits favour the masked choices strongly, so ignoring a mask shows."""
    space = SPACES[kind]()
    rng = np.random.default_rng(0)
    rows, draws = 2_000, 50
    masks = random_masks(space, rng, rows)
    logits = th.randn(rows, n_logits(space), generator=th.Generator().manual_seed(0))
    if not hasattr(space, "n_bernoulli"):
        logits = logits + 6.0 * th.as_tensor(~masks, dtype=th.float32)  # masked choices would dominate
    dist = masked_distribution(space, logits, masks)
    th.manual_seed(0)
    seen = np.zeros(masks.shape[1], dtype=bool)
    starts = np.concatenate([[0], np.cumsum(dims_of(space))[:-1]])
    for _ in range(draws):
        actions = dist.sample().numpy().reshape(rows, -1)
        assert legal(space, masks, actions).all()
        seen[(starts[None] + actions).ravel()] = True
    assert legal(space, masks, dist.mode().numpy()).all()
    assert seen[masks.any(0)].all(), "every choice that is legal somewhere gets sampled"
    if kind == "hybrid":  # forced buttons really occur, both ways
        pairs = masks[:, 4:].reshape(rows, 2, 2)
        assert (pairs[..., 0] & ~pairs[..., 1]).any() and (pairs[..., 1] & ~pairs[..., 0]).any()


@pytest.mark.parametrize("dtype,tol", [(th.float64, 1e-10), (th.float32, 1e-5)])
@pytest.mark.parametrize("kind", list(SPACES))
def test_log_prob_and_entropy_equal_renormalised_reference(kind, dtype, tol):
    space = SPACES[kind]()
    rng = np.random.default_rng(1)
    masks = random_masks(space, rng, 256)
    logits = 3 * th.randn(256, n_logits(space), generator=th.Generator().manual_seed(1), dtype=dtype)
    dist = masked_distribution(space, logits, masks)
    refs = reference(space, logits, masks)
    actions = th.stack([r.sample() for r in refs], dim=1)  # legal by construction
    ours = dist.log_prob(actions.flatten() if isinstance(space, spaces.Discrete) else actions)
    want = sum(r.log_prob(a) for r, a in zip(refs, actions.unbind(1)))
    th.testing.assert_close(ours, want, atol=tol, rtol=tol)
    th.testing.assert_close(dist.entropy(), sum(r.entropy() for r in refs), atol=tol, rtol=tol)
    # the masks change the answer (the test would catch masks being ignored)
    unmasked = make_distribution(space).proba_distribution(logits)
    assert not th.allclose(unmasked.entropy(), dist.entropy())


@pytest.mark.parametrize("kind", list(SPACES))
def test_masked_logits_get_zero_gradient(kind):
    space = SPACES[kind]()
    masks = random_masks(space, np.random.default_rng(2), 128)
    logits = th.randn(128, n_logits(space), generator=th.Generator().manual_seed(2), requires_grad=True)
    dist = masked_distribution(space, logits, masks)
    actions = dist.sample()
    (dist.log_prob(actions).sum() + dist.entropy().sum()).backward()
    grad = logits.grad
    if hasattr(space, "n_bernoulli"):
        n_cat = space.n_categorical
        pairs = masks[:, n_cat:].reshape(128, -1, 2)
        frozen = np.concatenate([~masks[:, :n_cat], pairs[..., 0] != pairs[..., 1]], axis=1)  # forced buttons too
    else:
        frozen = ~masks
    assert frozen.any() and (~frozen).any()
    assert (grad[th.as_tensor(frozen)] == 0).all()
    assert (grad[th.as_tensor(~frozen)] != 0).float().mean() > 0.9


def test_multibinary_bits_can_be_forced():
    """MultiBinary(k): 2k entries as MaskablePPO's; SB3's one-logit Bernoulli head is forced by +/-1e8."""
    space = spaces.MultiBinary(3)
    dist_type = make_proba_distribution(space)
    rng = np.random.default_rng(6)
    masks = np.ones((4_000, 6), dtype=bool)
    masks[np.arange(4_000)[:, None], 2 * np.arange(3) + rng.integers(2, size=(4_000, 3))] = rng.random((4_000, 3)) > 0.4
    logits = th.randn(4_000, 3, generator=th.Generator().manual_seed(6), requires_grad=True)
    dist = dist_type.proba_distribution(mask_logits(logits, th.as_tensor(masks), mask_layout(space, dist_type).n_binary_logits))
    pairs = masks.reshape(-1, 3, 2)
    for _ in range(25):  # 100k draws of each bit
        bits = dist.sample().long().numpy()
        assert np.take_along_axis(pairs, bits[..., None], axis=2).all()
    p1 = th.sigmoid(logits.detach()).numpy()
    want = np.where(pairs.all(-1), p1 * np.log(p1) + (1 - p1) * np.log(1 - p1), 0.0).sum(1)
    np.testing.assert_allclose(dist.entropy().detach().numpy(), -want, atol=1e-5)
    dist.entropy().sum().backward()
    assert (logits.grad[th.as_tensor(~pairs.all(-1))] == 0).all()


def test_half_precision_masks_stay_finite():
    space = spaces.MultiDiscrete([4, 3])
    masks = random_masks(space, np.random.default_rng(3), 64)
    logits = th.randn(64, 7).half()
    dist = masked_distribution(space, logits.float(), masks)
    masked16 = mask_logits(logits, th.as_tensor(masks))
    assert th.isfinite(masked16).all()
    assert th.isfinite(dist.entropy()).all()


# ---------------------------------------------------------------- feed-forward parity with MaskablePPO


class RandomMaskEnv(gym.Env):
    """Observations are noise; each step a fresh random mask. An illegal action costs -1 and is
    counted; a legal one pays +1 when it is the lowest legal choice of dimension 0. Records every
    (mask, action) pair it sees, in step order."""

    def __init__(self, kind: str = "discrete", seed: int = 0, episode_len: int = 6, bad: str | None = None):
        self.action_space = SPACES[kind]()
        self.observation_space = spaces.Box(-1, 1, (4,), dtype=np.float32)
        self.rng = np.random.default_rng(seed)
        self.episode_len, self.bad = episode_len, bad
        self.illegal = 0
        self.history: list[tuple[np.ndarray, np.ndarray]] = []
        self._new_mask()

    def _new_mask(self) -> None:
        self.mask = random_masks(self.action_space, self.rng, 1)[0]

    def action_masks(self) -> np.ndarray:
        if self.bad == "length":
            return self.mask[:-1]
        if self.bad == "empty":
            mask = self.mask.copy()
            mask[: dims_of(self.action_space)[0]] = False
            return mask
        return self.mask

    def _obs(self) -> np.ndarray:
        return self.rng.uniform(-1, 1, 4).astype(np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        self._new_mask()
        return self._obs(), {}

    def step(self, action):
        action = np.asarray(action).reshape(-1)
        self.history.append((self.mask.copy(), action.copy()))
        ok = bool(legal(self.action_space, self.mask[None], action[None])[0])
        self.illegal += not ok
        reward = -1.0 if not ok else float(action[0] == np.flatnonzero(self.mask[: dims_of(self.action_space)[0]])[0])
        self.t += 1
        self._new_mask()
        return self._obs(), reward, False, self.t >= self.episode_len, {}


@pytest.mark.parametrize("kind", ["discrete", "multidiscrete"])
def test_feed_forward_log_probs_equal_maskableppo(kind):
    env = RandomMaskEnv(kind)
    kwargs = dict(n_steps=16, batch_size=16, seed=0, policy_kwargs=dict(net_arch=[8]))
    contrib = MaskablePPO("MlpPolicy", env, **kwargs)
    ours = PPO("HybridMlpPolicy", RandomMaskEnv(kind), **kwargs)
    ours.policy.load_state_dict(contrib.policy.state_dict())
    rng = np.random.default_rng(4)
    obs = th.as_tensor(rng.uniform(-1, 1, (200, 4)), dtype=th.float32)
    masks = random_masks(env.action_space, rng, 200)
    with th.no_grad():
        dist = contrib.policy.get_distribution(obs, action_masks=masks)
        actions = dist.get_actions()
        want_v, want_lp, want_ent = contrib.policy.evaluate_actions(obs, actions, action_masks=th.as_tensor(masks))
        got_v, got_lp, got_ent = ours.policy.evaluate_actions(obs, actions, action_masks=th.as_tensor(masks))
        _, _, got_lp_fwd = ours.policy.forward(obs, deterministic=True, action_masks=masks)
        want_mode = contrib.policy.get_distribution(obs, action_masks=masks).mode()
        got_mode = ours.policy.masked_distribution(obs, masks).mode()
    assert legal(env.action_space, masks, actions.numpy()).all()
    th.testing.assert_close(got_lp, want_lp, atol=1e-6, rtol=1e-6)
    th.testing.assert_close(got_ent, want_ent, atol=1e-6, rtol=1e-6)
    th.testing.assert_close(got_v, want_v)
    th.testing.assert_close(got_mode, want_mode)
    th.testing.assert_close(got_lp_fwd, contrib.policy.get_distribution(obs, action_masks=masks).log_prob(want_mode))
    # and the predict of both agrees on the deterministic action
    np.testing.assert_array_equal(
        ours.predict(obs.numpy(), deterministic=True, action_masks=masks)[0],
        contrib.predict(obs.numpy(), deterministic=True, action_masks=masks)[0],
    )


# ---------------------------------------------------------------- training integration

ALGOS = ["rppo-lstm", "rppo-gru", "ppo"]


def make_model(algo: str, env, **kwargs):
    common = {**dict(n_steps=16, batch_size=16, n_epochs=2, seed=0), **kwargs}
    if algo == "ppo":
        return PPO("HybridMlpPolicy", env, policy_kwargs=dict(net_arch=[8]), **common)
    rnn = algo.split("-")[1]
    return RecurrentPPO("MlpLstmPolicy", env, sequence_length=4,
                        policy_kwargs=dict(lstm_hidden_size=4, net_arch=[8], rnn_type=rnn), **common)


def stored(model) -> tuple[np.ndarray, np.ndarray]:
    """The last rollout's masks and actions as (n_steps, n_envs, ...), whatever the buffer did to them."""
    buf = model.rollout_buffer
    n_steps, n_envs = buf.buffer_size, buf.n_envs
    masks, actions = buf.action_masks, buf.actions
    if masks.ndim == 2:  # SB3's get() flattened them env-major
        masks = masks.reshape(n_envs, n_steps, -1).swapaxes(0, 1)
    if actions.ndim == 2 and actions.shape[0] == n_steps * n_envs:
        actions = actions.reshape(n_envs, n_steps, -1).swapaxes(0, 1)
    return masks, actions.reshape(n_steps, n_envs, -1)


@pytest.mark.parametrize("kind", list(SPACES))
@pytest.mark.parametrize("algo", ALGOS)
def test_learn_with_masks_never_stores_or_plays_an_illegal_action(algo, kind):
    vec = DummyVecEnv([lambda i=i: RandomMaskEnv(kind, seed=i) for i in range(2)])
    model = make_model(algo, vec)
    model.learn(64)
    envs = [e.unwrapped for e in vec.envs]
    assert sum(len(e.history) for e in envs) == 64
    assert all(e.illegal == 0 for e in envs)
    masks, actions = stored(model)
    assert masks is not None and masks.shape == (16, 2, mask_layout(vec.action_space).size)
    for e, env in enumerate(envs):  # the buffer holds, per step, the masks the env gave for that step
        np.testing.assert_array_equal(masks[:, e], np.stack([m for m, _ in env.history[-16:]]))
        np.testing.assert_array_equal(actions[:, e].astype(np.int64), np.stack([a for _, a in env.history[-16:]]))
    assert legal(vec.action_space, masks.reshape(32, -1), actions.reshape(32, -1)).all()
    assert not masks.all(), "the masks forbid something"
    for key in ("train/policy_gradient_loss", "train/approx_kl", "train/entropy_loss"):
        assert np.isfinite(model.logger.name_to_value[key]), key


@pytest.mark.parametrize("algo", ALGOS)
def test_first_epoch_ratio_is_one_under_masks(algo):
    """train() applies the stored masks: at the first minibatch the new log-probs equal the
    rollout's masked ones (without the masks in train the ratio would be far from 1)."""
    vec = DummyVecEnv([lambda i=i: RandomMaskEnv("multidiscrete", seed=i) for i in range(2)])
    model = make_model(algo, vec, n_epochs=1, learning_rate=0.0)
    model.learn(32)
    assert abs(model.logger.name_to_value["train/approx_kl"]) < 1e-6
    assert model.logger.name_to_value["train/clip_fraction"] == 0.0


def test_without_masks_nothing_is_stored():
    for algo in ("rppo-lstm", "ppo"):
        model = make_model(algo, make_vec_env("CartPole-v1", n_envs=2, seed=0))
        model.learn(32)
        assert model.rollout_buffer.action_masks is None


def test_action_masker_wrapper_is_read():
    """sb3-contrib's ActionMasker gives the masks of an env without action_masks()."""

    class NoMethod(RandomMaskEnv):
        action_masks = None  # type: ignore[assignment]

    def make(i):
        env = NoMethod("discrete", seed=i)
        return ActionMasker(env, lambda e: e.unwrapped.mask)

    vec = DummyVecEnv([lambda i=i: make(i) for i in range(2)])
    model = make_model("rppo-gru", vec)
    model.learn(32)
    assert all(e.unwrapped.illegal == 0 for e in vec.envs)
    assert model.rollout_buffer.action_masks is not None


class BatchedMaskVecEnv(DummyVecEnv):
    """A VecEnv answering ``action_masks()`` for all its envs at once (as SelfPlayVecEnv does)."""

    calls = 0

    def action_masks(self) -> np.ndarray:
        self.calls += 1
        return np.stack([e.unwrapped.mask for e in self.envs])

    def env_method(self, method_name, *args, **kwargs):
        assert method_name != "action_masks", "the batched method is used instead"
        return super().env_method(method_name, *args, **kwargs)


@pytest.mark.parametrize("algo", ["rppo-lstm", "ppo"])
def test_a_vecenv_with_its_own_action_masks_answers_for_all_envs(algo):
    vec = BatchedMaskVecEnv([lambda i=i: RandomMaskEnv("hybrid", seed=i) for i in range(2)])
    model = make_model(algo, vec)
    model.learn(32)
    assert vec.calls == 16 and all(e.unwrapped.illegal == 0 for e in vec.envs)
    masks, _ = stored(model)
    np.testing.assert_array_equal(masks[:, 1], np.stack([m for m, _ in vec.envs[1].unwrapped.history[-16:]]))


@pytest.mark.parametrize("bad,match", [("length", "env 1 gave 4 entries, expected 5"),
                                       ("empty", "env 1 has no legal choice in dimension 0")])
@pytest.mark.parametrize("algo", ["rppo-lstm", "ppo"])
def test_bad_env_masks_stop_learning_with_a_one_line_error(algo, bad, match):
    vec = DummyVecEnv([lambda: RandomMaskEnv("discrete", seed=0), lambda: RandomMaskEnv("discrete", seed=1, bad=bad)])
    model = make_model(algo, vec)
    with pytest.raises(ValueError, match=match) as err:
        model.learn(32)
    assert "\n" not in str(err.value)


def test_ppo_with_a_policy_that_ignores_masks_says_so():
    model = PPO("MlpPolicy", DummyVecEnv([lambda: RandomMaskEnv("discrete")]), n_steps=16, batch_size=16)
    with pytest.raises(ValueError, match="HybridMlpPolicy"):
        model.learn(16)


# ---------------------------------------------------------------- predict and evaluation


@pytest.mark.parametrize("kind", list(SPACES))
@pytest.mark.parametrize("algo", ALGOS)
def test_predict_with_masks_never_returns_an_illegal_action(algo, kind):
    env = RandomMaskEnv(kind)
    model = make_model(algo, env)
    rng = np.random.default_rng(5)
    obs = rng.uniform(-1, 1, (3_000, 4)).astype(np.float32)
    masks = random_masks(env.action_space, rng, 3_000)
    state = None
    for deterministic in (False, True, False):
        actions, state = model.predict(obs, state=state, deterministic=deterministic, action_masks=masks)
        assert actions.shape == (3_000, *env.action_space.shape)
        assert legal(env.action_space, masks, actions).all()
    unmasked, _ = model.predict(obs, deterministic=False)
    assert not legal(env.action_space, masks, unmasked).all(), "without masks some actions are illegal"
    if algo != "ppo":  # the state moves on and has the contrib layout
        assert state[0].shape == (1, 3_000, 4) and np.abs(state[0]).sum() > 0
    single, _ = model.predict(obs[0], deterministic=True, action_masks=masks[0])  # one observation, one row
    assert legal(env.action_space, masks[:1], single[None]).all()


@pytest.mark.parametrize("algo", ["rppo-gru", "ppo"])
def test_predict_bad_masks_error(algo):
    model = make_model(algo, RandomMaskEnv("multidiscrete"))
    obs = np.zeros((3, 4), dtype=np.float32)
    with pytest.raises(ValueError, match="env 0 gave 6 entries, expected 7"):
        model.predict(obs, action_masks=np.ones((3, 6), dtype=bool))
    masks = np.ones((3, 7), dtype=bool)
    masks[1, 4:] = False
    with pytest.raises(ValueError, match="env 1 has no legal choice in dimension 1"):
        model.predict(obs, action_masks=masks)


class SpyModel:
    """Records what evaluate_masked_policy passes to predict; returns a new state each call."""

    def __init__(self, env: DummyVecEnv):
        self.env, self.calls, self.counter = env, [], 0

    def predict(self, obs, state=None, episode_start=None, deterministic=False, action_masks=None):
        self.calls.append((state, episode_start.copy(), action_masks.copy(),
                           np.stack([e.unwrapped.mask for e in self.env.envs])))
        self.counter += 1
        first = np.argmax(action_masks[:, :5], axis=1)  # the lowest legal choice
        return first, (np.full((1, len(obs), 2), self.counter, dtype=np.float32),)


def test_evaluation_helper_carries_state_and_reads_masks_each_step():
    vec = DummyVecEnv([lambda i=i: RandomMaskEnv("discrete", seed=i, episode_len=3) for i in range(2)])
    spy = SpyModel(vec)
    rewards, lengths = evaluate_masked_policy(spy, vec, n_eval_episodes=4, return_episode_rewards=True, warn=False)
    assert lengths == [3, 3, 3, 3] and rewards == [3.0, 3.0, 3.0, 3.0]  # lowest legal choice pays 1 per step
    assert spy.calls[0][0] is None
    for k, (state, starts, masks, env_masks) in enumerate(spy.calls):
        np.testing.assert_array_equal(masks, env_masks)  # the masks of the env's current state
        if k:
            assert state[0][0, 0, 0] == k  # the state returned by the previous call
        assert starts.all() == (k % 3 == 0)  # episode starts reset the state


@pytest.mark.parametrize("algo", ["rppo-lstm", "ppo"])
def test_evaluation_helper_plays_legal_moves(algo):
    env = RandomMaskEnv("hybrid", seed=3)
    model = make_model(algo, env)
    eval_env = RandomMaskEnv("hybrid", seed=4)
    mean, _ = evaluate_masked_policy(model, eval_env, n_eval_episodes=3, deterministic=False, warn=False)
    assert eval_env.illegal == 0 and len(eval_env.history) == 18
    assert mean >= 0
