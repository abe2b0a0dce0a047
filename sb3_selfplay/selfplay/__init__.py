"""Self-play: opponent pool (snapshots + match ledger), ratings and opponent sampling."""

from sb3_selfplay.selfplay.pool import (
    LEARNER,
    MatchRecord,
    OpponentPool,
    SnapshotError,
    SnapshotInfo,
    policy_constructor_kwargs,
)
from sb3_selfplay.selfplay.ratings import BTResult, expected_score, fit_bradley_terry, update_elo
from sb3_selfplay.selfplay.report import plot_ratings, ratings_table
from sb3_selfplay.selfplay.sampling import LATEST, OPPONENT_SAMPLERS, get_sampler, sample_opponents
from sb3_selfplay.selfplay.serialization import (
    DEFAULT_ALLOWED_PREFIXES,
    SerializationError,
    decode,
    encode,
    import_dotted,
)

__all__ = [
    "DEFAULT_ALLOWED_PREFIXES",
    "LATEST",
    "LEARNER",
    "OPPONENT_SAMPLERS",
    "BTResult",
    "MatchRecord",
    "OpponentPool",
    "SerializationError",
    "SnapshotError",
    "SnapshotInfo",
    "decode",
    "encode",
    "expected_score",
    "fit_bradley_terry",
    "get_sampler",
    "import_dotted",
    "plot_ratings",
    "policy_constructor_kwargs",
    "ratings_table",
    "sample_opponents",
    "update_elo",
]
