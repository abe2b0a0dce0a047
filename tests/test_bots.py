"""Generic bots and the per-game bot registry: RandomBot for every action space, register_bot, game_bots, make_bot."""

from __future__ import annotations

import numpy as np
import pytest
from gymnasium import spaces

from sb3_selfplay.games import DuelGame, PettingZooGame, RandomBot, game_bots, make_bot, register_bot
from sb3_selfplay.games.bots import _REGISTERED, Bot
from sb3_selfplay.spaces import hybrid_action_space

N = 2000


def draw(space: spaces.Space, n: int = N, seed: int = 0) -> np.ndarray:
    bot = RandomBot(n, space, seed=seed)
    actions = bot.act(np.zeros((n, 3), np.float32), np.ones(n, bool))
    assert actions.shape == (n, *space.shape) and actions.dtype == space.dtype, (actions.shape, actions.dtype)
    assert all(space.contains(a) for a in actions[:200])
    return actions


def test_random_bot_discrete_covers_every_value():
    actions = draw(spaces.Discrete(5))
    assert sorted(np.unique(actions)) == [0, 1, 2, 3, 4]
    assert np.all(np.abs(np.bincount(actions) / N - 0.2) < 0.04)
    shifted = draw(spaces.Discrete(3, start=-1))
    assert sorted(np.unique(shifted)) == [-1, 0, 1]


@pytest.mark.parametrize("space", [spaces.MultiDiscrete([3, 2, 4]), hybrid_action_space(9, 3)], ids=["md", "hybrid"])
def test_random_bot_multidiscrete_and_hybrid(space):
    actions = draw(space)
    for k, n in enumerate(space.nvec):
        assert sorted(np.unique(actions[:, k])) == list(range(n))


def test_random_bot_multidiscrete_2d_and_start():
    space = spaces.MultiDiscrete(np.array([[2, 3], [4, 5]]), start=np.array([[1, 0], [-2, 5]]))
    actions = draw(space)
    assert actions.shape == (N, 2, 2)
    assert actions[:, 1, 1].min() == 5 and actions[:, 1, 1].max() == 9
    assert actions[:, 1, 0].min() == -2 and actions[:, 1, 0].max() == 1


def test_random_bot_multibinary():
    actions = draw(spaces.MultiBinary([2, 3]))
    assert set(np.unique(actions)) == {0, 1} and abs(actions.mean() - 0.5) < 0.03


def test_random_bot_box_bounds_and_dtypes():
    box = spaces.Box(np.array([-1, 0, 5], np.float32), np.array([1, 0.5, 5], np.float32), dtype=np.float32)
    actions = draw(box)
    assert np.all(actions >= box.low) and np.all(actions <= box.high)
    assert actions[:, 0].min() < -0.9 and actions[:, 0].max() > 0.9 and np.all(actions[:, 2] == 5.0)
    half = spaces.Box(low=np.array([0.0, -np.inf, -np.inf]), high=np.array([np.inf, 2.0, np.inf]), dtype=np.float64)
    actions = draw(half)
    assert np.all(actions[:, 0] >= 0) and np.all(actions[:, 1] <= 2.0)
    assert actions[:, 2].min() < -1 and actions[:, 2].max() > 1  # unbounded: normal
    ints = spaces.Box(low=-2, high=2, shape=(4,), dtype=np.int64)
    actions = draw(ints)
    assert sorted(np.unique(actions)) == [-2, -1, 0, 1, 2]


