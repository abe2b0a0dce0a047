"""Turn-based games through SelfPlayVecEnv and PlayerBank: only the learner's turns, reward credit,
masks respected by opponents, recurrent states advancing only on their own turns."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch as th
from gymnasium import spaces
from sb3_contrib.common.maskable.utils import get_action_masks, is_masking_supported
from stable_baselines3.common.policies import ActorCriticPolicy

from sb3_selfplay.games import TwoPlayerGame, check_game, make_game
from sb3_selfplay.games.bots import _REGISTERED, Bot, register_bot
from sb3_selfplay.policies import RecurrentPolicy
from sb3_selfplay.selfplay import LATEST, OpponentPool
from sb3_selfplay.selfplay.players import PlayerBank
from sb3_selfplay.selfplay.vecenv import SelfPlayVecEnv


class Countdown(TwoPlayerGame):
    """
    A toy turn-based game: a counter starts at ``start``; the seats alternately take 1 or 2
    (action 0 or 1; taking 2 from 1 is illegal); taking the last one wins (+1 / -1). Every move
    also pays its mover +0.1 and the other seat -0.1, so rewards arrive on both seats' turns.
    """

    turn_based = True

    def __init__(self, num_envs: int = 1, start: int = 7) -> None:
        super().__init__(num_envs)
        self.start = start
        self.observation_space = spaces.Box(0.0, 100.0, shape=(2,), dtype=np.float32)
        self.action_space = spaces.Discrete(2)
        n = self.num_envs
        self._count = np.full(n, start)
        self._turn = np.zeros(n, np.int64)
        self._returns = np.zeros((n, 2))
        self._moves = np.zeros(n, np.int64)

    def _observe(self) -> np.ndarray:
        obs = np.zeros((self.num_envs, 2, 2), np.float32)
        obs[:, :, 0] = self._count[:, None]
        obs[np.arange(self.num_envs), self._turn, 1] = 1.0
        return obs

    def reset(self, seed: int | None = None) -> np.ndarray:
        self._count[:] = self.start
        self._turn[:] = 0
        self._returns[:] = 0.0
        self._moves[:] = 0
        return self._observe()

    def to_play(self) -> np.ndarray:
        return self._turn.copy()

    def action_masks(self) -> np.ndarray:
        masks = np.zeros((self.num_envs, 2, 2), bool)
        masks[np.arange(self.num_envs), self._turn] = np.stack([self._count >= 1, self._count >= 2], axis=1)
        return masks

    def step(self, actions: np.ndarray, active: np.ndarray | None = None) -> tuple:
        n = self.num_envs
        idx = np.arange(n) if active is None else np.flatnonzero(active)
        rewards = np.zeros((n, 2), np.float32)
        terminated = np.zeros(n, bool)
        infos: list[dict[str, Any]] = [{} for _ in range(n)]
        mover = self._turn[idx]
        take = np.asarray(actions)[idx, mover] + 1
        if (take > self._count[idx]).any():
            raise ValueError("Countdown: illegal move")
        self._count[idx] -= take
        self._moves[idx] += 1
        rewards[idx, mover] += 0.1
        rewards[idx, 1 - mover] -= 0.1
        won = self._count[idx] == 0
        rewards[idx[won], mover[won]] += 1.0
        rewards[idx[won], 1 - mover[won]] -= 1.0
        self._returns += rewards
        self._turn[idx[~won]] ^= 1
        obs = self._observe()
        for i, w in zip(idx[won].tolist(), mover[won].tolist(), strict=True):
            ret = self._returns[i].tolist()
            infos[i] = {
                "outcome": {"winner": w},
                "terminal_observation": obs[i].copy(),
                "episode": {"r": ret, "l": int(self._moves[i])},
                "metrics": {},
                "reward_components": {"total": ret},
            }
            terminated[i] = True
            self._count[i], self._turn[i], self._returns[i], self._moves[i] = self.start, 0, 0.0, 0
        return self._observe(), rewards, terminated, np.zeros(n, bool), infos

    def set_params(self, **params: Any) -> None:
        pass

    def get_params(self) -> dict[str, Any]:
        return {}

    def render(self, env_index: int = 0) -> np.ndarray:
        return np.zeros((4, 4, 3), np.uint8)

    def get_state(self, env_index: int = 0) -> dict[str, Any]:
        return {"count": int(self._count[env_index]), "to_play": int(self._turn[env_index])}


class ColumnBot(Bot):
    """Connect Four bot that always plays one column (``column``), for scripted games."""

    column = 0

    def _act(self, obs: np.ndarray, action_masks: np.ndarray | None) -> np.ndarray:
        return np.full(self.num_envs, self.column, np.int64)


@pytest.fixture
def column_bot():
    register_bot("ConnectFour-v0", "test_column0", ColumnBot)
    yield "test_column0"
    _REGISTERED["ConnectFour-v0"].pop("test_column0", None)


def random_legal(rng: np.random.Generator, masks: np.ndarray) -> np.ndarray:
    keys = rng.random(masks.shape)
    keys[~masks] = -1.0
    return keys.argmax(axis=-1)


def test_countdown_follows_the_protocol():
    check_game(Countdown(8), n_steps=200, min_episodes=20, check_render=False)


@pytest.mark.parametrize("game_id", ["ConnectFour-v0", "countdown"])
def test_learner_sees_only_its_turns_and_rewards_add_up(game_id):
    """Every observation the learner gets is its own turn; per episode its rewards sum to its seat's return."""
    n = 16
    game = make_game("ConnectFour-v0", n) if game_id == "ConnectFour-v0" else Countdown(n, start=5)
    env = SelfPlayVecEnv(game, None, learner_seat="random", latest_ratio=0.0, bots=["random"], seed=0)
    assert is_masking_supported(env)
    obs = env.reset()
    rng = np.random.default_rng(0)
    ar = np.arange(n)
    seen = {0: 0, 1: 0}
    total = np.zeros(n)
    ended = 0
    for _ in range(300):
        seats = env.seats()
        assert (game.to_play() == seats).all()
        full = game._obs if game_id == "ConnectFour-v0" else game._observe()
        np.testing.assert_array_equal(obs, full[ar, seats])
        masks = get_action_masks(env)
        np.testing.assert_array_equal(masks, game.action_masks()[ar, seats])
        assert masks.any(axis=1).all()
        obs, rewards, dones, infos = env.step(random_legal(rng, masks))
        total += rewards
        for i in np.flatnonzero(dones).tolist():
            info = infos[i]
            seat = info["selfplay"]["seat"]
            seen[seat] += 1
            assert total[i] == pytest.approx(info["episode"]["r"], abs=1e-5)
            score = info["selfplay"]["score"]
            assert info["episode"]["r"] == pytest.approx({1.0: 1.0, 0.0: -1.0, 0.5: 0.0}[score], abs=0.35)
            total[i] = 0.0
            ended += 1
    assert ended > 50 and seen[0] > 0 and seen[1] > 0
    results = env.pop_results()
    # Countdown's first mover can win before the learner moves (start=5 is not such a case, but
    # the ledger may count more games than the learner saw end, never fewer).
    assert len(results) >= ended


