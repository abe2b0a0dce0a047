"""ConnectFour-v0: rules against PettingZoo's connect_four_v3, the protocol checker, bots, drawing, views."""

from __future__ import annotations

import json

import gymnasium as gym
import numpy as np
import pytest

from sb3_selfplay.games import check_game, game_bots, make_bot, make_game, register_gym_envs
from sb3_selfplay.games.connect_four import ConnectFourGame, board_text, draw_connect_four, negamax_values
from sb3_selfplay.games.connect_four.bitboard import from_cells, has_four, playable, winning_cells
from sb3_selfplay.games.connect_four.bots import positions
from sb3_selfplay.games.drawing import Drawing, rasterize

connect_four_v3 = pytest.importorskip("pettingzoo.classic.connect_four_v3")


def random_legal(rng: np.random.Generator, masks: np.ndarray) -> np.ndarray:
    keys = rng.random(masks.shape)
    keys[~masks] = -1.0
    return keys.argmax(axis=-1)


def play(game: ConnectFourGame, moves: list[int], env: int = 0):
    """Play ``moves`` (columns) in env ``env`` only; return the last step's results."""
    out = None
    for col in moves:
        active = np.zeros(game.num_envs, bool)
        active[env] = True
        out = game.step(np.full((game.num_envs, 2), col), active=active)
    return out


def test_same_games_as_pettingzoo():
    """300 random games: observations, masks, turns, rewards and the outcome equal connect_four_v3's."""
    rng = np.random.default_rng(0)
    game = ConnectFourGame(1)
    obs = game.reset()
    for _ in range(300):
        env = connect_four_v3.env()
        env.reset()
        while True:
            agent = env.agent_selection
            assert game.to_play()[0] == env.possible_agents.index(agent)
            for k, name in enumerate(env.possible_agents):
                ob = env.observe(name)
                np.testing.assert_array_equal(ob["observation"], obs[0, k])
                np.testing.assert_array_equal(ob["action_mask"] != 0, game.action_masks()[0, k])
            col = int(rng.choice(np.flatnonzero(env.observe(agent)["action_mask"])))
            env.step(col)
            obs, rewards, terminated, _, infos = game.step(np.array([[col, col]]))
            expected = [env.rewards[a] for a in env.possible_agents]
            np.testing.assert_array_equal(rewards[0], expected)
            if all(env.terminations.values()):
                assert terminated[0]
                winner = None if expected[0] == expected[1] else int(np.argmax(expected))
                assert infos[0]["outcome"] == {"winner": winner}
                break
            assert not terminated[0]


def test_check_game_passes():
    counts = check_game(make_game("ConnectFour-v0", 16), n_steps=300, min_episodes=50)
    assert counts["wins_0"] > 0 and counts["wins_1"] > 0


def test_win_rewards_outcome_and_terminal_observation():
    game = ConnectFourGame(2)
    game.reset()
    # Seat 0 stacks column 3, seat 1 column 0: seat 0's fourth piece wins (vertical).
    obs, rewards, terminated, truncated, infos = play(game, [3, 0, 3, 0, 3, 0, 3], env=1)
    assert terminated.tolist() == [False, True] and not truncated.any()
    assert rewards[1].tolist() == [1.0, -1.0] and not rewards[0].any()
    info = infos[1]
    assert info["outcome"] == {"winner": 0}
    assert info["episode"] == {"r": [1.0, -1.0], "l": 7}
    assert info["metrics"]["moves"] == [4, 3] and info["metrics"]["illegal_moves"] == [0, 0]
    last = info["terminal_observation"]
    assert last.shape == (2, 6, 7, 2)
    assert last[0, 2:, 3, 0].tolist() == [1, 1, 1, 1] and last[1, 2:, 3, 1].tolist() == [1, 1, 1, 1]
    assert not obs[1].any() and game.to_play()[1] == 0  # restarted
    assert game.get_state(0)["step"] == 0


