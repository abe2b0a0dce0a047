"""Tests for sb3_selfplay.distributions.CategoricalBernoulliDistribution.

Reference values come from ``torch.distributions`` (one ``Categorical`` plus independent
``Bernoulli`` buttons) computed by hand.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch as th
from gymnasium import spaces
from stable_baselines3.common.distributions import MultiCategoricalDistribution
from stable_baselines3.common.policies import ActorCriticPolicy
from torch.distributions import Bernoulli, Categorical

from sb3_selfplay.distributions import CategoricalBernoulliDistribution, make_hybrid_distribution
from sb3_selfplay.spaces import hybrid_action_space

LAYOUTS = [(1, 1), (3, 2), (6, 4)]
BATCH = 16


def _logits(n_cat: int, n_bern: int, batch: int = BATCH, scale: float = 3.0, dtype=th.float64) -> th.Tensor:
    gen = th.Generator().manual_seed(1000 * n_cat + n_bern)
    return (scale * th.randn(batch, n_cat + n_bern, generator=gen)).to(dtype)


def _reference(logits: th.Tensor, n_cat: int, masks: th.Tensor | None = None) -> tuple[Categorical, Bernoulli]:
    cat_logits = logits[:, :n_cat]
    if masks is not None:
        cat_logits = th.where(masks, cat_logits, th.tensor(-1e8, dtype=logits.dtype))
    return Categorical(logits=cat_logits), Bernoulli(logits=logits[:, n_cat:])


def _random_actions(n_cat: int, n_bern: int, batch: int = BATCH) -> th.Tensor:
    gen = th.Generator().manual_seed(7)
    cat = th.randint(n_cat, (batch, 1), generator=gen)
    btn = th.randint(2, (batch, n_bern), generator=gen)
    return th.cat([cat, btn], dim=1)


@pytest.mark.parametrize("n_cat,n_bern", LAYOUTS)
def test_net_has_one_logit_per_button(n_cat: int, n_bern: int) -> None:
    dist = CategoricalBernoulliDistribution(n_cat, n_bern)
    net = dist.proba_distribution_net(latent_dim=8)
    assert isinstance(net, th.nn.Linear)
    assert (net.in_features, net.out_features) == (8, n_cat + n_bern)
    assert isinstance(dist, MultiCategoricalDistribution)
    assert dist.action_dims == [n_cat] + [2] * n_bern


@pytest.mark.parametrize("dtype,tol", [(th.float64, 1e-10), (th.float32, 1e-6)])
@pytest.mark.parametrize("n_cat,n_bern", LAYOUTS)
def test_log_prob_matches_torch_distributions(n_cat: int, n_bern: int, dtype: th.dtype, tol: float) -> None:
    logits = _logits(n_cat, n_bern, dtype=dtype)
    actions = _random_actions(n_cat, n_bern)
    dist = CategoricalBernoulliDistribution(n_cat, n_bern).proba_distribution(logits)
    cat, bern = _reference(logits, n_cat)
    want_cat = cat.log_prob(actions[:, 0])
    want_bern = bern.log_prob(actions[:, 1:].to(dtype)).sum(1)
    got = dist.log_prob(actions)
    assert got.shape == (BATCH,) and got.dtype == dtype
    th.testing.assert_close(got, want_cat + want_bern, atol=tol, rtol=tol)
    th.testing.assert_close(dist.log_prob_categorical(actions), want_cat, atol=tol, rtol=tol)
    th.testing.assert_close(dist.log_prob_bernoulli(actions), want_bern, atol=tol, rtol=tol)
    # SB3 buffers hand float actions back during training
    th.testing.assert_close(dist.log_prob(actions.float()), got, atol=0, rtol=0)


@pytest.mark.parametrize("dtype,tol", [(th.float64, 1e-10), (th.float32, 1e-6)])
@pytest.mark.parametrize("n_cat,n_bern", LAYOUTS)
def test_entropy_matches_torch_distributions(n_cat: int, n_bern: int, dtype: th.dtype, tol: float) -> None:
    logits = _logits(n_cat, n_bern, dtype=dtype)
    dist = CategoricalBernoulliDistribution(n_cat, n_bern).proba_distribution(logits)
    cat, bern = _reference(logits, n_cat)
    want_cat, want_bern = cat.entropy(), bern.entropy().sum(1)
    assert dist.entropy().shape == (BATCH,)
    th.testing.assert_close(dist.entropy_categorical(), want_cat, atol=tol, rtol=tol)
    th.testing.assert_close(dist.entropy_bernoulli(), want_bern, atol=tol, rtol=tol)
    th.testing.assert_close(dist.entropy(), want_cat + want_bern, atol=tol, rtol=tol)


@pytest.mark.parametrize("n_cat,n_bern", LAYOUTS)
def test_extreme_logits_are_finite_and_exact(n_cat: int, n_bern: int) -> None:
    logits = _logits(n_cat, n_bern, scale=60.0, dtype=th.float32)
    actions = _random_actions(n_cat, n_bern)
    dist = CategoricalBernoulliDistribution(n_cat, n_bern).proba_distribution(logits)
    cat, bern = _reference(logits, n_cat)
    assert th.isfinite(dist.log_prob(actions)).all() and th.isfinite(dist.entropy()).all()
    want = cat.log_prob(actions[:, 0]) + bern.log_prob(actions[:, 1:].float()).sum(1)
    th.testing.assert_close(dist.log_prob(actions), want, atol=1e-4, rtol=1e-6)
    th.testing.assert_close(dist.entropy_bernoulli(), bern.entropy().sum(1), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("n_cat,n_bern", LAYOUTS)
def test_shapes_and_dtypes_match_sb3_multicategorical(n_cat: int, n_bern: int) -> None:
    nvec = [n_cat] + [2] * n_bern
    ours = CategoricalBernoulliDistribution(n_cat, n_bern).proba_distribution(_logits(n_cat, n_bern, dtype=th.float32))
    sb3 = MultiCategoricalDistribution(nvec).proba_distribution(th.randn(BATCH, sum(nvec)))
    actions = _random_actions(n_cat, n_bern)
    for name in ("sample", "mode"):
        a, b = getattr(ours, name)(), getattr(sb3, name)()
        assert a.shape == b.shape == (BATCH, 1 + n_bern)
        assert a.dtype == b.dtype == th.int64
    assert ours.log_prob(actions).shape == sb3.log_prob(actions).shape == (BATCH,)
    assert ours.entropy().shape == sb3.entropy().shape == (BATCH,)
    for deterministic in (False, True):
        a = ours.actions_from_params(_logits(n_cat, n_bern, dtype=th.float32), deterministic)
        b = sb3.actions_from_params(th.randn(BATCH, sum(nvec)), deterministic)
        assert a.shape == b.shape and a.dtype == b.dtype
    a, lp = ours.log_prob_from_params(_logits(n_cat, n_bern, dtype=th.float32))
    b, lp_b = sb3.log_prob_from_params(th.randn(BATCH, sum(nvec)))
    assert a.shape == b.shape and lp.shape == lp_b.shape


@pytest.mark.parametrize("n_cat,n_bern", LAYOUTS)
def test_mode(n_cat: int, n_bern: int) -> None:
    logits = _logits(n_cat, n_bern, dtype=th.float32)
    dist = CategoricalBernoulliDistribution(n_cat, n_bern).proba_distribution(logits)
    mode = dist.mode()
    th.testing.assert_close(mode[:, 0], logits[:, :n_cat].argmax(1))
    th.testing.assert_close(mode[:, 1:], (logits[:, n_cat:] > 0).long())
    th.testing.assert_close(dist.get_actions(deterministic=True), mode)
    th.testing.assert_close(dist.actions_from_params(logits, deterministic=True), mode)


def test_sample_frequencies_match_probabilities() -> None:
    n_cat, n_bern, batch = 4, 3, 20000
    row = th.tensor([[1.0, -0.5, 0.3, 2.0, 0.7, -1.2, 0.0]])
    logits = row.expand(batch, -1)
    th.manual_seed(0)
    samples = CategoricalBernoulliDistribution(n_cat, n_bern).proba_distribution(logits).sample()
    cat_freq = th.bincount(samples[:, 0], minlength=n_cat).float() / batch
    th.testing.assert_close(cat_freq, th.softmax(row[0, :n_cat], 0), atol=0.015, rtol=0)
    btn_freq = samples[:, 1:].float().mean(0)
    th.testing.assert_close(btn_freq, th.sigmoid(row[0, n_cat:]), atol=0.015, rtol=0)
    # buttons are independent of each other and of the choice: joint ~ product of marginals
    p_joint = ((samples[:, 0] == 3) & (samples[:, 1] == 1)).float().mean()
    assert abs(p_joint - cat_freq[3] * btn_freq[0]) < 0.015
    assert set(samples[:, 1:].unique().tolist()) <= {0, 1}


def test_sample_is_reproducible_with_torch_seed() -> None:
    dist = CategoricalBernoulliDistribution(5, 3).proba_distribution(_logits(5, 3, dtype=th.float32))
    th.manual_seed(3)
    a = dist.sample()
    th.manual_seed(3)
    th.testing.assert_close(dist.sample(), a)


@pytest.mark.parametrize("n_cat,n_bern", LAYOUTS)
def test_log_prob_from_params_is_consistent(n_cat: int, n_bern: int) -> None:
    logits = _logits(n_cat, n_bern, dtype=th.float32)
    dist = CategoricalBernoulliDistribution(n_cat, n_bern)
    actions, log_prob = dist.log_prob_from_params(logits)
    cat, bern = _reference(logits, n_cat)
    want = cat.log_prob(actions[:, 0]) + bern.log_prob(actions[:, 1:].float()).sum(1)
    th.testing.assert_close(log_prob, want, atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("n_cat,n_bern", LAYOUTS)
def test_gradients_flow_to_both_heads(n_cat: int, n_bern: int) -> None:
    dist = CategoricalBernoulliDistribution(n_cat, n_bern)
    net = dist.proba_distribution_net(latent_dim=5)
    latent = th.randn(BATCH, 5)
    logits = net(latent)
    logits.retain_grad()
    actions = _random_actions(n_cat, n_bern)
    dist.proba_distribution(logits)
    (dist.log_prob(actions).mean() + 0.1 * dist.entropy().mean()).backward()
    assert net.weight.grad is not None and th.isfinite(net.weight.grad).all()
    assert logits.grad[:, n_cat:].abs().sum() > 0
    if n_cat > 1:
        assert logits.grad[:, :n_cat].abs().sum() > 0


@pytest.mark.parametrize("n_cat,n_bern", LAYOUTS)
def test_gradients_match_torch_distributions(n_cat: int, n_bern: int) -> None:
    base = _logits(n_cat, n_bern)
    actions = _random_actions(n_cat, n_bern)
    ours_in = base.clone().requires_grad_(True)
    ref_in = base.clone().requires_grad_(True)
    dist = CategoricalBernoulliDistribution(n_cat, n_bern).proba_distribution(ours_in)
    (dist.log_prob(actions) + dist.entropy()).sum().backward()
    cat, bern = _reference(ref_in, n_cat)
    ref_log_prob = cat.log_prob(actions[:, 0]) + bern.log_prob(actions[:, 1:].double()).sum(1)
    (ref_log_prob + cat.entropy() + bern.entropy().sum(1)).sum().backward()
    th.testing.assert_close(ours_in.grad, ref_in.grad, atol=1e-10, rtol=1e-8)


# --------------------------------------------------------------------------------------------
# masking
# --------------------------------------------------------------------------------------------


def _masks(n_cat: int, batch: int = BATCH) -> th.Tensor:
    gen = th.Generator().manual_seed(11)
    masks = th.rand(batch, n_cat, generator=gen) > 0.5
    masks[th.arange(batch), th.randint(n_cat, (batch,), generator=gen)] = True  # at least one allowed per row
    return masks


@pytest.mark.parametrize("as_numpy", [False, True])
@pytest.mark.parametrize("n_cat,n_bern", [(3, 2), (6, 4)])
def test_masking_matches_reference(n_cat: int, n_bern: int, as_numpy: bool) -> None:
    logits = _logits(n_cat, n_bern)
    masks = _masks(n_cat)
    given = masks.numpy() if as_numpy else masks
    dist = CategoricalBernoulliDistribution(n_cat, n_bern).proba_distribution(logits, action_masks=given)
    cat, bern = _reference(logits, n_cat, masks)
    allowed_actions = th.cat([cat.sample().unsqueeze(1), _random_actions(n_cat, n_bern)[:, 1:]], dim=1)
    want = cat.log_prob(allowed_actions[:, 0]) + bern.log_prob(allowed_actions[:, 1:].double()).sum(1)
    th.testing.assert_close(dist.log_prob(allowed_actions), want, atol=1e-10, rtol=1e-10)
    # entropy of the categorical renormalised over the allowed choices only
    probs = th.softmax(logits[:, :n_cat].masked_fill(~masks, -th.inf), dim=1)
    want_h = -(probs * th.log(probs.clamp_min(1e-300))).sum(1)
    th.testing.assert_close(dist.entropy_categorical(), want_h, atol=1e-10, rtol=1e-10)
    th.testing.assert_close(dist.entropy_bernoulli(), bern.entropy().sum(1), atol=1e-10, rtol=1e-10)
    # mode and samples never pick a masked choice
    assert masks.gather(1, dist.mode()[:, :1]).all()
    th.manual_seed(0)
    for _ in range(20):
        assert masks.gather(1, dist.sample()[:, :1]).all()
    # a masked choice is (numerically) impossible
    forbidden = (~masks).float().argmax(1, keepdim=True)
    has_forbidden = (~masks).any(1)
    bad_actions = allowed_actions.clone()
    bad_actions[:, :1] = forbidden
    assert (dist.log_prob(bad_actions)[has_forbidden] < -1e6).all()


def test_masked_logits_get_no_gradient() -> None:
    n_cat, n_bern = 5, 2
    logits = _logits(n_cat, n_bern).requires_grad_(True)
    masks = _masks(n_cat)
    dist = CategoricalBernoulliDistribution(n_cat, n_bern).proba_distribution(logits, action_masks=masks)
    actions = dist.mode()
    (dist.log_prob(actions) + dist.entropy()).sum().backward()
    assert (logits.grad[:, :n_cat][~masks] == 0).all()
    assert th.isfinite(logits.grad).all()


def test_masks_are_cleared_by_next_call() -> None:
    n_cat, n_bern = 4, 2
    logits = _logits(n_cat, n_bern)
    dist = CategoricalBernoulliDistribution(n_cat, n_bern)
    dist.proba_distribution(logits, action_masks=_masks(n_cat))
    dist.proba_distribution(logits)
    cat, _ = _reference(logits, n_cat)
    th.testing.assert_close(dist.entropy_categorical(), cat.entropy())


def test_masks_with_half_precision_stay_finite() -> None:
    n_cat, n_bern = 4, 2
    logits = _logits(n_cat, n_bern, dtype=th.float16)
    dist = CategoricalBernoulliDistribution(n_cat, n_bern).proba_distribution(logits, action_masks=_masks(n_cat))
    assert th.isfinite(dist.entropy()).all()
    assert th.isfinite(dist.log_prob(dist.mode())).all()


# --------------------------------------------------------------------------------------------
# errors, factory, SB3 integration
# --------------------------------------------------------------------------------------------


def test_wrong_logit_width_raises() -> None:
    dist = CategoricalBernoulliDistribution(4, 3)
    expected = r"expected 7 logits \(n_categorical=4 \+ n_bernoulli=3\), got shape \(2, 10\)"
    with pytest.raises(ValueError, match=expected):
        dist.proba_distribution(th.zeros(2, 10))  # e.g. a MultiCategorical-sized net (4 + 2*3)


def test_use_before_parameters_raises() -> None:
    with pytest.raises(RuntimeError, match="call proba_distribution"):
        CategoricalBernoulliDistribution(3, 2).entropy()


@pytest.mark.parametrize("n_cat,n_bern", [(0, 2), (3, 0)])
def test_constructor_rejects_zero_counts(n_cat: int, n_bern: int) -> None:
    with pytest.raises(ValueError, match=f"got n_categorical={n_cat}, n_bernoulli={n_bern}"):
        CategoricalBernoulliDistribution(n_cat, n_bern)


def test_torch_distribution_view_matches() -> None:
    logits = _logits(4, 3)
    dist = CategoricalBernoulliDistribution(4, 3).proba_distribution(logits)
    cat, bern = dist.distribution
    ref_cat, ref_bern = _reference(logits, 4)
    th.testing.assert_close(cat.probs, ref_cat.probs)
    th.testing.assert_close(bern.probs, ref_bern.probs)


@pytest.mark.parametrize("n_cat,n_bern", LAYOUTS)
def test_make_hybrid_distribution(n_cat: int, n_bern: int) -> None:
    dist = make_hybrid_distribution(hybrid_action_space(n_cat, n_bern))
    assert isinstance(dist, CategoricalBernoulliDistribution)
    assert (dist.n_categorical, dist.n_bernoulli) == (n_cat, n_bern)


@pytest.mark.parametrize(
    "space", [spaces.MultiDiscrete([3, 2, 2]), spaces.Discrete(3), spaces.MultiBinary(2), spaces.Box(-1, 1, (2,))]
)
def test_make_hybrid_distribution_none_for_other_spaces(space: spaces.Space) -> None:
    assert make_hybrid_distribution(space) is None


class _HybridPolicy(ActorCriticPolicy):
    """Plain SB3 ActorCriticPolicy whose action distribution is swapped before ``_build``."""

    def _build(self, lr_schedule) -> None:
        self.action_dist = make_hybrid_distribution(self.action_space)
        super()._build(lr_schedule)


def test_sb3_actor_critic_policy_uses_it_unchanged() -> None:
    obs_space = spaces.Box(-1.0, 1.0, shape=(5,), dtype=np.float32)
    policy = _HybridPolicy(obs_space, hybrid_action_space(4, 3), lambda _: 1e-3, net_arch=[16])
    assert policy.action_net.out_features == 7
    obs = th.randn(BATCH, 5)
    actions, values, log_prob = policy(obs)
    assert actions.shape == (BATCH, 4) and log_prob.shape == (BATCH,) and values.shape == (BATCH, 1)
    values, log_prob2, entropy = policy.evaluate_actions(obs, actions.float())
    th.testing.assert_close(log_prob2, log_prob)
    assert entropy.shape == (BATCH,)
    (-log_prob2.mean() - 0.01 * entropy.mean()).backward()
    assert policy.action_net.weight.grad is not None
    action, _ = policy.predict(np.zeros(5, dtype=np.float32), deterministic=True)
    assert action.shape == (4,) and policy.action_space.contains(action)
    clone = copy.deepcopy(policy)  # cached tensors are part of a graph here; deepcopy must still work
    clone_action, _ = clone.predict(np.zeros(5, dtype=np.float32), deterministic=True)
    np.testing.assert_array_equal(clone_action, action)
