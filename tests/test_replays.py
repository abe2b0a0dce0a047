"""Replay files, EpisodeRecorder, HTML/GIF rendering, the replay CLI and ReplayCallback."""

import gzip
import importlib.util
import json
import os
from pathlib import Path

import numpy as np
import pytest

from sb3_selfplay.games import make_game
from sb3_selfplay.replays import (
    METADATA_KEYS,
    REPLAY_FORMAT,
    REPLAY_SUFFIX,
    EpisodeRecorder,
    ReplayError,
    load_replay,
    make_replay,
    render_gif,
    render_html,
    replay_kind,
    save_replay,
)

EVIL = "</script><img src=x onerror=alert(1)>"
REPO = Path(__file__).resolve().parents[1]


def random_actions(rng, n):
    """Random Duel actions for both seats, firing whenever possible (so shots appear)."""
    a = np.stack([rng.integers(0, k, (n, 2)) for k in (9, 2, 2, 2)], -1)
    a[..., 3] = 1
    return a


def play(game, steps, recorder, seed=0, obs_frames=False):
    """Step ``game`` with random actions, feeding ``recorder``; return the finished episodes."""
    rng = np.random.default_rng(seed)
    obs = game.reset(seed=seed)
    recorder.reset(obs=obs if obs_frames else None)
    episodes = []
    for _ in range(steps):
        actions = random_actions(rng, game.num_envs)
        obs, _, terminated, truncated, infos = game.step(actions)
        episodes += recorder.step(terminated | truncated, infos, obs=obs, actions=actions)
    return episodes


def duel_replay(opponent="hunter", max_steps=12):
    game = make_game("Duel-v0", 1, max_steps=max_steps)
    (ep,) = play(game, max_steps, EpisodeRecorder(game))[:1]
    meta = {"env_id": "Duel-v0", "opponent": opponent, "learner_seat": 0, "outcome": "draw", "return": 0.25, "fps": 20}
    return make_replay(ep.frames, meta, ep.game_params)


# ----------------------------------------------------------------------------- format


def test_round_trip_exact_and_rounded(tmp_path):
    replay = duel_replay()
    path = save_replay(tmp_path / f"a{REPLAY_SUFFIX}", replay, float_digits=None)
    assert load_replay(path) == json.loads(json.dumps(replay))
    with gzip.open(path, "rt") as f:  # really gzip JSON in the documented layout
        raw = json.load(f)
    assert raw["format"] == REPLAY_FORMAT and raw["version"] == 1
    assert set(METADATA_KEYS) <= set(raw["metadata"]) and raw["metadata"]["length"] == len(replay["frames"])
    rounded = load_replay(save_replay(tmp_path / "b.replay.json.gz", replay))  # default: 5 decimals
    a0, b0 = replay["frames"][3]["agents"][0], rounded["frames"][3]["agents"][0]
    assert b0["x"] == pytest.approx(a0["x"], abs=1e-5) and b0["shot"] == a0["shot"]


def test_save_cleans_numpy_and_nan(tmp_path):
    replay = make_replay([{"obs": np.arange(3, dtype=np.float32), "action": np.int64(2)}], {"return": float("nan")})
    out = load_replay(save_replay(tmp_path / "n.replay.json.gz", replay))
    assert out["frames"][0] == {"obs": [0.0, 1.0, 2.0], "action": 2}
    assert out["metadata"]["return"] is None


def test_atomic_write_leaves_no_temp_files(tmp_path, monkeypatch):
    path = tmp_path / "r.replay.json.gz"
    save_replay(path, duel_replay("first"))
    save_replay(path, duel_replay("second"))  # overwrite in place
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]
    assert load_replay(path)["metadata"]["opponent"] == "second"

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        save_replay(path, duel_replay("third"))
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]  # temp file removed
    assert load_replay(path)["metadata"]["opponent"] == "second"  # old file intact