@pytest.mark.parametrize(
    "moves",
    [
        [0, 0, 1, 1, 2, 2, 3],  # horizontal
        [0, 1, 1, 2, 2, 3, 2, 3, 3, 6, 3],  # diagonal /
        [6, 5, 5, 4, 4, 3, 4, 3, 3, 0, 3],  # diagonal \
    ],
)
def test_every_direction_wins(moves):
    game = ConnectFourGame(1)
    game.reset()
    _, rewards, terminated, _, infos = play(game, moves)
    assert terminated[0] and infos[0]["outcome"] == {"winner": 0} and rewards[0].tolist() == [1.0, -1.0]


def test_illegal_move_loses_or_raises():
    game = ConnectFourGame(1)
    game.reset()
    play(game, [2, 2, 2, 2, 2, 2])  # column 2 full, seat 0 to move
    assert not game.action_masks()[0, 0, 2]
    _, rewards, terminated, _, infos = play(game, [2])
    assert terminated[0] and infos[0]["outcome"] == {"winner": 1}
    assert rewards[0].tolist() == [-1.0, 1.0] and infos[0]["metrics"]["illegal_moves"] == [1, 0]
    strict = ConnectFourGame(1, illegal_move="raise")
    strict.reset()
    play(strict, [2, 2, 2, 2, 2, 2])
    with pytest.raises(ValueError, match="illegal move"):
        play(strict, [2])
    with pytest.raises(ValueError, match="not in 0..6"):
        play(strict, [7])
    with pytest.raises(ValueError, match="unknown parameter"):
        ConnectFourGame(1, nope=1)
    with pytest.raises(ValueError, match="illegal_move"):
        ConnectFourGame(1, illegal_move="ignore")


def test_draw_on_a_full_board():
    game = ConnectFourGame(1)
    out = None
    rng = np.random.default_rng(1)
    for _ in range(500):  # random games until one fills the board without a four
        game.reset()
        while True:
            col = int(random_legal(rng, game.action_masks()[0, game.to_play()[0]]))
            out = game.step(np.full((1, 2), col))
            if out[2][0]:
                break
        if out[4][0]["outcome"]["winner"] is None:
            break
    assert out[4][0]["outcome"] == {"winner": None} and out[4][0]["episode"]["l"] == 42
    assert out[1][0].tolist() == [0.0, 0.0]


def test_bitboards_from_observations():
    rng = np.random.default_rng(3)
    game = ConnectFourGame(64)
    obs = game.reset()
    for _ in range(15):
        col = random_legal(rng, game.action_masks()[np.arange(64), game.to_play()])
        obs, *_ = game.step(np.stack([col, col], axis=1))
    mine, theirs = positions(obs[:, 0])
    np.testing.assert_array_equal(mine, game._boards[:, 0])
    np.testing.assert_array_equal(theirs, game._boards[:, 1])
    assert not has_four(from_cells(np.zeros((6, 7))))
    # An immediate win found by winning_cells & playable.
    b = from_cells(np.pad(np.ones((3, 1)), ((3, 0), (2, 4))))  # three in column 2, bottom rows
    wins = winning_cells(b, b) & playable(b)
    assert wins == np.uint64(1) << np.uint64(2 * 7 + 3)


def test_bots_are_registered_and_respect_masks():
    game = make_game("ConnectFour-v0", 32)
    assert list(game_bots(game)) == ["random", "greedy", "negamax", "negamax4"]
    rng = np.random.default_rng(0)
    obs = game.reset()
    bots = {name: make_bot(game, name, 32, seed=1) for name in ("random", "greedy", "negamax")}
    for _ in range(60):
        masks = game.action_masks()
        seat = game.to_play()
        for bot in bots.values():
            a = bot.act(obs[np.arange(32), seat], None, masks[np.arange(32), seat])
            assert masks[np.arange(32), seat, a].all()
        col = random_legal(rng, masks[np.arange(32), seat])
        obs, *_ = game.step(np.stack([col, col], axis=1))


