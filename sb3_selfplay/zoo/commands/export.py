"""Export a trained agent as ONNX (and TorchScript) for a game or a service without Python or PyTorch.

    sb3-selfplay export logs/rppo/Duel-v0_1 --onnx agent.onnx
    sb3-selfplay export logs/rppo/Duel-v0_1/best_model.zip --onnx agent.onnx --torchscript agent.pt
    sb3-selfplay export --algo rppo --env Duel-v0 -f logs --exp-id 0 --load-best --onnx agent.onnx

(``python zoo_scripts/export.py ...`` and ``python -m sb3_selfplay export ...`` are the same.)

MODEL_OR_RUN is a model ``.zip`` or a run folder (``logs/<algo>/<env>_<N>``); without it the
run is found as ``enjoy`` finds it (``--algo``, ``--env``, ``-f``, ``--exp-id``). The graph is
one deterministic acting step: inputs ``obs`` (batch dimension dynamic), ``episode_start``, the
recurrent state (``h_actor``, ``c_actor`` for an LSTM, ``h_critic``/``c_critic`` with a critic
core; each ``(batch, n_layers, hidden)``) and ``action_masks`` for a game or env with masks;
outputs ``action``, ``logits`` (``mean`` for Box actions), ``value`` and the next state
(``next_h_actor``, ...); ``--actor-only`` leaves the critic out (no ``value``, no critic
state). The run's ``VecNormalize`` statistics are folded in. A sidecar
``<file>.json`` records the spaces, inputs, outputs, state shapes and action layout.

Trust: the model zip is read without unpickling (``policy.pth`` with ``weights_only``, the
spaces from the env) and ``vecnormalize.pkl`` with an allow-list unpickler (numpy arrays, SB3's
``VecNormalize``); ``--trust-pickle`` uses SB3's loader and plain ``pickle`` instead, for files
you wrote yourself. Errors (bad flag, run folder, model file or a policy part that cannot be
exported) exit with status 2 and one line.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym
import torch as th

from sb3_selfplay.export import DEFAULT_OPSET, ExportError, export_policy, read_vecnormalize, sidecar_path
from sb3_selfplay.games import GAME_REGISTRY, TwoPlayerGame
from sb3_selfplay.games import make_game as build_game
from sb3_selfplay.masks import is_masking_supported
from sb3_selfplay.selfplay.model_files import ModelFileError, load_play_model, read_model_file
from sb3_selfplay.zoo.commands.common import add_gym_packages, import_gym_packages
from sb3_selfplay.zoo.factories import make_env, make_game
from sb3_selfplay.zoo.resolve import ALGOS
from sb3_selfplay.zoo.run_folder import find_trained_agent, latest_run_dir, run_model_path, run_settings
from sb3_selfplay.zoo.settings import ConfigError

_RUN_NAME = re.compile(r"^(?P<env>.+)_(?P<n>\d+)$")
_ALGO_NAMES = {cls.__name__: name for name, cls in ALGOS.items()}


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    """The flags of ``export`` (``enjoy``'s names for finding the run)."""
    p = argparse.ArgumentParser(prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model_or_run", nargs="?", default=None, metavar="MODEL_OR_RUN",
                   help="model .zip or run folder (default: the run of --algo/--env/-f/--exp-id)")
    p.add_argument("--onnx", metavar="OUT.onnx", default=None, help="ONNX file to write")
    p.add_argument("--torchscript", metavar="OUT.pt", default=None, help="TorchScript file to write")
    p.add_argument("--algo", choices=sorted(ALGOS), default=None,
                   help="algorithm (default: from the run folder, else from the model's weights)")
    p.add_argument("--env", default=None, help="env id (default: from the run folder name; Duel-v0 to find a run)")
    p.add_argument("-f", "--folder", "--log-folder", dest="folder", default="logs", help="root of the run folders")
    p.add_argument("--exp-id", type=int, default=0, help="run number (0: the latest)")
    p.add_argument("--load-best", action="store_true", help="export best_model.zip")
    p.add_argument("--load-checkpoint", type=int, default=None, help="export rl_model_<N>_steps.zip")
    p.add_argument("--load-last-checkpoint", action="store_true", help="export the latest checkpoint")
    p.add_argument("--vecnormalize", metavar="PKL", default=None,
                   help="VecNormalize statistics to fold in (default: the run's, found beside the model)")
    p.add_argument("--no-vecnormalize", action="store_true", help="do not fold in VecNormalize statistics")
    p.add_argument("--action-masks", choices=["auto", "yes", "no"], default="auto",
                   help="add the action_masks input (auto: when the game or env has masks)")
    p.add_argument("--actor-only", action="store_true",
                   help="leave the critic out (no value output, no critic state): all a game needs to act")
    p.add_argument("--opset", type=int, default=DEFAULT_OPSET, help="ONNX opset version")
    p.add_argument("--no-verify", action="store_true", help="skip running each file once against the policy")
    p.add_argument("--trust-pickle", action="store_true",
                   help="read the model with SB3's loader and vecnormalize.pkl with plain pickle (both can run "
                        "code from the files: only for files you trust)")
    p.add_argument("--num-threads", type=int, default=1, help="torch threads (-1: torch's default)")
    add_gym_packages(p)
    return p


def _env_from_run_name(folder: Path) -> str | None:
    match = _RUN_NAME.match(folder.name)
    return match.group("env") if match else None


def _algo_of(path: Path, run_dir: Path | None, flag: str | None) -> str:
    """``--algo``, else the run folder's parent (``logs/<algo>/<env>_<N>``), else the weights' names."""
    if flag is not None:
        return flag
    if run_dir is not None and run_dir.parent.name in ALGOS:
        return run_dir.parent.name
    try:
        algorithm = read_model_file(path).algorithm
    except ModelFileError as exc:
        raise ConfigError(str(exc)) from None
    if algorithm not in _ALGO_NAMES:
        raise ConfigError(f"{path}: a {algorithm} model; export takes {', '.join(_ALGO_NAMES)} models")
    return _ALGO_NAMES[algorithm]


def resolve_source(args: argparse.Namespace) -> tuple[Path, Path | None, str | None, str]:
    """``(model file, run folder or None, env id or None, algo)`` from MODEL_OR_RUN or the run flags."""
    picks = dict(best=args.load_best, checkpoint=args.load_checkpoint, last_checkpoint=args.load_last_checkpoint)
    if args.model_or_run is None:
        env_id = args.env or "Duel-v0"
        run_dir = latest_run_dir(args.folder, args.algo or "rppo", env_id, args.exp_id)
        return run_model_path(run_dir, env_id, **picks), run_dir, env_id, args.algo or "rppo"
    source = Path(args.model_or_run)
    if source.is_dir():
        env_id = args.env or _env_from_run_name(source)
        if env_id is None:
            raise ConfigError(f"{source}: not a run folder named <env>_<N>; pass --env")
        path = run_model_path(source, env_id, **picks)
        return path, source, env_id, _algo_of(path, source, args.algo)
    if not source.is_file():
        raise ConfigError(f"MODEL_OR_RUN: no such model file or run folder: {source}")
    if any(picks.values()):
        raise ConfigError("--load-best/--load-checkpoint/--load-last-checkpoint pick a model of a run folder, "
                          f"but {source} is a model file")
    run_env = _env_from_run_name(source.parent)
    env_id = args.env or run_env
    run_dir = source.parent if run_env is not None and env_id == run_env else None
    return source, run_dir, env_id, _algo_of(source, run_dir, args.algo)


def _game_has_masks(game: TwoPlayerGame) -> bool:
    return bool(getattr(game, "turn_based", False)) or type(game).action_masks is not TwoPlayerGame.action_masks


def env_facts(run_dir: Path | None, env_id: str | None, algo: str) -> tuple[gym.Space, gym.Space, bool]:
    """The spaces a model of this run sees (one seat of a game, or the gym env) and whether it has masks."""
    if env_id is None:
        raise ConfigError("--env: needed for a model file outside a run folder (its spaces come from the env)")
    config = run_dir / env_id / "config.yml" if run_dir is not None else None
    if config is not None and config.is_file():
        settings = run_settings(run_dir, env_id, algo)
        env: Any = make_game(settings, 1) if settings.selfplay is not None else make_env(settings, n_envs=1,
                                                                                          training=False)
    elif env_id in GAME_REGISTRY:
        env = build_game(env_id, num_envs=1)
    else:
        try:
            env = gym.make(env_id)
        except gym.error.Error as exc:
            raise ConfigError(f"--env: unknown env id {env_id!r} ({' '.join(str(exc).split())})") from None
    try:
        masks = _game_has_masks(env) if isinstance(env, TwoPlayerGame) else is_masking_supported(env)
        return env.observation_space, env.action_space, masks
    finally:
        env.close()


def _vecnormalize_path(args: argparse.Namespace, model_path: Path, env_id: str | None) -> Path | None:
    if args.no_vecnormalize:
        return None
    if args.vecnormalize is not None:
        path = Path(args.vecnormalize)
        if not path.is_file():
            raise ConfigError(f"--vecnormalize: file not found: {path}")
        return path
    return find_trained_agent(model_path, env_id).vecnormalize if env_id is not None else None


def _signature(sidecar: dict[str, Any]) -> str:
    def fmt(spec: dict[str, Any]) -> str:
        return f"{spec['name']}[{','.join(map(str, spec['shape']))}]:{spec['dtype']}"
    return (f"inputs {' '.join(fmt(s) for s in sidecar['inputs'])}; "
            f"outputs {' '.join(fmt(s) for s in sidecar['outputs'])}")


def main(argv: Sequence[str] | None = None, *, prog: str | None = None) -> int:
    """Run ``export``; returns the exit status (0 ok, 2 bad flag, run folder, model or unsupported part)."""
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    if args.num_threads > 0:
        th.set_num_threads(args.num_threads)
    try:
        import_gym_packages(args.gym_packages)
        if args.onnx is None and args.torchscript is None:
            raise ConfigError("nothing to write: give --onnx OUT.onnx and/or --torchscript OUT.pt")
        model_path, run_dir, env_id, algo = resolve_source(args)
        observation_space, action_space, env_masks = env_facts(run_dir, env_id, algo)
        try:
            model = load_play_model(model_path, observation_space, action_space, algorithm=ALGOS[algo].__name__,
                                    env_id=env_id, device="cpu", trust_pickle=args.trust_pickle)
        except ModelFileError as exc:
            raise ConfigError(str(exc)) from None
        vecnormalize = _vecnormalize_path(args, model_path, env_id)
        stats = read_vecnormalize(vecnormalize, trust_pickle=args.trust_pickle) if vecnormalize else None
        masks = env_masks if args.action_masks == "auto" else args.action_masks == "yes"
        source = {"model": str(model_path), "env_id": env_id, "num_timesteps": model.num_timesteps,
                  "vecnormalize": str(vecnormalize) if vecnormalize else None}
        sidecar = export_policy(model.policy, args.onnx, args.torchscript, obs_normalization=stats,
                                action_masks=masks, value=not args.actor_only,
                                observation_space=observation_space, opset=args.opset,
                                verify=not args.no_verify, extra={"algo": model.algorithm, "source": source})
    except (ConfigError, ExportError) as exc:
        print(f"{parser.prog}: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    print(f"Exported {model_path}" + (f" with {vecnormalize} folded in" if vecnormalize else ""))
    for out in (args.onnx, args.torchscript):
        if out is not None:
            print(f"Wrote {out} and {sidecar_path(out)}")
    print(_signature(sidecar))
    return 0


if __name__ == "__main__":
    sys.exit(main())