def test_load_errors_are_one_line(tmp_path):
    good = save_replay(tmp_path / "good.replay.json.gz", duel_replay())
    truncated = tmp_path / "truncated.gz"
    truncated.write_bytes(good.read_bytes()[:60])
    garbage = tmp_path / "garbage.gz"
    garbage.write_bytes(b"\x00\x01 not a replay \n at all")
    other = tmp_path / "other.json.gz"
    other.write_bytes(gzip.compress(b'{"hello": "world"}'))
    newer = tmp_path / "newer.json"
    newer.write_text(json.dumps({**duel_replay(), "version": 99}))
    listing = tmp_path / "list.json"
    listing.write_text("[1, 2]")
    cases = {
        tmp_path / "missing.replay.json.gz": "not found",
        truncated: "corrupt replay file",
        garbage: "corrupt replay file",
        other: "not an sb3-selfplay-replay file",
        newer: "newer",
        listing: "not an sb3-selfplay-replay file",
        tmp_path: "directory",
    }
    for path, expected in cases.items():
        with pytest.raises(ReplayError) as err:
            load_replay(path)
        message = str(err.value)
        assert expected in message and "\n" not in message and str(path) in message
    plain = tmp_path / "plain.json"  # uncompressed JSON replays are accepted too
    plain.write_text(json.dumps(duel_replay()))
    assert load_replay(plain)["metadata"]["opponent"] == "hunter"


# ----------------------------------------------------------------------------- recorder


def test_recorder_duel_episode_lengths_and_frames():
    game = make_game("Duel-v0", 4, max_steps=15, seed=1)
    episodes = play(game, 50, EpisodeRecorder(game), seed=1)
    assert len(episodes) >= 4 * 3
    for ep in episodes:
        assert ep.length == ep.info["episode"]["l"] == len(ep.frames)
        assert [f["step"] for f in ep.frames] == list(range(ep.length))  # frame t = state at decision t
        assert ep.game_params["max_steps"] == 15 and not ep.terminal_frame
    assert {ep.slot for ep in episodes} == {0, 1, 2, 3}
    assert any(a["shot"] for ep in episodes for f in ep.frames for a in f["agents"])
    assert any(ep.length < 15 for ep in episodes) or all(ep.length == 15 for ep in episodes)
    assert replay_kind(make_replay(episodes[0].frames)) == "state"
    assert all(ep.views is None for ep in episodes)  # Duel draws its states: no images kept


def test_recorder_slots_stride_and_toggle():
    game = make_game("Duel-v0", 4, max_steps=10, seed=2)
    rec = EpisodeRecorder(game, slots=[1, 3], stride=3)
    episodes = play(game, 30, rec, seed=2)
    assert episodes and {ep.slot for ep in episodes} <= {1, 3}
    for ep in episodes:
        assert [f["step"] for f in ep.frames] == list(range(0, ep.length, 3))
    rec.enabled = False
    assert rec.step(np.ones(4, bool), [{}] * 4) == []
    rec.enabled = True  # slots wait for their next episode start
    assert rec.step(np.zeros(4, bool), [{}] * 4) == []
    rng = np.random.default_rng(0)
    out = []
    for _ in range(25):
        _, _, te, tr, infos = game.step(random_actions(rng, 4))
        out += rec.step(te | tr, infos)
    assert out and all(ep.length == ep.info["episode"]["l"] for ep in out)
    assert all(ep.frames[0]["step"] == 0 for ep in out)


def test_recorder_observation_frames_with_terminal_frame():
    game = make_game("Duel-v0", 2, max_steps=6, seed=3)
    rec = EpisodeRecorder(game, use_state=False)
    episodes = play(game, 14, rec, seed=3, obs_frames=True)
    assert episodes
    for ep in episodes:
        assert ep.terminal_frame and len(ep.frames) == ep.length + 1
        assert all(len(f["action"]) == 2 and len(f["obs"]) == 2 for f in ep.frames[:-1])  # both seats
        assert ep.frames[-1]["action"] is None
        np.testing.assert_allclose(ep.frames[-1]["obs"], ep.info["terminal_observation"], rtol=1e-6)
    assert replay_kind(make_replay(episodes[0].frames)) == "obs"


