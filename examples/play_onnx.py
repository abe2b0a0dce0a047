"""Play an agent exported to ONNX against a game's bot, with only numpy and onnxruntime on the agent's side.

    python zoo_scripts/export.py logs/rppo/Duel-v0_1 --onnx agent.onnx
    python examples/play_onnx.py agent.onnx --opponent hunter --games 20
    python examples/play_onnx.py c4.onnx --env ConnectFour-v0 --opponent greedy --games 20

The agent is this process: it imports numpy, onnxruntime and the standard library, nothing else
(what a game or a service would ship), reads the sidecar ``agent.onnx.json`` and carries the
recurrent state itself: zeros at first, the graph's next state fed back at every step, and
``episode_start = 1`` on the first step of each game (the graph zeroes the state there). When
the game has legal-action masks they go in as ``action_masks``. Observations go in raw: the
run's VecNormalize statistics are inside the graph.

The game is a child process (this file with ``--serve``), which imports sb3-selfplay for the
game and its bot; the two exchange plain arrays over pipes. The last line says whether torch
was ever imported by the agent's process.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import numpy as np
import onnxruntime as ort

Arrays = dict[str, np.ndarray]


class OnnxAgent:
    """
    An exported agent for ``batch`` games at once: the ONNX session, its sidecar and the carried state.

    :param path: the ``.onnx`` file (its sidecar is ``<path>.json``)
    :param batch: how many games it plays at once (the graph takes any batch size)
    """

    def __init__(self, path: str | Path, batch: int) -> None:
        self.sidecar = json.loads(Path(str(path) + ".json").read_text())
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.inputs = {spec["name"]: spec for spec in self.sidecar["inputs"]}
        self.outputs = [spec["name"] for spec in self.sidecar["outputs"]]
        self.state = {spec["input"]: np.zeros([batch, *spec["shape"][1:]], dtype=np.float32)
                      for spec in self.sidecar["state"]}

    def act(self, obs: np.ndarray, episode_start: np.ndarray, masks: np.ndarray | None = None) -> np.ndarray:
        """The deterministic actions for a batch of observations; the state advances by one step."""
        feed: dict[str, np.ndarray] = {"obs": np.asarray(obs, dtype=self.inputs["obs"]["dtype"])}
        if "episode_start" in self.inputs:
            feed["episode_start"] = np.asarray(episode_start, dtype=np.float32)
        if "action_masks" in self.inputs:
            if masks is None:
                masks = np.ones([len(obs), *self.inputs["action_masks"]["shape"][1:]], dtype=bool)
            feed["action_masks"] = np.asarray(masks, dtype=bool)
        feed.update(self.state)
        out = dict(zip(self.outputs, self.session.run(None, feed), strict=True))
        self.state = {spec["input"]: out[spec["output"]] for spec in self.sidecar["state"]}
        return out["action"]


# ---------------------------------------------------------------------------- arrays over pipes
def send(stream: IO[bytes], header: dict[str, Any], arrays: Arrays | None = None) -> None:
    """One message: a JSON header line naming the arrays (dtype, shape), then their raw bytes."""
    arrays = arrays or {}
    header = {**header, "arrays": [[name, str(a.dtype), list(a.shape)] for name, a in arrays.items()]}
    stream.write(json.dumps(header).encode() + b"\n")
    for a in arrays.values():
        stream.write(np.ascontiguousarray(a).tobytes())
    stream.flush()


def receive(stream: IO[bytes]) -> tuple[dict[str, Any], Arrays]:
    line = stream.readline()
    if not line:
        raise EOFError("the other process closed the pipe")
    header = json.loads(line)
    arrays = {}
    for name, dtype, shape in header["arrays"]:
        size = int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
        arrays[name] = np.frombuffer(stream.read(size), dtype=dtype).reshape(shape)
    return header, arrays


# ---------------------------------------------------------------------------- the game side
Policy = Callable[[np.ndarray, np.ndarray, "np.ndarray | None"], np.ndarray]


def play_games(env_id: str, opponent: str, games: int, n_envs: int, seed: int, policy: Policy) -> dict[str, int]:
    """
    ``games`` games of ``env_id`` (its gymnasium view: one agent against the bot ``opponent``),
    ``n_envs`` at a time; ``policy(obs, episode_start, masks)`` gives the agent's actions.
    Imports sb3-selfplay (the game): call it in the game's process, not the agent's.

    :return: wins, draws and losses of the agent
    """
    import gymnasium as gym

    import sb3_selfplay  # noqa: F401 - registers the games' gymnasium views

    envs = [gym.make(env_id, opponent=opponent) for _ in range(n_envs)]
    obs = np.stack([env.reset(seed=seed + i)[0] for i, env in enumerate(envs)])
    masked = hasattr(envs[0].unwrapped, "action_masks")
    starts = np.ones(n_envs, dtype=bool)
    results = {"win": 0, "draw": 0, "loss": 0}
    while sum(results.values()) < games:
        masks = np.stack([env.unwrapped.action_masks() for env in envs]) if masked else None
        actions = policy(obs, starts, masks)
        for i, env in enumerate(envs):
            obs_i, _, terminated, truncated, info = env.step(actions[i])
            starts[i] = terminated or truncated
            if starts[i]:
                if sum(results.values()) < games:
                    winner, seat = info["outcome"]["winner"], info.get("seat", 0)
                    results["draw" if winner is None else "win" if winner == seat else "loss"] += 1
                obs_i, _ = env.reset()
            obs[i] = obs_i
    for env in envs:
        env.close()
    return results


def serve(args: argparse.Namespace) -> int:
    """The game process: observations out, actions in, the results at the end."""
    inp, out = sys.stdin.buffer, sys.stdout.buffer

    def remote(obs: np.ndarray, starts: np.ndarray, masks: np.ndarray | None) -> np.ndarray:
        arrays = {"obs": obs, "episode_start": starts}
        if masks is not None:
            arrays["action_masks"] = masks
        send(out, {"done": False}, arrays)
        return receive(inp)[1]["action"]

    results = play_games(args.env, args.opponent, args.games, args.envs, args.seed, remote)
    send(out, {"done": True, "results": results})
    return 0


# ---------------------------------------------------------------------------- the agent side
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("agent", nargs="?", help="the exported .onnx file (sidecar beside it)")
    parser.add_argument("--env", default=None, help="game id (default: the one the sidecar names)")
    parser.add_argument("--opponent", default=None, help="the game's bot (default: hunter in Duel, greedy else)")
    parser.add_argument("--games", type=int, default=20)
    parser.add_argument("--envs", type=int, default=8, help="games played at once (the agent's batch size)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--log", metavar="NPZ", default=None,
                        help="save what the agent saw and did (obs, episode_start, action_masks, action per step)")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)  # the game process
    args = parser.parse_args(argv)
    if args.serve:
        return serve(args)
    if args.agent is None:
        parser.error("the exported .onnx file is required")
    agent = OnnxAgent(args.agent, batch=args.envs)
    env_id = args.env or (agent.sidecar.get("source") or {}).get("env_id")
    if env_id is None:
        parser.error("--env: the sidecar does not name the game")
    opponent = args.opponent or ("hunter" if env_id.startswith("Duel") else "greedy")
    game = subprocess.Popen(
        [sys.executable, __file__, "--serve", "--env", env_id, "--opponent", opponent, "--games", str(args.games),
         "--envs", str(args.envs), "--seed", str(args.seed)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    steps = 0
    log: dict[str, list[np.ndarray]] = {}
    try:
        while True:
            header, arrays = receive(game.stdout)
            if header["done"]:
                results = header["results"]
                break
            action = agent.act(arrays["obs"], arrays["episode_start"], arrays.get("action_masks"))
            send(game.stdin, {}, {"action": action})
            steps += 1
            if args.log:
                for name, value in {**arrays, "action": action}.items():
                    log.setdefault(name, []).append(value)
    finally:
        game.stdin.close()
        game.wait()
    if args.log:
        np.savez(args.log, **{name: np.stack(values) for name, values in log.items()})
    print(f"{args.games} games of {env_id} vs {opponent}: {results['win']} wins / {results['draw']} draws / "
          f"{results['loss']} losses ({steps} agent steps at batch {args.envs})")
    print(f"agent process imported torch: {'yes' if 'torch' in sys.modules else 'no'}; "
          f"onnxruntime {ort.__version__}, numpy {np.__version__}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
