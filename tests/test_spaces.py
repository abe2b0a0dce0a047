"""Tests for sb3_selfplay.spaces: the hybrid action space, its wrapper and the Dict/Tuple check."""

from __future__ import annotations

import copy
import pickle
from typing import Any

import cloudpickle
import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces
from stable_baselines3.common.env_checker import check_env

from sb3_selfplay.spaces import (
    HybridActionSpace,
    HybridActionWrapper,
    check_action_space,
    hybrid_action_space,
    hybrid_layout,
)

LAYOUTS = [(1, 1), (3, 2), (7, 5)]


class _TinyEnv(gym.Env):
    """Two-step env declaring any action space; asserts every action it receives is valid."""

    def __init__(self, action_space: spaces.Space) -> None:
        self.observation_space = spaces.Box(-1.0, 1.0, shape=(3,), dtype=np.float32)
        self.action_space = action_space
        self.received: list[Any] = []
        self._t = 0

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self._t = 0
        return np.zeros(3, dtype=np.float32), {}

    def step(self, action: Any):
        assert self.action_space.contains(action), f"invalid action {action!r} for {self.action_space}"
        self.received.append(action)
        self._t += 1
        return np.full(3, 0.5, dtype=np.float32), 1.0, self._t >= 2, False, {}


# --------------------------------------------------------------------------------------------
# HybridActionSpace
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("n_cat,n_bern", LAYOUTS)
def test_space_layout(n_cat: int, n_bern: int) -> None:
    space = hybrid_action_space(n_cat, n_bern, seed=0)
    assert isinstance(space, HybridActionSpace)
    assert isinstance(space, spaces.MultiDiscrete)
    assert space.n_categorical == n_cat and space.n_bernoulli == n_bern
    assert space.shape == (1 + n_bern,)
    np.testing.assert_array_equal(space.nvec, [n_cat] + [2] * n_bern)
    assert space.dtype == np.int64
    assert hybrid_layout(space) == (n_cat, n_bern)
    samples = np.stack([space.sample() for _ in range(50)])
    assert all(space.contains(s) for s in samples)
    assert samples[:, 0].min() >= 0 and samples[:, 0].max() < n_cat
    assert set(np.unique(samples[:, 1:])) <= {0, 1}
    assert not space.contains(np.array([n_cat] + [0] * n_bern))
    assert not space.contains(np.array([0] + [2] + [0] * (n_bern - 1)))


def test_space_equality_and_repr() -> None:
    space = hybrid_action_space(4, 3)
    assert space == spaces.MultiDiscrete([4, 2, 2, 2])
    assert spaces.MultiDiscrete([4, 2, 2, 2]) == space
    assert space == HybridActionSpace(4, 3)
    assert space != hybrid_action_space(4, 2)
    assert space != hybrid_action_space(3, 3)
    assert repr(space) == "HybridActionSpace(n_categorical=4, n_bernoulli=3)"


def test_space_seed_reproducible() -> None:
    a, b = hybrid_action_space(5, 4, seed=123), hybrid_action_space(5, 4, seed=123)
    for _ in range(5):
        np.testing.assert_array_equal(a.sample(), b.sample())


@pytest.mark.parametrize(
    "roundtrip",
    [copy.deepcopy, lambda s: pickle.loads(pickle.dumps(s)), lambda s: cloudpickle.loads(cloudpickle.dumps(s))],
    ids=["deepcopy", "pickle", "cloudpickle"],
)
@pytest.mark.parametrize("n_cat,n_bern", LAYOUTS)
def test_space_roundtrip_keeps_attributes(roundtrip, n_cat: int, n_bern: int) -> None:
    space = hybrid_action_space(n_cat, n_bern, seed=7)
    clone = roundtrip(space)
    assert type(clone) is HybridActionSpace
    assert (clone.n_categorical, clone.n_bernoulli) == (n_cat, n_bern)
    assert hybrid_layout(clone) == (n_cat, n_bern)
    assert clone == space
    np.testing.assert_array_equal(clone.nvec, space.nvec)
    np.testing.assert_array_equal(clone.sample(), space.sample())  # RNG state travels too


@pytest.mark.parametrize("n_cat,n_bern", LAYOUTS)
def test_check_env_accepts_hybrid_space(n_cat: int, n_bern: int) -> None:
    env = _TinyEnv(hybrid_action_space(n_cat, n_bern))
    check_env(env, warn=True)


@pytest.mark.parametrize("factory", [hybrid_action_space, HybridActionSpace], ids=["function", "class"])
@pytest.mark.parametrize(
    "n_cat,n_bern,bad_name,bad_value",
    [(0, 3, "n_categorical", 0), (-2, 3, "n_categorical", -2), (4, 0, "n_bernoulli", 0), (4, -1, "n_bernoulli", -1)],
)
def test_space_rejects_zero_counts(factory, n_cat: int, n_bern: int, bad_name: str, bad_value: int) -> None:
    with pytest.raises(ValueError) as info:
        factory(n_cat, n_bern)
    msg = str(info.value)
    assert f"{bad_name} must be >= 1 (got {bad_value})" in msg
    assert "\n" not in msg
    if bad_name == "n_bernoulli":
        assert "Discrete" in msg


