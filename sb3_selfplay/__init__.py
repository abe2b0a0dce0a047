"""sb3-selfplay: fast recurrent PPO and Elo-rated self-play for Stable-Baselines3."""

__version__ = "0.1.0"