def test_random_bot_is_seeded_and_respects_masks():
    space = spaces.Discrete(4)
    a = RandomBot(64, space, seed=3).act(np.zeros((64, 1)))
    b = RandomBot(64, space, seed=3).act(np.zeros((64, 1)))
    np.testing.assert_array_equal(a, b)
    mask = np.zeros((N, 4), bool)
    mask[:, [1, 3]] = True
    mask[0] = False  # no legal action: uniform
    actions = RandomBot(N, space, seed=0).act(np.zeros((N, 1)), action_masks=mask)
    assert set(np.unique(actions[1:])) == {1, 3}
    md = spaces.MultiDiscrete([2, 3])
    masks = np.tile([True, False, False, True, True], (N, 1))
    actions = RandomBot(N, md, seed=0).act(np.zeros((N, 1)), action_masks=masks)
    assert set(np.unique(actions[:, 0])) == {0} and set(np.unique(actions[:, 1])) == {1, 2}
    with pytest.raises(TypeError, match="RandomBot supports"):
        RandomBot(2, spaces.Tuple([spaces.Discrete(2)]))
    with pytest.raises(ValueError, match="expected 2 observations, got 3"):
        RandomBot(2, space).act(np.zeros((3, 1)))


class ConstBot(Bot):
    """Always plays ``value``."""

    def __init__(self, num_envs, action_space, seed=None, value: int = 0):
        self.value = value
        super().__init__(num_envs, action_space, seed)

    def _act(self, obs, action_masks):
        return np.full(self.num_envs, self.value, dtype=self.action_space.dtype)


class OtherBot(ConstBot):
    pass


class ClassBotsGame(DuelGame):
    game_id = None
    bots = {"still": ConstBot, "random": OtherBot}


def test_register_bot_game_bots_and_make_bot():
    try:
        register_bot("Toy-v0", "zero", ConstBot)
        register_bot("Toy-v0", "zero", ConstBot)  # the same factory again: a no-op
        with pytest.raises(ValueError, match="bot 'zero' of game 'Toy-v0' is already registered"):
            register_bot("Toy-v0", "zero", OtherBot)
        with pytest.raises(ValueError, match="already registered"):
            register_bot("Toy-v0", "random", OtherBot)  # the generic random bot needs overwrite
        register_bot("Toy-v0", "one", ConstBot)
        assert list(game_bots("Toy-v0")) == ["random", "zero", "one"]
        register_bot("Toy-v0", "zero", OtherBot, overwrite=True)
        assert game_bots("Toy-v0")["zero"] is OtherBot
        bot = make_bot("Toy-v0", "one", 3, spaces.Discrete(4), value=2)
        assert isinstance(bot, ConstBot) and bot.act(np.zeros((3, 1))).tolist() == [2, 2, 2]
        with pytest.raises(ValueError, match="unknown bot 'hunter' for game 'Toy-v0'; its bots: random, zero, one$"):
            make_bot("Toy-v0", "hunter", 1, spaces.Discrete(4))
        with pytest.raises(ValueError, match="pass action_space"):
            make_bot("Toy-v0", "one", 1)
        with pytest.raises(TypeError, match="must be callable"):
            register_bot("Toy-v0", "bad", "not a factory")  # type: ignore[arg-type]
    finally:
        _REGISTERED.pop("Toy-v0", None)
    # Generic games know only random; other games' bots do not leak.
    assert list(game_bots("Unknown-v0")) == ["random"]
    assert list(game_bots("Duel-v0")) == ["random", "turret", "hunter"]


def test_class_level_bots_and_game_ids():
    game = ClassBotsGame(num_envs=2)
    bots = game_bots(game)
    assert list(bots) == ["random", "still"] and bots["random"] is RandomBot  # generic random first
    assert isinstance(make_bot(game, "still", 2), ConstBot)
    with pytest.raises(ValueError, match="unknown bot 'turret' for game 'ClassBotsGame'; its bots: random, still"):
        make_bot(game, "turret", 2)


def test_pettingzoo_game_takes_a_game_id():
    from tests.test_pettingzoo_game import CueDuel

    try:
        register_bot("Cue-v0", "zero", ConstBot)
        game = PettingZooGame(CueDuel, num_envs=2, game_id="Cue-v0")
        assert game.game_id == "Cue-v0" and list(game_bots(game)) == ["random", "zero"]
        assert list(game_bots(PettingZooGame(CueDuel, num_envs=1))) == ["random"]
    finally:
        _REGISTERED.pop("Cue-v0", None)
