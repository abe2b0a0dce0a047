"""One league player as a plain process: ``train --role R [--role-index N] --pool URL``.

:func:`train_role` builds the player's env, model and callbacks with the run's factories,
resumes from the player's last snapshot in the shared pool if it has one, and trains the rest of
its budget with a :class:`~sb3_selfplay.callbacks.league.LeagueCallback`. Any number of such
processes (one per player: Slurm, Kubernetes, or the Ray runner's actors) share one pool.

Restarts: a player killed at any point resumes from its last snapshot, weights loaded through the
pool (``weights_only``) and ``num_timesteps`` set to the snapshot's ``learner_step``; a player
whose role resets after that snapshot resumes from its initial weights instead, which are the same
in every process (the model is built from the player's own seed,
:func:`player_seed`). Games recorded after the snapshot by the killed process stay in the ledger
(each once); the optimizer state, a ``VecNormalize``'s statistics and the work since the last
snapshot are lost.
"""

from __future__ import annotations

import copy
import dataclasses
import os
import warnings
import zlib
from collections.abc import Sequence
from pathlib import Path

from stable_baselines3.common.callbacks import BaseCallback, CallbackList

from sb3_selfplay.atomic import atomic_write_with
from sb3_selfplay.callbacks.common import find_selfplay_env
from sb3_selfplay.callbacks.curriculum import SELFPLAY_PREFIX
from sb3_selfplay.callbacks.league import LeagueCallback, own_snapshots
from sb3_selfplay.league.matchmaking import reset_after_snapshot
from sb3_selfplay.league.naming import ROLES, player_id, seq_of
from sb3_selfplay.league.roles import LeagueSettings
from sb3_selfplay.selfplay.ledger_rows import PoolError, SnapshotInfo
from sb3_selfplay.selfplay.pool import OpponentPool
from sb3_selfplay.selfplay.store import SnapshotError
from sb3_selfplay.zoo.factories import make_callbacks, make_env, make_logger, make_model
from sb3_selfplay.zoo.settings import ConfigError, ExperimentSettings, RunOptions, replace

__all__ = ["check_role", "player_seed", "role_run_dir", "train_role"]


def player_seed(player: str, seed: int | None = None) -> int:
    """The seed of one player: its id's CRC32 plus the run's seed (None: 0), so a restart builds the same initial weights."""
    return (zlib.crc32(player.encode()) + (seed or 0)) % 2**31


def role_run_dir(settings: ExperimentSettings, options: RunOptions, player: str) -> Path:
    """``<log>/<algo>/<env>_league/<player>/``: the player's run folder (the same after a restart)."""
    return Path(options.log_folder) / settings.algo / f"{settings.env_id}_league" / player


def check_role(settings: ExperimentSettings, role: str, index: int) -> tuple[LeagueSettings, str]:
    """
    The league settings (the entry's ``league:``, else the defaults) and the player id of ``role``/``index``.

    :raises ConfigError: an unknown role, an index beyond the role's count, or an entry without self-play.
    """
    if role not in ROLES:
        raise ConfigError(f"--role: unknown league role {role!r} (roles: {', '.join(ROLES)})")
    if settings.selfplay is None:
        raise ConfigError(f"--role: {settings.env_id} is not a self-play game (its entry has no selfplay section)")
    league = settings.league or LeagueSettings()
    count = league.role(role).count
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < count:
        raise ConfigError(f"--role-index {index}: league.{role}.count is {count} (indices 0-{count - 1})" if count else
                          f"--role {role}: league.{role}.count is 0 (set it in the YAML's league section or with "
                          f"-params league.{role}.count:1)")
    return league, player_id(role, index)


def league_curriculum(settings: ExperimentSettings, player: str) -> ExperimentSettings:
    """
    ``settings`` without the curriculum's ``selfplay.*`` lessons (a league player's opponents come
    from its role's matchmaking), with a warning naming them; game-parameter lessons stay.
    """
    if not settings.curriculum:
        return settings
    dropped = sorted(k for k in settings.curriculum if k.startswith(SELFPLAY_PREFIX))
    if not dropped:
        return settings
    warnings.warn(f"{player}: the curriculum's {', '.join(dropped)} lessons are not used in a league (the role's "
                  f"matchmaking chooses the opponents); its other lessons are", UserWarning, stacklevel=3)
    kept = {k: v for k, v in settings.curriculum.items() if k not in dropped}
    return replace(settings, curriculum=kept or None)