def test_games_that_end_before_the_learner_moves_are_recorded_not_shown(tmp_path):
    game = Countdown(8, start=2)  # seat 0 may take both at once
    pool = OpponentPool(tmp_path / "pool")
    env = SelfPlayVecEnv(game, pool, learner_seat=1, latest_ratio=0.0, bots=["random"], seed=0)
    obs = env.reset()
    rng = np.random.default_rng(0)
    shown = 0
    for _ in range(100):
        assert (game.to_play() == 1).all() and (obs[:, 0] == 1).all()  # the learner faces 1 left
        obs, rewards, dones, _ = env.step(random_legal(rng, get_action_masks(env)))
        assert dones.all() and (rewards > 0.5).all()  # it takes the last one: a win
        shown += int(dones.sum())
    results = env.pop_results()
    assert len(results) > shown  # games the opponent won outright were recorded too
    assert {r["outcome"] for r in results} == {"win", "loss"}
    assert pool.num_matches() == len(results)


def test_a_move_that_lets_the_opponent_win_is_paid_minus_one(column_bot):
    """The learner (seat 0) plays 6, 6, 6, 5; the bot stacks column 0 and wins inside the learner's 4th step."""
    game = make_game("ConnectFour-v0", 2)
    env = SelfPlayVecEnv(game, None, learner_seat=0, latest_ratio=0.0, bots=[column_bot], seed=0)
    obs = env.reset()
    assert not obs.any()
    for t, col in enumerate([6, 6, 6, 5]):
        obs, rewards, dones, infos = env.step(np.array([col, col]))
        if t < 3:
            assert not dones.any() and not rewards.any()
            assert obs[0, 5 - t, 0, 1] == 1 and obs[0, 5 - t, 6, 0] == 1  # the bot's reply is already on the board
    assert dones.all() and rewards.tolist() == [-1.0, -1.0]
    assert infos[0]["selfplay"]["outcome"] == "loss" and infos[0]["episode"]["r"] == -1.0
    last = infos[0]["terminal_observation"]
    assert last[2:, 0, 1].tolist() == [1, 1, 1, 1]  # the learner's view of the final board
    # A winning move is paid +1 in the same step (the learner, seat 0, stacks column 3 first).
    out = [env.step(np.array([3, 3])) for _ in range(4)]
    assert [bool(o[2][0]) for o in out] == [False, False, False, True]
    assert out[-1][1].tolist() == [1.0, 1.0] and out[-1][3][0]["selfplay"]["outcome"] == "win"
    # In seat 1 the learner's first observation already holds the bot's first move.
    game1 = make_game("ConnectFour-v0", 1)
    env1 = SelfPlayVecEnv(game1, None, learner_seat=1, latest_ratio=0.0, bots=[column_bot], seed=0)
    obs = env1.reset()
    assert obs[0, 5, 0, 1] == 1 and obs.sum() == 1


