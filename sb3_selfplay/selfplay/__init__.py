"""Self-play: opponent pool (snapshots + match ledger), ratings, opponent sampling, the batched
opponent bank, the learner's SelfPlayVecEnv, evaluation games and tournaments. (The training
callbacks, ``SelfPlayCallback`` among them, live in :mod:`sb3_selfplay.callbacks`.)"""

from sb3_selfplay.selfplay.maintenance import RepairReport, copy_pool, repair_pool
from sb3_selfplay.selfplay.model_files import ModelFileError
from sb3_selfplay.selfplay.players import PlayerBank, actor_signature
from sb3_selfplay.selfplay.pool import (
    LEARNER,
    LedgerError,
    MatchRecord,
    OpponentPool,
    PoolError,
    SnapshotError,
    SnapshotInfo,
    policy_constructor_kwargs,
)
from sb3_selfplay.selfplay.ratings import BTResult, expected_score, fit_bradley_terry, update_elo
from sb3_selfplay.selfplay.registry import register_kwarg_class, register_policy_class, registered_policy_classes
from sb3_selfplay.selfplay.report import plot_ratings, ratings_table
from sb3_selfplay.selfplay.sampling import LATEST, OPPONENT_SAMPLERS, OpponentSampling, get_sampler, sample_opponents
from sb3_selfplay.selfplay.serialization import (
    DEFAULT_ALLOWED_PREFIXES,
    SerializationError,
    decode,
    encode,
    import_dotted,
)
from sb3_selfplay.selfplay.tournament import load_model_policy, run_tournament, tournament_report, tournament_schedule
from sb3_selfplay.selfplay.vecenv import SelfPlayVecEnv

__all__ = [
    "DEFAULT_ALLOWED_PREFIXES",
    "LATEST",
    "LEARNER",
    "OPPONENT_SAMPLERS",
    "BTResult",
    "LedgerError",
    "MatchRecord",
    "ModelFileError",
    "OpponentPool",
    "OpponentSampling",
    "PlayerBank",
    "PoolError",
    "RepairReport",
    "SelfPlayVecEnv",
    "SerializationError",
    "SnapshotError",
    "SnapshotInfo",
    "actor_signature",
    "copy_pool",
    "decode",
    "encode",
    "expected_score",
    "fit_bradley_terry",
    "get_sampler",
    "import_dotted",
    "load_model_policy",
    "plot_ratings",
    "policy_constructor_kwargs",
    "ratings_table",
    "register_kwarg_class",
    "register_policy_class",
    "registered_policy_classes",
    "repair_pool",
    "run_tournament",
    "sample_opponents",
    "tournament_report",
    "tournament_schedule",
    "update_elo",
]