def test_greedy_wins_then_blocks():
    game = ConnectFourGame(2)
    game.reset()
    play(game, [0, 6, 0, 6, 0], env=0)  # seat 1 to move: seat 0 has three in column 0, block it there
    play(game, [0, 6, 1, 6, 2, 5], env=1)  # seat 0 to move: three in a row on the bottom (0, 1, 2), win at 3
    bot = make_bot(game, "greedy", 2, seed=0)
    seat = game.to_play()
    masks = game.action_masks()[np.arange(2), seat]
    obs = game._obs[np.arange(2), seat]
    assert bot.act(obs, None, masks).tolist() == [0, 3]  # env 0: block column 0; env 1: win at column 3


def test_negamax_sees_two_moves_ahead():
    # Seat 0 has bottom pieces in columns 2 and 3 with both sides open: moving to 1 or 4 makes a
    # double threat (win next move whatever seat 1 does). Depth 3 finds it; random would not always.
    game = ConnectFourGame(1)
    game.reset()
    play(game, [2, 2, 3, 3])  # seat 0: (2,0),(3,0); seat 1: (2,1),(3,1); seat 0 to move
    mine, theirs = game._boards[:, 0], game._boards[:, 1]
    values = negamax_values(mine, theirs, depth=3)
    best = np.flatnonzero(values[0] == values[0].max()).tolist()
    assert set(best) <= {1, 4} and values[0].max() > 900
    bot = make_bot(game, "negamax", 1, seed=0, depth=3)
    assert bot.act(game._obs[:, 0], None, game.action_masks()[:, 0])[0] in (1, 4)
    with pytest.raises(ValueError, match="depth"):
        make_bot(game, "negamax", 1, depth=0)


def _reference_negamax(mine, theirs, depth):
    """Plain negamax without pruning, one position at a time (the batched search must agree)."""
    from sb3_selfplay.games.connect_four.bitboard import COLUMN_MASKS, FULL
    from sb3_selfplay.games.connect_four.bots import WIN_SCORE, _heuristic

    mask = mine | theirs
    play = playable(mask)
    if (winning_cells(mine, mask) & play)[0]:
        return WIN_SCORE + depth
    if mask[0] == FULL:
        return 0.0
    if depth == 0:
        return float(_heuristic(mine, theirs, mask)[0])
    best = -np.inf
    for c in range(7):
        mv = play & COLUMN_MASKS[c]
        if mv[0]:
            best = max(best, -_reference_negamax(theirs, mine | mv, depth - 1))
    return best


@pytest.mark.parametrize("depth", [1, 3, 4])
def test_negamax_agrees_with_plain_negamax(depth):
    """Same best value and same set of best columns as an unpruned scalar negamax, on random positions."""
    from sb3_selfplay.games.connect_four.bitboard import COLUMN_MASKS

    rng = np.random.default_rng(depth)
    game = ConnectFourGame(24)
    obs = game.reset()
    for _ in range(int(rng.integers(4, 14))):
        col = random_legal(rng, game.action_masks()[np.arange(24), game.to_play()])
        obs, *_ = game.step(np.stack([col, col], axis=1))
    seat = game.to_play()
    mine, theirs = positions(obs[np.arange(24), seat])
    values = negamax_values(mine, theirs, depth)
    for i in range(24) if depth < 4 else range(6):
        m, t = mine[i : i + 1], theirs[i : i + 1]
        mask = m | t
        play = playable(mask)
        ref = np.full(7, -np.inf)
        wins = [bool((winning_cells(m, mask) & play & COLUMN_MASKS[c])[0]) for c in range(7)]
        for c in range(7):
            mv = play & COLUMN_MASKS[c]
            if wins[c]:
                ref[c] = 1000.0 + depth
            elif mv[0] and not any(wins):
                ref[c] = -_reference_negamax(t, m | mv, depth - 1)
        assert values[i].max() == pytest.approx(ref.max())
        best = set(np.flatnonzero(np.isclose(values[i], values[i].max())).tolist())
        assert best == set(np.flatnonzero(np.isclose(ref, ref.max())).tolist())


def test_bot_strength_order():
    """greedy beats random, negamax (depth 2) beats greedy, negamax4 beats negamax (both seats, batched games)."""
    from sb3_selfplay.selfplay.tournament import run_tournament

    results = run_tournament({}, "ConnectFour-v0", games_per_pair=40, seed=0, bots=None)
    score = {}
    for a, b, s in results:
        score.setdefault((a, b), []).append(s)
    assert np.mean(score[("random", "greedy")]) < 0.2
    assert np.mean(score[("greedy", "negamax")]) < 0.2
    assert np.mean(score[("negamax", "negamax4")]) < 0.35  # 0.1 over 100 games


