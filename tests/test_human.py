"""``enjoy --human``: a person plays the agent in the terminal (input fed through stdin)."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from sb3_selfplay.games import make_game
from sb3_selfplay.zoo.commands.human import play_human

ROOT = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}


class FirstLegal:
    """A stand-in agent: plays the lowest legal column; records what it was given."""

    def __init__(self) -> None:
        self.calls: list[tuple[np.ndarray, bool, np.ndarray | None]] = []

    def predict(self, observation, state=None, episode_start=None, deterministic=False, action_masks=None):
        masks = None if action_masks is None else action_masks.copy()
        self.calls.append((observation.copy(), bool(episode_start[0]), masks))
        return np.array([int(np.flatnonzero(action_masks[0])[0])]), ("state", len(self.calls))


def run(moves: str, **kwargs) -> tuple[list[str], str, FirstLegal]:
    agent = FirstLegal()
    out = io.StringIO()
    results = play_human(agent, make_game("ConnectFour-v0", 1), stdin=io.StringIO(moves), stdout=out, **kwargs)
    return results, out.getvalue(), agent


def test_a_game_with_malformed_and_illegal_entries():
    # You (X, first) and the agent both fill column 0; then column 0 is refused; four in column 6 win.
    results, text, agent = run("abc\n9\n0\n0\n0\n0\n6\n6\n6\n6\n", human_seat="0")
    assert results == ["win"]
    assert "'abc' is not a column: type a number from 0 to 6, or q to quit." in text
    assert "column 9 does not exist: type a number from 0 to 6." in text
    assert "illegal move: column 0 cannot be played now; legal: 1, 2, 3, 4, 5, 6." in text
    assert "The agent plays column 0." in text and "The agent plays column 1." in text
    assert "red (X) wins" in text and text.rstrip().endswith("You: 1 wins, 0 draws, 0 losses.")
    empty = "\n".join(["| .  .  .  .  .  .  . |"] * 6)
    assert text.count(empty) == 1  # the empty board is drawn once, at the start
    # The agent: masks for its turn, its state carried (episode start only at its first move), egocentric boards.
    assert [start for _, start, _ in agent.calls] == [True] + [False] * (len(agent.calls) - 1)
    assert all(m is not None and m.shape == (1, 7) for _, _, m in agent.calls)
    first_obs = agent.calls[0][0]
    assert first_obs.shape == (1, 6, 7, 2) and first_obs[0, 5, 0, 1] == 1  # your piece is "theirs" for the agent
    assert not agent.calls[-1][2][0, 0]  # column 0 full: masked


def test_the_agent_moves_first_when_you_sit_in_seat_1():
    results, text, agent = run("q\n", human_seat="1")
    assert results == [] and "you play O (yellow), the agent X (red, moves first)" in text
    assert "The agent plays column 0." in text and text.rstrip().endswith("Bye.")
    assert len(agent.calls) == 1


def test_end_of_input_quits_and_seats_alternate():
    results, text, _ = run("", human_seat="alternate")
    assert results == [] and "End of input: quitting." in text
    # Two games: seat 0 then seat 1 ("y" to play again); in the second the agent moves first and
    # stacks column 0 while you spread out: it wins on its fourth move.
    moves = "6\n6\n6\n6\ny\n" + "6\n5\n4\n"
    results, text, _ = run(moves, games=2, human_seat="alternate")
    assert results == ["win", "loss"] and "Game 2: you play O (yellow)" in text
    assert "The agent wins." in text and text.rstrip().endswith("You: 1 wins, 0 draws, 1 losses.")


def test_only_turn_based_games():
    with pytest.raises(ValueError, match="turn-based"):
        play_human(FirstLegal(), make_game("Duel-v0", 1), stdin=io.StringIO(""), stdout=io.StringIO())


def test_enjoy_human_command(tmp_path):
    """train a tiny ConnectFour-v0 agent, then ``enjoy --human`` with moves on stdin."""
    train = subprocess.run(
        [sys.executable, "-m", "sb3_selfplay", "train", "--algo", "ppo", "--env", "ConnectFour-v0", "-n", "64",
         "--eval-freq", "-1", "--seed", "0", "--verbose", "0", "--num-threads", "1",
         "-params", "selfplay:{save_steps: 64, eval_games: 2}", "n_envs:4", "n_steps:16", "batch_size:32",
         "policy_kwargs.net_arch:[8]"],
        cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=240, check=False,
    )
    assert train.returncode == 0, train.stderr
    out = subprocess.run(
        [sys.executable, "-m", "sb3_selfplay", "enjoy", "--algo", "ppo", "--env", "ConnectFour-v0", "--human",
         "--human-seat", "0", "--num-threads", "1"],
        cwd=tmp_path, env=ENV, input="3\nx\n3\n3\n3\nq\n", capture_output=True, text=True, timeout=240, check=False,
    )
    assert out.returncode == 0, out.stderr
    assert "Game 1: you play X (red, moves first)" in out.stdout
    assert "'x' is not a column" in out.stdout and "The agent plays column" in out.stdout
    assert "  0  1  2  3  4  5  6" in out.stdout