def make_c4_policy(kind: str, seed: int) -> ActorCriticPolicy:
    game = make_game("ConnectFour-v0", 1)
    th.manual_seed(seed)
    if kind == "ff":
        policy = ActorCriticPolicy(game.observation_space, game.action_space, lambda _: 0.0, net_arch=[16])
    else:
        policy = RecurrentPolicy(
            game.observation_space, game.action_space, lambda _: 0.0, lstm_hidden_size=8, net_arch=[16]
        )
    policy.set_training_mode(False)
    return policy


@pytest.mark.parametrize("fuse", [True, False])
@pytest.mark.parametrize("kind", ["ff", "lstm"])
def test_bank_never_plays_a_masked_action(kind, fuse):
    policy = make_c4_policy(kind, 0)
    with th.no_grad():
        policy.action_net.bias[0] = 50.0  # column 0 is by far the most likely
    game = make_game("ConnectFour-v0", 1)
    n = 64
    bank = PlayerBank(n, game.observation_space, game.action_space, fuse=fuse)
    bank.add_player("p", policy)
    rng = np.random.default_rng(0)
    obs = rng.integers(0, 2, (n, 6, 7, 2)).astype(np.int8)
    masks = rng.random((n, 7)) < 0.5
    masks[:, 0] = np.arange(n) % 2 == 0  # column 0 legal in even slots only
    masks[n - 4 :] = False  # no legal action: not to move (left unmasked)
    ids = ["p"] * n
    for deterministic in (True, False):
        for _ in range(20):
            actions = bank.act(obs, ids, None, deterministic=deterministic, action_masks=masks)
            odd = np.arange(n - 4) % 2 == 1
            assert masks[np.arange(n - 4), actions[: n - 4]].all()
            assert (actions[: n - 4][odd] != 0).all()
            assert (actions[n - 4 :] == 0).all()  # unmasked there: the biased column


@pytest.mark.parametrize("fuse", [True, False])
def test_bank_states_advance_only_on_active_slots(fuse):
    """Each slot's recurrent state equals a step-by-step predict over its own (active) turns only."""
    policy = make_c4_policy("lstm", 1)
    game = make_game("ConnectFour-v0", 1)
    n, steps = 6, 8
    bank = PlayerBank(n, game.observation_space, game.action_space, fuse=fuse)
    bank.add_player("p", policy)
    rng = np.random.default_rng(1)
    obs = rng.integers(0, 2, (steps, n, 6, 7, 2)).astype(np.int8)
    active = rng.random((steps, n)) < 0.5
    active[0] = True
    ids = ["p"] * n
    got = []
    for t in range(steps):
        got.append(bank.act(obs[t], ids, np.full(n, t == 0), deterministic=True, active=active[t]))
    h, c = bank.get_state(np.arange(n))
    for s in range(n):
        state, start = None, np.ones(1, bool)
        for t in np.flatnonzero(active[:, s]):
            action, state = policy.predict(obs[t, s][None], state, start, deterministic=True)
            start = np.zeros(1, bool)
            assert got[t][s] == action[0]
        np.testing.assert_allclose(h[:, s], state[0][:, 0], atol=1e-5)
        np.testing.assert_allclose(c[:, s], state[1][:, 0], atol=1e-5)