def test_state_drawing_and_text():
    game = ConnectFourGame(1, render_size=140)
    game.reset()
    play(game, [3, 3, 4])
    state = game.get_state(0)
    json.dumps(state)
    assert state["last_move"] == 4 and state["to_play"] == 1 and state["step"] == 3
    assert state["board"][5][3] == 1 and state["board"][4][3] == 2 and state["board"][5][4] == 1
    drawing = game.draw_state(state, None, highlight_seat=0)
    assert isinstance(drawing, Drawing)
    assert Drawing.from_dict(json.loads(json.dumps(drawing.to_dict()))) == drawing
    image = game.render(0)
    assert image.dtype == np.uint8 and image.shape[1] == 140 and image.shape[2] == 3
    np.testing.assert_array_equal(image, rasterize(draw_connect_four(state, 140)))
    from sb3_selfplay.replays.views import game_drawer

    with game_drawer("ConnectFour-v0") as draw:  # what replays (HTML player, GIF) draw frames with
        assert draw is not None and isinstance(draw(state, None, 1), Drawing)
    text = board_text(state)
    lines = text.splitlines()
    assert lines[5] == "| .  .  .  X [X] .  . |"
    assert lines[4] == "| .  .  .  O  .  .  . |"
    assert lines[6].split() == [str(c) for c in range(7)]
    assert lines[7] == "yellow (O) to play"


def test_terminal_state_for_replays():
    game = ConnectFourGame(1)
    game.record_terminal_state = True
    game.reset()
    _, _, terminated, _, infos = play(game, [3, 0, 3, 0, 3, 0, 3])
    assert terminated[0] and infos[0]["terminal_state"]["winner"] == 0
    assert board_text(infos[0]["terminal_state"]).endswith("red (X) wins")


def test_gym_view_against_a_bot():
    register_gym_envs()
    env = gym.make("ConnectFour-v0", opponent="random", learner_seat=1)
    obs, info = env.reset(seed=0)
    assert info["seat"] == 1 and obs.sum() == 1  # the bot moved first
    rng = np.random.default_rng(0)
    outcomes = []
    for _ in range(200):
        masks = env.unwrapped.action_masks()
        obs, reward, terminated, truncated, info = env.step(int(random_legal(rng, masks)))
        assert obs.shape == (6, 7, 2) and not truncated
        if terminated:
            winner = info["outcome"]["winner"]
            assert reward == (1.0 if winner == 1 else -1.0 if winner == 0 else 0.0)
            assert info["is_success"] == (winner == 1)
            outcomes.append(winner)
            obs, info = env.reset()
    assert outcomes
    from gymnasium.utils.env_checker import check_env

    check_env(gym.make("ConnectFour-v0", opponent="greedy").unwrapped, skip_render_check=True)


def test_pettingzoo_aec_view_passes_api_test():
    from pettingzoo.test import api_test

    from sb3_selfplay.games.connect_four import env

    api_test(env(), num_cycles=200)


def test_aec_view_plays_like_connect_four_v3():
    from sb3_selfplay.games.connect_four import env as c4_env

    rng = np.random.default_rng(5)
    for _ in range(20):
        ours, ref = c4_env(), connect_four_v3.env()
        ours.reset(seed=0)
        ref.reset(seed=0)
        for agent in ours.agent_iter():
            obs, reward, term, trunc, _ = ours.last()
            ref_obs, ref_reward, ref_term, _, _ = ref.last()
            assert agent == ref.agent_selection and reward == ref_reward and term == ref_term
            np.testing.assert_array_equal(obs["observation"], ref_obs["observation"])
            np.testing.assert_array_equal(obs["action_mask"], ref_obs["action_mask"])
            action = None if term or trunc else int(rng.choice(np.flatnonzero(obs["action_mask"])))
            ours.step(action)
            ref.step(action)