# ----------------------------------------------------------------------------- rendering


def test_html_escapes_every_replay_string(tmp_path):
    replay = duel_replay(opponent=EVIL)
    replay["metadata"]["env_id"] = "Duel-v0 & <b>friends</b>"
    replay["game_params"]["note"] = "'\"</SCRIPT>"
    game = make_game("Duel-v0", 1)
    page = render_html(replay, tmp_path / "r.html", drawer=game.draw_state).read_text()  # env_id is garbled
    assert EVIL not in page and "<img" not in page and "<b>" not in page and "</SCRIPT>" not in page
    assert page.count("</script>") == 2  # the data block and the player script, nothing injected
    assert "\\u003c/script\\u003e\\u003cimg src=x onerror=alert(1)\\u003e" in page
    assert "innerHTML" not in page and "http://" not in page and "https://" not in page  # standalone
    data = page.split('<script type="application/json" id="replay-data">')[1].split("</script>")[0]
    payload = json.loads(data)
    assert payload["metadata"]["opponent"] == EVIL and payload["kind"] == "state"
    assert len(payload["frames"]) == len(payload["views"]) == len(replay["frames"])
    # every frame is Duel's own drawing, the learner (seat 0) outlined in gold
    for frame, view in zip(replay["frames"], payload["views"]):
        expected = game.draw_state(frame, replay["game_params"], 0).to_dict()
        assert view["width"] == expected["width"] and len(view["shapes"]) == len(expected["shapes"])
        assert [s["type"] for s in view["shapes"]] == [s["type"] for s in expected["shapes"]]
    assert any(s.get("stroke") == [255, 215, 0] for s in payload["views"][0]["shapes"])
    for word in ("<canvas", 'id="play"', 'id="scrub"', 'id="speed"', 'id="metadata"'):
        assert word in page


def test_gif_written(tmp_path):
    image = pytest.importorskip("PIL.Image", reason="Pillow not installed")
    replay = duel_replay()
    path = render_gif(replay, tmp_path / "r.gif", size=96)

    def frames_and_duration(im):
        total = 0
        for j in range(im.n_frames):  # Pillow merges identical consecutive frames, adding durations
            im.seek(j)
            total += im.info["duration"]
        return im.n_frames, total

    with image.open(path) as im:
        assert im.format == "GIF" and im.size == (96, 96)
        colours = {c for _, c in im.convert("RGB").getcolors(1 << 16)}
        n_frames, duration = frames_and_duration(im)
    assert 1 < n_frames <= len(replay["frames"]) and duration == 50 * len(replay["frames"])  # 20 fps
    assert (235, 235, 225) in colours and (40, 90, 220) in colours and (220, 60, 40) in colours
    obs = make_replay([{"obs": [0.5, -1.0, v], "action": [1]} for v in (0.1, 0.2, 0.3)])
    with image.open(render_gif(obs, tmp_path / "o.gif", max_frames=2, fps=10)) as im:
        assert frames_and_duration(im) == (2, 200)
    game = make_game("Duel-v0", 1, **replay["game_params"])
    with image.open(render_gif(replay, tmp_path / "g.gif", game_factory=lambda: game)) as im:
        assert im.size == (256, 256)


