"""``enjoy --human``: a person plays a trained agent in the terminal (turn-based games).

    sb3-selfplay enjoy --algo rppo --env ConnectFour-v0 --human
    sb3-selfplay enjoy --algo rppo --env ConnectFour-v0 --human --human-seat 1 --deterministic

The board is drawn after every move (the game's ``state_text``, else its state as JSON); the
person types an action number (a column in Connect Four) or ``q`` to quit. A malformed entry or
an illegal move gets a one-line message naming the legal moves, and the prompt comes back. The
agent keeps its recurrent state over the game, advancing it on its own turns only, and plays
only legal moves (its masked ``predict``). After each game: the result, then "play again?"
until ``--games`` games or ``q``.
"""

from __future__ import annotations

import argparse
import inspect
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

import numpy as np
from gymnasium import spaces

from sb3_selfplay.games.base import TwoPlayerGame

__all__ = ["HUMAN_SEATS", "add_human_arguments", "enjoy_human", "play_human"]

#: ``--human-seat`` choices: a seat, ``alternate`` (seat 0 first, then swapping) or ``random``.
HUMAN_SEATS = ("0", "1", "alternate", "random")
_QUIT = ("q", "quit", "exit")


def add_human_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--human`` and ``--human-seat`` to ``enjoy``'s parser."""
    parser.add_argument("--human", action="store_true",
                        help="play the agent yourself in the terminal (turn-based games, e.g. ConnectFour-v0)")
    parser.add_argument("--human-seat", choices=HUMAN_SEATS, default="alternate",
                        help="your seat with --human: 0 (move first), 1, alternate (default) or random")


def _state_text(game: TwoPlayerGame, state: dict[str, Any]) -> str:
    text = getattr(game, "state_text", None)
    return text(state) if callable(text) else json.dumps(state)


def _seat_name(game: TwoPlayerGame, seat: int) -> str:
    names = getattr(game, "seat_names", None)
    return str(names[seat]) if names else f"seat {seat}"


def _ask(
    game: TwoPlayerGame, legal: np.ndarray, read: Callable[[], str], say: Callable[[str], None]
) -> int | None:
    """The person's move: a legal action number, or None to quit (``q`` or the end of the input)."""
    n = int(game.action_space.n)
    what = getattr(game, "action_name", "move")
    choices = ", ".join(map(str, np.flatnonzero(legal).tolist()))
    while True:
        say(f"Your move ({what} {choices}; q quits): ")
        line = read()
        if line == "":
            say("\nEnd of input: quitting.\n")
            return None
        text = line.strip()
        if text.lower() in _QUIT:
            return None
        try:
            action = int(text)
        except ValueError:
            say(f"{text!r} is not a {what}: type a number from 0 to {n - 1}, or q to quit.\n")
            continue
        if not 0 <= action < n:
            say(f"{what} {action} does not exist: type a number from 0 to {n - 1}.\n")
        elif not legal[action]:
            say(f"illegal move: {what} {action} cannot be played now; legal: {choices}.\n")
        else:
            return action


def _takes_masks(fn: Any) -> bool:
    try:
        return "action_masks" in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


def _masked_predict(model: Any) -> tuple[Callable[..., Any], bool]:
    """SB3's ``predict`` of the model, or of its policy when only the policy takes ``action_masks``."""
    if _takes_masks(model.predict):
        return model.predict, True
    policy = getattr(model, "policy", None)
    if policy is not None and _takes_masks(getattr(policy, "predict", None)):
        return policy.predict, True
    return model.predict, False


def _agent_move(
    predict: Callable[..., Any], obs: np.ndarray, legal: np.ndarray, state: Any, start: bool, deterministic: bool,
    masked: bool,
) -> tuple[int, Any]:
    kwargs = {"action_masks": legal[None]} if masked else {}
    action, state = predict(obs[None], state, np.array([start]), deterministic, **kwargs)
    return int(np.asarray(action).reshape(-1)[0]), state


