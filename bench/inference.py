"""Inference benchmark: one agent acting, ``model.predict`` vs the exported ONNX (onnxruntime) and TorchScript files.

The agent is a RecurrentPPO Duel-v0 policy with the shipped hyperparameters' shape (LSTM 128,
separate critic LSTM, hybrid head) or ``--model``'s zip. Each method acts on a batch of 1 (one
agent in one env) and of 1,024 envs, carrying its recurrent state from call to call as a game
would (``model.predict``: the state it returns; ONNX and TorchScript: their next-state outputs
fed back), with ``episode_start`` and observations from numpy. Env stepping is not timed: only
the agent's side. Everything runs in this one process on one thread (torch and onnxruntime),
the methods interleaved round by round (A B C D A B C D ...); the table gives the median over
rounds of agent-steps per wall second and per CPU second of the process, with the min-max
spread. ``eager`` is the exported step itself run by PyTorch (no SB3 wrapper), for scale.
The exported graphs compute the critic too (value and critic state) unless actor-only
(``onnxruntime_actor``, ``--actor-only``); ``model.predict`` runs only the actor.

    python bench/inference.py                          # ~1 min
    python bench/inference.py --rounds 9 --seconds 0.5 --model logs/rppo/Duel-v0_1/Duel-v0.zip

Target (issue 15): onnxruntime at batch 1 >= 5x ``model.predict``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import RESULTS_DIR, environment_info, fmt, markdown_table, write_json  # noqa: E402

METHODS = ("predict", "onnxruntime", "onnxruntime_actor", "torchscript", "eager")
Step = Callable[[], None]


def make_model(path: str | None) -> Any:
    from sb3_selfplay import RecurrentPPO

    if path is not None:
        return RecurrentPPO.load(path, device="cpu")
    return RecurrentPPO("MlpLstmPolicy", "Duel-v0", n_steps=16, batch_size=16, device="cpu", seed=0,
                        policy_kwargs=dict(lstm_hidden_size=128, n_lstm_layers=1, enable_critic_lstm=True))


def make_steps(model: Any, folder: Path, batch: int) -> dict[str, Step]:
    """One closure per method that performs one acting step of ``batch`` agents, carrying its state."""
    import numpy as np
    import onnxruntime as ort
    import torch as th

    from sb3_selfplay.export import export_policy, make_acting_step

    onnx_path, ts_path, actor_path = folder / "agent.onnx", folder / "agent.pt", folder / "actor.onnx"
    if not onnx_path.exists():
        export_policy(model, onnx_path, ts_path)
        export_policy(model, actor_path, value=False)
    rng = np.random.default_rng(0)
    space = model.observation_space
    obs = rng.uniform(space.low, space.high, size=(batch, *space.shape)).astype(np.float32)
    starts = np.zeros(batch, dtype=bool)
    steps: dict[str, Step] = {}

    predict_state: list[Any] = [None]

    def predict() -> None:
        _, predict_state[0] = model.predict(obs, state=predict_state[0], episode_start=starts, deterministic=True)

    steps["predict"] = predict

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    step_module = make_acting_step(model.policy)
    specs = step_module.state
    out_names = [s.name for s in step_module.outputs]
    index = {s.output: out_names.index(s.output) for s in specs}

    def onnx_step(path: Path, value: bool) -> Step:
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        module = step_module if value else make_acting_step(model.policy, value=False)
        names = [s.name for s in module.outputs]
        feed: dict[str, Any] = {"obs": obs, "episode_start": starts.astype(np.float32)}
        feed.update({s.input: np.zeros((batch, *s.shape[1:]), np.float32) for s in module.state})
        pairs = [(s.input, names.index(s.output)) for s in module.state]

        def run() -> None:
            out = session.run(None, feed)
            for name, i in pairs:
                feed[name] = out[i]

        return run

    steps["onnxruntime"] = onnx_step(onnx_path, value=True)
    steps["onnxruntime_actor"] = onnx_step(actor_path, value=False)

    def torch_step(module: Any) -> Step:
        state = [th.zeros((batch, *s.shape[1:])) for s in specs]

        def run() -> None:
            with th.inference_mode():
                out = module(th.from_numpy(obs), th.from_numpy(starts).float(), *state)
                _ = out[0].numpy()
                state[:] = [out[index[s.output]] for s in specs]

        return run

    steps["torchscript"] = torch_step(th.jit.load(str(ts_path)))
    steps["eager"] = torch_step(step_module)
    return steps


def time_block(step: Step, seconds: float) -> tuple[float, float, int]:
    """Call ``step`` for about ``seconds`` of wall time: (wall, CPU seconds of the process, calls)."""
    step()  # warm
    calls = 0
    wall0, cpu0 = time.perf_counter(), time.process_time()
    while True:
        for _ in range(8):
            step()
        calls += 8
        wall = time.perf_counter() - wall0
        if wall >= seconds:
            return wall, time.process_time() - cpu0, calls


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="a RecurrentPPO zip (default: an untrained Duel-v0 policy)")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 1024])
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (the median is reported)")
    parser.add_argument("--seconds", type=float, default=0.4, help="wall seconds per method per round")
    parser.add_argument("--out", default=str(RESULTS_DIR / "inference.json"))
    args = parser.parse_args()

    import torch as th

    th.set_num_threads(1)
    model = make_model(args.model)
    results: dict[str, Any] = {"environment": environment_info(), "args": vars(args), "batches": {}}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for batch in args.batches:
            steps = make_steps(model, Path(tmp), batch)
            samples: dict[str, list[tuple[float, float]]] = {m: [] for m in METHODS}
            for _ in range(args.rounds):
                for method in METHODS:  # interleaved: A B C D A B C D ...
                    wall, cpu, calls = time_block(steps[method], args.seconds)
                    samples[method].append((batch * calls / wall, batch * calls / max(cpu, 1e-9)))
            summary = {}
            for method in METHODS:
                walls = [w for w, _ in samples[method]]
                cpus = [c for _, c in samples[method]]
                summary[method] = {"wall_steps_per_s": statistics.median(walls), "wall_min": min(walls),
                                   "wall_max": max(walls), "cpu_steps_per_s": statistics.median(cpus),
                                   "cpu_min": min(cpus), "cpu_max": max(cpus), "samples": samples[method]}
            base = summary["predict"]["wall_steps_per_s"]
            base_cpu = summary["predict"]["cpu_steps_per_s"]
            for method in METHODS:
                s = summary[method]
                rows.append([batch, method, f"{fmt(s['wall_steps_per_s'], ',.0f')} "
                             f"({fmt(s['wall_min'], ',.0f')}-{fmt(s['wall_max'], ',.0f')})",
                             f"{fmt(s['cpu_steps_per_s'], ',.0f')} ({fmt(s['cpu_min'], ',.0f')}-"
                             f"{fmt(s['cpu_max'], ',.0f')})",
                             f"{s['wall_steps_per_s'] / base:.1f}x", f"{s['cpu_steps_per_s'] / base_cpu:.1f}x"])
            results["batches"][str(batch)] = summary
    table = markdown_table(["batch", "method", "agent-steps/s wall (min-max)", "agent-steps per CPU-s (min-max)",
                            "vs predict (wall)", "vs predict (CPU)"], rows)
    print(table)
    if "1" in results["batches"]:
        b1 = results["batches"]["1"]
        ratio = b1["onnxruntime"]["cpu_steps_per_s"] / b1["predict"]["cpu_steps_per_s"]
        results["onnx_vs_predict_batch1_cpu"] = ratio
        print(f"\nonnxruntime at batch 1: {ratio:.1f}x model.predict per CPU-second (target >= 5x)")
    results["table"] = table
    print(f"Wrote {write_json(args.out, results)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