def test_gif_without_pillow_names_pip_install(monkeypatch, tmp_path):
    import builtins

    real_import = builtins.__import__

    def no_pil(name, *args, **kwargs):
        if name == "PIL" or name.startswith("PIL."):
            raise ImportError("No module named 'PIL'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_pil)
    with pytest.raises(ImportError, match="pip install pillow"):
        render_gif(duel_replay(), tmp_path / "x.gif")


# ----------------------------------------------------------------------------- CLI


def load_cli():
    spec = importlib.util.spec_from_file_location("replay_cli", REPO / "zoo_scripts" / "replay.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cli_html_gif_and_errors(tmp_path, capsys):
    cli = load_cli()
    path = save_replay(tmp_path / "r.replay.json.gz", duel_replay())
    args = [str(path), "--html", str(tmp_path / "r.html")]
    if importlib.util.find_spec("PIL") is not None:
        args += ["--gif", str(tmp_path / "r.gif"), "--size", "64"]
    assert cli.main(args) == 0
    assert (tmp_path / "r.html").stat().st_size > 1000
    bad = tmp_path / "bad.replay.json.gz"
    bad.write_bytes(b"\x1f\x8b broken")
    capsys.readouterr()
    assert cli.main([str(bad), "--html", str(tmp_path / "x.html")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "corrupt replay file" in err and not (tmp_path / "x.html").exists()
    assert cli.main([str(tmp_path / "missing.gz")]) == 1
    assert "not found" in capsys.readouterr().err
    assert cli.main([str(path)]) == 0  # metadata listing
    assert "opponent: hunter" in capsys.readouterr().out


# ----------------------------------------------------------------------------- ReplayCallback


def selfplay_modules():
    from sb3_selfplay.callbacks import SelfPlayCallback
    from sb3_selfplay.selfplay import SelfPlayVecEnv

    return SelfPlayVecEnv, SelfPlayCallback


class EpisodeSpy:
    """Collects (slot, return) of every finished episode, to check the kept top-K."""

    def __new__(cls, slots):
        from stable_baselines3.common.callbacks import BaseCallback

        class _Spy(BaseCallback):
            def __init__(self):
                super().__init__()
                self.returns = []

            def _on_step(self):
                for i in np.flatnonzero(self.locals["dones"]):
                    if i < slots:
                        self.returns.append(self.locals["infos"][i]["episode"]["r"])
                return True

        return _Spy()


def test_replay_callback_keeps_top_k(tmp_path):
    SelfPlayVecEnv, SelfPlayCallback = selfplay_modules()
    from stable_baselines3.common.callbacks import CallbackList

    from sb3_selfplay import RecurrentPPO
    from sb3_selfplay.callbacks import ReplayCallback
    from sb3_selfplay.selfplay import OpponentPool

    pool = OpponentPool(tmp_path / "pool")
    env = SelfPlayVecEnv(make_game("Duel-v0", 4, max_steps=30), pool, learner_seat="random", seed=0)
    model = RecurrentPPO(
        "MlpLstmPolicy", env, n_steps=32, batch_size=64, n_epochs=1, seed=0,
        policy_kwargs=dict(lstm_hidden_size=8, net_arch=[8]),
    )  # fmt: skip
    out = tmp_path / "replays"
    replay_cb = ReplayCallback(out, top_k=2, record_slots=3)
    spy = EpisodeSpy(slots=3)
    model.learn(128, callback=CallbackList([SelfPlayCallback(pool, save_steps=64), replay_cb, spy]))

    assert replay_cb.n_recorded == len(spy.returns) > 2  # every episode of the recorded slots
    files = sorted(out.iterdir())
    assert all(f.name.endswith(REPLAY_SUFFIX) and not f.name.startswith(".") for f in files)  # no temp files
    best = sorted(out.glob("best_*"))
    wins = sorted(out.glob("win_*"))
    assert len(best) == 2 and len(wins) <= 2 and len(files) == len(best) + len(wins)
    assert sorted(p.name for p in replay_cb.replay_paths()) == sorted(f.name for f in files)
    kept = sorted((load_replay(p)["metadata"]["return"] for p in best), reverse=True)
    assert kept == pytest.approx(sorted(spy.returns, reverse=True)[:2], abs=1e-4)
    ratings = pool.ratings()
    for path in best + wins:
        replay = load_replay(path)
        meta = replay["metadata"]
        assert meta["env_id"] == "Duel-v0" and meta["seed"] == 0 and meta["env_slot"] < 3
        assert meta["learner_seat"] in (0, 1) and meta["outcome"] in ("win", "draw", "loss")
        assert 0 < meta["learner_step"] <= model.num_timesteps and meta["learner_rating"] is not None
        assert f"_vs_{'latest' if meta['opponent'] == '__latest__' else meta['opponent']}_" in path.name
        # the final step (e.g. the killing shot) is included as one more frame, without an action
        assert meta["terminal_frame"] is True and len(replay["frames"]) == meta["length"] + 1
        assert [f["step"] for f in replay["frames"]] == list(range(meta["length"] + 1))
        assert replay["game_params"]["max_steps"] == 30
        if meta["opponent"] in ratings:
            assert isinstance(meta["opponent_rating"], float)
    assert all(load_replay(p)["metadata"]["outcome"] == "win" for p in wins)

    # A resumed run reads the kept files back and still keeps at most top_k per collection.
    again = ReplayCallback(out, top_k=2, record_slots=3)
    model.learn(128, callback=CallbackList([SelfPlayCallback(pool, save_steps=10**9), again]), reset_num_timesteps=False)
    assert len(list(out.glob("best_*"))) == 2 and len(list(out.glob("win_*"))) <= 2
    assert not [f for f in out.iterdir() if f.name.startswith(".")]
    new_best = [load_replay(p)["metadata"]["return"] for p in out.glob("best_*")]
    assert min(new_best) >= min(kept) - 1e-4  # the earlier best were only replaced by better ones


def test_replay_callback_win_ranking_and_checks(tmp_path):
    from sb3_selfplay.callbacks import ReplayCallback

    key = ReplayCallback._key
    strong = {"outcome": "win", "opponent_rating": 1400.0, "return": 0.1, "learner_step": 5}
    weak = {"outcome": "win", "opponent_rating": 1100.0, "return": 2.0, "learner_step": 9}
    unrated = {"outcome": "win", "opponent_rating": None, "return": 3.0, "learner_step": 9}
    assert key("win", strong) > key("win", weak) > key("win", unrated)
    assert key("win", {**strong, "outcome": "loss"}) is None
    assert key("best", weak) > key("best", strong)
    with pytest.raises(ValueError, match="top_k"):
        ReplayCallback(tmp_path, top_k=0)
    with pytest.raises(ValueError, match="record_every"):
        ReplayCallback(tmp_path, record_every=0)


def test_replay_callback_needs_selfplay_env(tmp_path):
    from stable_baselines3.common.env_util import make_vec_env

    from sb3_selfplay import PPO
    from sb3_selfplay.callbacks import ReplayCallback

    model = PPO("MlpPolicy", make_vec_env("CartPole-v1", 1), n_steps=8, batch_size=8)
    with pytest.raises(TypeError, match="SelfPlayVecEnv"):
        model.learn(8, callback=ReplayCallback(tmp_path))
    assert not os.listdir(tmp_path)


def test_recorder_uses_terminal_state_when_the_game_reports_it():
    game = make_game("Duel-v0", 2, max_steps=5, seed=4)
    rec = EpisodeRecorder(game, slots=[0])
    game.reset(seed=4)
    rec.reset()
    rng = np.random.default_rng(4)
    out = []
    while not out:
        _, _, te, tr, infos = game.step(random_actions(rng, 2))
        infos = [dict(info, terminal_state={"step": "final"}) if done else info for info, done in zip(infos, te | tr)]
        out = rec.step(te | tr, infos)
    (ep,) = out
    assert ep.terminal_frame and len(ep.frames) == ep.length + 1 and ep.frames[-1] == {"step": "final"}


def test_replay_ranking_accepts_numpy_numbers():
    """VecMonitor reports float32 returns; they must rank like Python floats, not as -inf."""
    from sb3_selfplay.callbacks import ReplayCallback

    meta = {"return": np.float32(1.5), "learner_step": np.int64(10), "outcome": "win",
            "opponent_rating": np.float64(1300.0)}
    assert ReplayCallback._key("best", meta) == (1.5, 10.0)
    assert ReplayCallback._key("win", meta) == (1300.0, 1.5, 10.0)