def test_space_error_prefix_names_caller() -> None:
    with pytest.raises(ValueError, match=r"^hybrid_action_space: n_bernoulli must be >= 1 \(got 0\); use Discrete"):
        hybrid_action_space(3, 0)
    with pytest.raises(ValueError, match=r"^HybridActionSpace: n_categorical must be >= 1 \(got 0\)"):
        HybridActionSpace(0, 3)


@pytest.mark.parametrize("bad", [2.0, "3", True, None])
def test_space_rejects_non_integers(bad: Any) -> None:
    with pytest.raises(TypeError, match="n_categorical must be an int"):
        hybrid_action_space(bad, 2)


def test_space_accepts_numpy_integers() -> None:
    space = hybrid_action_space(np.int64(3), np.int32(2))
    assert (space.n_categorical, space.n_bernoulli) == (3, 2)
    assert type(space.n_categorical) is int


@pytest.mark.parametrize(
    "space",
    [spaces.MultiDiscrete([3, 2, 2]), spaces.Discrete(3), spaces.MultiBinary(2), spaces.Box(-1, 1, (2,)), None, 5],
)
def test_hybrid_layout_none_for_other_spaces(space: Any) -> None:
    assert hybrid_layout(space) is None


# --------------------------------------------------------------------------------------------
# check_action_space
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "space,kind",
    [
        (spaces.Dict({"move": spaces.Discrete(3), "buttons": spaces.MultiBinary(2)}), "Dict"),
        (spaces.Tuple((spaces.Discrete(3), spaces.MultiBinary(2))), "Tuple"),
    ],
)
def test_check_action_space_rejects_dict_and_tuple(space: spaces.Space, kind: str) -> None:
    with pytest.raises(ValueError) as info:
        check_action_space(space, "RecurrentPPO")
    msg = str(info.value)
    assert msg.startswith(f"RecurrentPPO: {kind} action spaces are not supported by SB3;")
    assert "sb3_selfplay.spaces.HybridActionWrapper" in msg
    assert "\n" not in msg


@pytest.mark.parametrize(
    "space",
    [hybrid_action_space(3, 2), spaces.MultiDiscrete([3, 2]), spaces.Discrete(4), spaces.Box(-1, 1, (2,))],
)
def test_check_action_space_accepts_sb3_spaces(space: spaces.Space) -> None:
    assert check_action_space(space, "x") is None


# --------------------------------------------------------------------------------------------
# HybridActionWrapper
# --------------------------------------------------------------------------------------------


def _dict_space(start: int, key_order: tuple[str, str], mb_n: int = 3) -> spaces.Dict:
    parts = {"move": spaces.Discrete(5, start=start), "buttons": spaces.MultiBinary(mb_n)}
    return spaces.Dict({key: parts[key] for key in key_order})


WRAPPABLE = [
    pytest.param(_dict_space(0, ("move", "buttons")), id="dict"),
    pytest.param(_dict_space(-2, ("buttons", "move")), id="dict-start-neg2"),
    pytest.param(
        spaces.Dict({"z_move": spaces.Discrete(4, start=10), "a_btn": spaces.MultiBinary(2)}), id="dict-start10"
    ),
    pytest.param(spaces.Tuple((spaces.Discrete(5), spaces.MultiBinary(3))), id="tuple"),
    pytest.param(spaces.Tuple((spaces.MultiBinary(3), spaces.Discrete(5, start=3))), id="tuple-reversed-start3"),
    pytest.param(spaces.Tuple((spaces.Discrete(6, start=1, dtype=np.int32), spaces.MultiBinary(1))), id="tuple-int32"),
]


def _discrete_and_multibinary(space: spaces.Space) -> tuple[spaces.Discrete, spaces.MultiBinary]:
    subs = list(space.spaces.values()) if isinstance(space, spaces.Dict) else list(space.spaces)
    disc = next(s for s in subs if isinstance(s, spaces.Discrete))
    mbin = next(s for s in subs if isinstance(s, spaces.MultiBinary))
    return disc, mbin


@pytest.mark.parametrize("inner_space", WRAPPABLE)
def test_wrapper_space_and_roundtrip(inner_space: spaces.Space) -> None:
    disc, mbin = _discrete_and_multibinary(inner_space)
    env = HybridActionWrapper(_TinyEnv(inner_space))
    assert isinstance(env.action_space, HybridActionSpace)
    assert hybrid_layout(env.action_space) == (int(disc.n), mbin.shape[0])
    assert env.observation_space == env.unwrapped.observation_space
    env.action_space.seed(0)
    inner_space.seed(0)
    for _ in range(20):
        hybrid = env.action_space.sample()
        native = env.action(hybrid)
        assert inner_space.contains(native)
        assert type(native) is (dict if isinstance(inner_space, spaces.Dict) else tuple)
        if isinstance(inner_space, spaces.Dict):
            assert list(native.keys()) == list(inner_space.spaces.keys())
        np.testing.assert_array_equal(env.reverse_action(native), hybrid)
        # and the other way round, from a native sample
        sample = inner_space.sample()
        back = env.action(env.reverse_action(sample))
        parts = zip(back.values(), sample.values()) if isinstance(sample, dict) else zip(back, sample)
        for got, want in parts:
            np.testing.assert_array_equal(got, want)
            assert np.asarray(got).dtype == np.asarray(want).dtype