def test_recurrent_opponent_inside_selfplay_env_advances_only_on_its_turns():
    """A recurrent LATEST opponent's state equals predict over the observations of its own turns only."""
    policy = make_c4_policy("lstm", 2)
    n = 6
    game = make_game("ConnectFour-v0", n)
    env = SelfPlayVecEnv(game, None, learner_seat="random", latest_ratio=1.0, bots=[], seed=0)
    env.set_learner(policy)
    calls = []
    act = env.bank.act

    def recording_act(obs, ids, starts=None, deterministic=False, action_masks=None, active=None):
        calls.append((obs.copy(), np.ones(n, bool) if active is None else active.copy()))
        return act(obs, ids, starts, deterministic=deterministic, action_masks=action_masks, active=active)

    env.bank.act = recording_act
    env.reset()
    rng = np.random.default_rng(0)
    for _ in range(3):  # no game ends within 3 learner moves
        env.step(random_legal(rng, get_action_masks(env)))
    seats = env.seats()
    assert set(seats.tolist()) == {0, 1}
    # Seat-1 learners face an opponent that moved at reset: 4 opponent moves there, 3 elsewhere.
    moves = np.sum([a for _, a in calls], axis=0)
    np.testing.assert_array_equal(moves, np.where(seats == 1, 4, 3))
    h, c = env.bank.get_state(np.arange(n))
    for s in range(n):
        state, start = None, np.ones(1, bool)
        for obs, active in calls:
            if active[s]:
                _, state = policy.predict(obs[s][None], state, start, deterministic=True)
                start = np.zeros(1, bool)
        np.testing.assert_allclose(h[:, s], state[0][:, 0], atol=1e-5)
        np.testing.assert_allclose(c[:, s], state[1][:, 0], atol=1e-5)


def test_simultaneous_games_unchanged():
    game = make_game("Duel-v0", 2, max_steps=10)
    env = SelfPlayVecEnv(game, None, latest_ratio=0.0, seed=0)
    env.reset()
    assert not env.turn_based and not env.has_action_masks
    assert not is_masking_supported(env)
    masks = env.env_method("action_masks")
    assert len(masks) == 2 and all(m.all() and m.shape == (9 + 2 * 3,) for m in masks)


@pytest.mark.parametrize("seat", ["random", 1])
def test_reset_before_set_learner(seat):
    """SB3's learn() resets before callbacks set the learner: LATEST openings are avoided or played at random."""
    n = 16
    game = make_game("ConnectFour-v0", n)
    env = SelfPlayVecEnv(game, None, learner_seat=seat, latest_ratio=1.0, bots=[], seed=0)
    obs = env.reset()
    assert (game.to_play() == env.seats()).all()
    if seat == "random":
        assert (env.seats() == 0).all() and not obs.any()  # the learner opens every game
    else:
        assert (obs.reshape(n, -1).sum(axis=1) == 1).all()  # one opening piece, the random bot's
    env.set_learner(make_c4_policy("ff", 0))
    env.step(random_legal(np.random.default_rng(0), get_action_masks(env)))
    assert set(env.bank.slot_ids()) == {LATEST}  # the current weights play from their next move on
    assert (game.to_play() == env.seats()).all()


@pytest.mark.parametrize("algo", ["rppo", "ppo"])
def test_masked_selfplay_training_never_plays_illegal_moves(algo):
    """RecurrentPPO / PPO on ConnectFour-v0 through SelfPlayVecEnv: masked rollouts, no illegal move ever."""
    from sb3_selfplay import PPO, RecurrentPPO

    game = make_game("ConnectFour-v0", 8, illegal_move="raise")  # an illegal move would raise
    env = SelfPlayVecEnv(game, None, learner_seat="random", latest_ratio=0.5, bots=["random", "greedy"], seed=0)
    if algo == "rppo":
        model = RecurrentPPO("MlpLstmPolicy", env, n_steps=16, batch_size=64, n_epochs=1, seed=0,
                             policy_kwargs={"lstm_hidden_size": 8, "net_arch": [16]})
    else:
        model = PPO("HybridMlpPolicy", env, n_steps=16, batch_size=64, n_epochs=1, seed=0,
                    policy_kwargs={"net_arch": [16]})
    env.set_learner(model.policy)
    model.learn(256)
    results = env.pop_results()
    assert len(results) > 5 and {r["kind"] for r in results} >= {"bot", "latest"}