def _last_snapshot(pool: OpponentPool, player: str) -> SnapshotInfo | None:
    mine = own_snapshots(pool, player)
    return pool.snapshot_info(mine[-1]) if mine else None


def train_role(
    settings: ExperimentSettings,
    options: RunOptions,
    role: str,
    index: int,
    pool: str | os.PathLike[str],
    total_timesteps: int | None = None,
    callbacks: Sequence[BaseCallback] = (),
) -> str:
    """
    Train league player ``<role>_<index>`` against the shared ``pool`` until its budget, resuming
    from its last snapshot there; writes ``<log>/<algo>/<env>_league/<player>/`` (``progress.csv``,
    ``monitor.csv``, ``<env>.zip``).

    :param settings: The entry (its ``league:`` section, else the defaults; ``selfplay`` required).
    :param options: Run options (``seed``: the league's base seed; each player adds its own).
    :param role: ``main_agent``, ``main_exploiter`` or ``league_exploiter``.
    :param index: The player's index within its role (< the role's ``count``).
    :param pool: The shared pool: a folder, or ``postgresql://...?snapshots=...``.
    :param total_timesteps: The player's whole budget (default: the role's ``n_timesteps``, else
        the entry's); a restart trains only what is left of it.
    :param callbacks: More callbacks, run after the run's own.
    :return: The player's last snapshot id.
    :raises ConfigError: a bad role or index (one line); ``PoolError`` for an unusable pool.
    """
    league, me = check_role(settings, role, index)
    role_settings = league.role(role)
    budget = total_timesteps if total_timesteps is not None else role_settings.n_timesteps
    budget = settings.n_timesteps if budget is None else int(budget)
    assert settings.selfplay is not None
    sp = replace(settings.selfplay, pool=str(pool), save_steps=0, snapshot_at_start=False)  # the league snapshots
    settings = league_curriculum(replace(settings, selfplay=sp, league=league), me)
    seed = player_seed(me, options.seed)
    options = dataclasses.replace(options, seed=seed)
    run_dir = role_run_dir(settings, options, me)
    run_dir.mkdir(parents=True, exist_ok=True)
    shared = OpponentPool(pool, k=sp.elo_k, initial_rating=sp.initial_rating, window=None, learner_id=me)
    env = model = None
    try:
        last = _last_snapshot(shared, me)
        start = last.learner_step if last is not None else 0
        if last is not None and start >= budget:
            return last.snapshot_id
        env = make_env(settings, shared, seed + start, run_dir)
        model = make_model(settings, env, options)  # initial weights from the player's seed
        initial = {"policy": copy.deepcopy(model.policy.state_dict()),
                   "optimizer": copy.deepcopy(model.policy.optimizer.state_dict())}
        if last is not None:
            if not reset_after_snapshot(league, me, seq_of(last.snapshot_id) or 0, seed):
                try:
                    model.policy.load_state_dict(shared.load_policy(last.snapshot_id, device=model.device).state_dict())
                except (SnapshotError, RuntimeError) as exc:
                    raise PoolError(f"{me}: cannot resume from its snapshot {last.snapshot_id!r} "
                                    f"({' '.join(str(exc).split())[:300]})") from None
            model.num_timesteps = start
            model.set_random_seed(seed + start)
        model.set_logger(make_logger(run_dir, options, f"{settings.env_id}_league/{me}"))
        league_cb = LeagueCallback(shared, league, me, seed=seed, initial_state=initial,
                                   verbose=int(options.verbose >= 1))
        selfplay_env = find_selfplay_env(env)
        assert selfplay_env is not None
        league_cb.prepare(selfplay_env, start)  # the first episodes already follow the role's mix
        built = make_callbacks(settings, options, env, shared, run_dir)
        ordered = [*built.values()]
        ordered.insert(list(built).index("selfplay") + 1, league_cb)
        model.learn(budget - start, callback=CallbackList([*ordered, *callbacks]), reset_num_timesteps=False)
        atomic_write_with(run_dir / f"{settings.env_id}.zip", model.save)
        last_id = league_cb.last_snapshot_id
        assert last_id is not None
        return last_id
    finally:
        for thing in (env, shared, model.logger if model is not None else None):
            if thing is not None:
                thing.close()