def play_human(
    model: Any,
    game: TwoPlayerGame,
    games: int = 1,
    human_seat: str = "alternate",
    deterministic: bool = False,
    seed: int = 0,
    stdin: TextIO | None = None,
    stdout: TextIO | None = None,
    obs_transform: Callable[[np.ndarray], np.ndarray] | None = None,
) -> list[str]:
    """
    Games between a person (typing in ``stdin``) and ``model`` in a one-env turn-based game.

    :param model: The agent (SB3's ``predict``; masks passed when it, or its policy, takes ``action_masks``).
    :param game: A turn-based game with ``num_envs == 1`` and ``Discrete`` actions.
    :param games: Most games to play (the person may stop earlier).
    :param human_seat: One of :data:`HUMAN_SEATS`.
    :param deterministic: The agent plays its most likely move.
    :param seed: Seed of the game and of the ``random`` seat.
    :param stdin: Where the person's moves come from (default ``sys.stdin``).
    :param stdout: Where boards and messages go (default ``sys.stdout``).
    :param obs_transform: Applied to the agent's observations (``VecNormalize.normalize_obs``).
    :return: The person's result of each finished game: ``"win"``, ``"loss"`` or ``"draw"``.
    """
    import sys

    stdin = stdin or sys.stdin
    stdout = stdout or sys.stdout
    if not getattr(game, "turn_based", False) or not isinstance(game.action_space, spaces.Discrete):
        raise ValueError(f"--human needs a turn-based game with Discrete actions (e.g. ConnectFour-v0), got {game!r}")
    if game.num_envs != 1:
        raise ValueError(f"play_human needs a game with one env, got {game.num_envs}")
    if human_seat not in HUMAN_SEATS:
        raise ValueError(f"human_seat must be one of {', '.join(HUMAN_SEATS)}, got {human_seat!r}")

    def say(text: str) -> None:
        stdout.write(text)
        stdout.flush()

    predict, masked = _masked_predict(model)
    if hasattr(game, "record_terminal_state"):
        game.record_terminal_state = True
    rng = np.random.default_rng(seed)
    results: list[str] = []
    obs = game.reset(seed=seed)
    for k in range(games):
        you = {"0": 0, "1": 1, "alternate": k % 2, "random": int(rng.integers(0, 2))}[human_seat]
        say(f"\nGame {k + 1}: you play {_seat_name(game, you)}, the agent {_seat_name(game, 1 - you)}.\n")
        state, start = None, True
        while True:
            say(_state_text(game, game.get_state(0)) + "\n")
            mover = int(game.to_play()[0])
            legal = np.asarray(game.action_masks(), dtype=bool)[0, mover]
            if mover == you:
                action = _ask(game, legal, stdin.readline, say)
                if action is None:
                    say("Bye.\n")
                    return results
            else:
                agent_obs = obs[0, mover] if obs_transform is None else obs_transform(obs[:, mover])[0]
                action, state = _agent_move(predict, agent_obs, legal, state, start, deterministic, masked)
                start = False
                note = "" if legal[action] else " (illegal: it loses by the game's rule)"
                say(f"The agent plays {getattr(game, 'action_name', 'move')} {action}{note}.\n")
            obs, _, terminated, truncated, infos = game.step(np.full((1, 2), action, dtype=np.int64))
            if terminated[0] or truncated[0]:
                break
        info = infos[0]
        final = info.get("terminal_state")
        if final is not None:
            say(_state_text(game, final) + "\n")
        winner = info["outcome"]["winner"]
        result = "draw" if winner is None else ("win" if winner == you else "loss")
        results.append(result)
        say({"win": "You win!", "loss": "The agent wins.", "draw": "Draw."}[result] + "\n")
        if k + 1 < games:
            say("Play again? [y/N] ")
            if stdin.readline().strip().lower() not in ("y", "yes"):
                break
    wins, losses = results.count("win"), results.count("loss")
    say(f"You: {wins} wins, {results.count('draw')} draws, {losses} losses.\n")
    return results


def enjoy_human(args: argparse.Namespace, settings: Any, model: Any, run_dir: Path) -> None:
    """``enjoy --human``: the run's game with one env, the person against ``model``."""
    from sb3_selfplay.zoo.factories import make_game
    from sb3_selfplay.zoo.run_folder import load_obs_normalizer
    from sb3_selfplay.zoo.settings import ConfigError

    if not settings.is_selfplay:
        raise ConfigError(f"--human: {settings.env_id} is not a two-player game")
    game = make_game(settings, 1)
    try:
        stats = run_dir / settings.env_id / "vecnormalize.pkl"
        normalizer = load_obs_normalizer(stats, getattr(args, "trust_pickle", False))
        play_human(model, game, games=args.games, human_seat=args.human_seat, deterministic=args.deterministic,
                   seed=args.seed, obs_transform=normalizer)
    except ValueError as exc:
        raise ConfigError(" ".join(str(exc).split())) from None
    finally:
        game.close()