@pytest.mark.parametrize("inner_space", WRAPPABLE)
def test_wrapper_start_offset_and_dtypes(inner_space: spaces.Space) -> None:
    disc, mbin = _discrete_and_multibinary(inner_space)
    env = HybridActionWrapper(_TinyEnv(inner_space))
    k = mbin.shape[0]
    native = env.action(np.array([0] + [1] * k))
    vals = list(native.values()) if isinstance(native, dict) else list(native)
    cat = next(v for v in vals if np.ndim(v) == 0)
    btn = next(v for v in vals if np.ndim(v) == 1)
    assert cat == disc.start and np.asarray(cat).dtype == disc.dtype
    assert btn.dtype == mbin.dtype and btn.tolist() == [1] * k
    last = env.action(np.array([int(disc.n) - 1] + [0] * k))
    vals = list(last.values()) if isinstance(last, dict) else list(last)
    assert next(v for v in vals if np.ndim(v) == 0) == disc.start + disc.n - 1


@pytest.mark.parametrize("inner_space", WRAPPABLE)
def test_wrapper_steps_and_passes_check_env(inner_space: spaces.Space) -> None:
    env = HybridActionWrapper(_TinyEnv(inner_space))
    check_env(env, warn=True)
    env.reset(seed=0)
    action = env.action_space.sample()
    env.step(action)
    received = env.unwrapped.received[-1]
    np.testing.assert_array_equal(env.reverse_action(received), action)


def test_wrapper_accepts_float_and_2d_actions() -> None:
    env = HybridActionWrapper(_TinyEnv(_dict_space(2, ("move", "buttons"))))
    native = env.action(np.array([[3.0, 1.0, 0.0, 1.0]], dtype=np.float32))
    assert native["move"] == 5 and native["buttons"].tolist() == [1, 0, 1]
    assert native["buttons"].dtype == np.int8


def test_wrapper_rejects_wrong_action_length() -> None:
    env = HybridActionWrapper(_TinyEnv(_dict_space(0, ("move", "buttons"))))
    with pytest.raises(ValueError, match=r"^HybridActionWrapper: expected an action of 4 integers, got shape \(3,\)$"):
        env.action(np.array([1, 0, 1]))


@pytest.mark.parametrize(
    "space,fragment",
    [
        (spaces.Dict({"a": spaces.Box(-1, 1, (2,)), "b": spaces.Discrete(3)}), "got Dict('a': Box("),
        (spaces.Dict({"a": spaces.Discrete(3), "b": spaces.Discrete(3)}), "got Dict('a': Discrete(3)"),
        (spaces.Dict({"a": spaces.MultiBinary(3), "b": spaces.MultiBinary(3)}), "got Dict("),
        (
            spaces.Dict({"a": spaces.Discrete(3), "b": spaces.MultiBinary(3), "c": spaces.Discrete(2)}),
            "got Dict(",
        ),
        (spaces.Dict({"a": spaces.Discrete(3)}), "got Dict('a': Discrete(3))"),
        (spaces.Tuple((spaces.Discrete(3), spaces.MultiDiscrete([2, 2]))), "got Tuple(Discrete(3), MultiDiscrete("),
        (spaces.Tuple((spaces.Discrete(3),)), "got Tuple(Discrete(3)"),
        (spaces.Discrete(3), "got Discrete(3)"),
        (spaces.Box(-1, 1, (2,)), "got Box("),
        (hybrid_action_space(3, 2), "got HybridActionSpace(n_categorical=3, n_bernoulli=2)"),
    ],
)
def test_wrapper_rejects_bad_spaces(space: spaces.Space, fragment: str) -> None:
    with pytest.raises(ValueError) as info:
        HybridActionWrapper(_TinyEnv(space))
    msg = str(info.value)
    assert msg.startswith("HybridActionWrapper: expected a Dict or Tuple of one Discrete and one MultiBinary, ")
    assert fragment in msg
    assert "\n" not in msg


def test_wrapper_rejects_2d_multibinary() -> None:
    space = spaces.Dict({"move": spaces.Discrete(3), "buttons": spaces.MultiBinary([2, 2])})
    with pytest.raises(ValueError) as info:
        HybridActionWrapper(_TinyEnv(space))
    msg = str(info.value)
    assert msg.startswith("HybridActionWrapper: the MultiBinary must be 1-D, got shape (2, 2)")
    assert "\n" not in msg


def test_wrapper_error_message_is_one_line_for_big_spaces() -> None:
    space = spaces.Dict({f"k{i}": spaces.Box(-1, 1, (4, 4)) for i in range(30)})
    with pytest.raises(ValueError) as info:
        HybridActionWrapper(_TinyEnv(space))
    msg = str(info.value)
    assert "\n" not in msg and len(msg) < 400 and msg.endswith("...")
