"""Replay pictures: RGB-frame replays of games without a vector drawing (a small PettingZoo game),
PNG in numpy, version-1 files, untrusted views, the player template as package data, GIF frames."""

from __future__ import annotations

import functools
import gzip
import io
import json
import subprocess
import sys
import warnings
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from gymnasium import spaces
from pettingzoo import ParallelEnv

from sb3_selfplay.games import PettingZooGame, make_game
from sb3_selfplay.games.drawing import Drawing
from sb3_selfplay.replays import (
    EpisodeRecorder,
    ReplayError,
    frame_views,
    load_replay,
    make_replay,
    render_gif,
    render_html,
    replay_kind,
    save_replay,
)
from sb3_selfplay.replays.png import decode_png, encode_png, png_from_base64

REPO = Path(__file__).resolve().parents[1]
EVIL = "</script><img src=x onerror=alert(1)>"
CELL = 8
COLOURS = ((40, 90, 220), (220, 60, 40))


class Race(ParallelEnv):
    """
    Two runners on parallel lanes of a 6-cell track; action 1 steps forward, 0 waits. The first
    at the end wins (both at once: a draw); ``max_steps`` ends the race. Pictures: ``render()``
    only (no vector drawing).
    """

    metadata = {"name": "race_v0", "render_modes": ["rgb_array"]}

    def __init__(self, length: int = 6, max_steps: int = 12, render_mode: str | None = None):
        self.length, self.max_steps, self.render_mode = length, max_steps, render_mode
        self.possible_agents = ["runner_0", "runner_1"]
        self.agents: list[str] = []
        self.pos = [0, 0]
        self.t = 0

    @functools.lru_cache(maxsize=None)  # noqa: B019
    def observation_space(self, agent: str) -> spaces.Space:
        return spaces.Box(0.0, 1.0, (2,), np.float32)

    @functools.lru_cache(maxsize=None)  # noqa: B019
    def action_space(self, agent: str) -> spaces.Space:
        return spaces.Discrete(2)

    def _obs(self, k: int) -> np.ndarray:
        return np.array([self.pos[k], self.pos[1 - k]], np.float32) / self.length

    def reset(self, seed: int | None = None, options: dict | None = None):
        self.agents, self.pos, self.t = list(self.possible_agents), [0, 0], 0
        return {a: self._obs(k) for k, a in enumerate(self.agents)}, {a: {} for a in self.agents}

    def step(self, actions: dict[str, Any]):
        self.t += 1
        for k, a in enumerate(self.possible_agents):
            self.pos[k] = min(self.length, self.pos[k] + int(actions[a]))
        done = max(self.pos) >= self.length
        rewards = {a: 0.0 for a in self.agents}
        if done and self.pos[0] != self.pos[1]:
            winner = int(self.pos[1] > self.pos[0])
            rewards = {a: (1.0 if k == winner else -1.0) for k, a in enumerate(self.possible_agents)}
        trunc = not done and self.t >= self.max_steps
        obs = {a: self._obs(k) for k, a in enumerate(self.agents)}
        out = (obs, rewards, dict.fromkeys(self.agents, done), dict.fromkeys(self.agents, trunc), {a: {} for a in self.agents})
        if done or trunc:
            self.agents = []
        return out

    def render(self) -> np.ndarray | None:
        if self.render_mode != "rgb_array":
            return None
        img = np.full((2 * CELL, (self.length + 1) * CELL, 3), 245, np.uint8)
        for k in range(2):
            img[k * CELL : (k + 1) * CELL, self.pos[k] * CELL : (self.pos[k] + 1) * CELL] = COLOURS[k]
        return img


def race_game(num_envs: int = 2, rgb: bool = True) -> PettingZooGame:
    return PettingZooGame(functools.partial(Race, render_mode="rgb_array" if rgb else None), num_envs=num_envs, seed=0)


def record_race(game: PettingZooGame, steps: int = 40, seed: int = 0):
    """Random races; returns the finished episodes of slot 0 and slot 0's images, per episode."""
    rng = np.random.default_rng(seed)
    rec = EpisodeRecorder(game, slots=[0])
    game.reset(seed=seed)
    rec.reset()
    shown, expected, episodes = [game.render(0)] if rec.rgb_frames else [], [], []
    for _ in range(steps):
        _, _, te, tr, infos = game.step(rng.integers(0, 2, (game.num_envs, 2)))
        finished = rec.step(te | tr, infos)
        if finished:
            episodes += finished
            expected.append(shown)
            shown = []
        if rec.rgb_frames:
            shown.append(game.render(0))
    return episodes, expected


# ----------------------------------------------------------------------------- PNG


def test_png_round_trip_and_pillow():
    image_mod = pytest.importorskip("PIL.Image")
    img = np.random.default_rng(0).integers(0, 256, (13, 21, 3), dtype=np.uint8)
    data = encode_png(img)
    np.testing.assert_array_equal(decode_png(data), img)
    with image_mod.open(io.BytesIO(data)) as im:  # a real PNG, not just our own
        np.testing.assert_array_equal(np.asarray(im.convert("RGB")), img)
    buf = io.BytesIO()
    image_mod.fromarray(img).save(buf, format="PNG")  # Pillow's filters (Paeth, ...) decode too
    np.testing.assert_array_equal(decode_png(buf.getvalue()), img)
    for bad, message in [(b"GIF89a", "not a PNG"), (data[:40], "truncated|corrupt|image data")]:
        with pytest.raises(ValueError, match=message):
            decode_png(bad)
    with pytest.raises(ValueError, match="uint8"):
        encode_png(img.astype(np.float32))
    with pytest.raises(ValueError, match="base64"):
        png_from_base64("javascript:alert(1)")


# ----------------------------------------------------------------------------- RGB-frame replays


def test_rgb_game_replays_keep_render_images(tmp_path):
    game = race_game()
    episodes, expected = record_race(game)
    assert len(episodes) >= 2
    for ep, images in zip(episodes, expected):
        assert ep.views is not None and len(ep.views) == len(ep.frames) == ep.length == len(images)
        for view, image in zip(ep.views, images):
            np.testing.assert_array_equal(decode_png(png_from_base64(view["png"])), image)
    ep = episodes[0]
    replay = make_replay(ep.frames, {"env_id": "Race-v0", "opponent": EVIL}, ep.game_params, views=ep.views)
    assert replay["version"] == 2 and replay_kind(replay) == "views"
    loaded = load_replay(save_replay(tmp_path / "race.replay.json.gz", replay))
    assert loaded["version"] == 2 and loaded["views"] == ep.views and loaded["frames"][0]["step"] == 0
    with pytest.raises(ValueError, match="views for"):
        make_replay(ep.frames, views=ep.views[:-1])


def test_rgb_replay_html_and_gif(tmp_path):
    image_mod = pytest.importorskip("PIL.Image")
    game = race_game()
    (ep, *_), (images, *_) = record_race(game)
    replay = make_replay(ep.frames, {"env_id": "Race-v0", "opponent": EVIL, "fps": 10}, ep.game_params, views=ep.views)
    page = render_html(replay, tmp_path / "race.html").read_text()
    assert "<img" not in page and EVIL not in page and page.count("</script>") == 2
    payload = json.loads(page.split('<script type="application/json" id="replay-data">')[1].split("</script>")[0])
    assert payload["kind"] == "views" and payload["views"] == ep.views
    assert "data:image/png;base64," in page  # the player shows them as images

    h, w = images[0].shape[:2]
    with image_mod.open(render_gif(replay, tmp_path / "native.gif", size=w)) as im:
        assert im.size == (w, h) and im.info["duration"] == 100
        frames = []
        for j in range(im.n_frames):
            im.seek(j)
            frames.append(np.asarray(im.convert("RGB")))
    distinct = [images[0]] + [b for a, b in zip(images, images[1:]) if not np.array_equal(a, b)]
    assert len(frames) == len(distinct)  # Pillow merges identical consecutive frames
    for got, want in zip(frames, distinct):
        np.testing.assert_array_equal(got, want)
    with image_mod.open(render_gif(replay, tmp_path / "big.gif")) as im:  # default: 256 wide, same aspect
        assert im.size == (256, round(256 * h / w))


def test_game_without_pictures_falls_back_to_its_observations(tmp_path):
    game = race_game(rgb=False)
    with pytest.warns(RuntimeWarning, match="no vector drawing .* render\\(\\) gave no RGB image"):
        episodes, _ = record_race(game)
    assert episodes and all(ep.views is None for ep in episodes)
    replay = make_replay(episodes[0].frames, {"env_id": "Race-v0"}, episodes[0].game_params)
    assert replay["version"] == 1 and replay_kind(replay) == "obs"
    views = frame_views(replay)  # PettingZoo states hold both seats' observations: drawn as bars
    assert len(views) == len(replay["frames"])
    assert sum(s["type"] == "rect" for s in views[-1]["shapes"]) >= 4
    with pytest.raises(ValueError, match="rgb_frames=True needs state frames"):
        EpisodeRecorder(game, use_state=False, rgb_frames=True)


def test_explicit_drawer_for_an_unregistered_game(tmp_path):
    frames = [{"x": float(t)} for t in range(5)]

    def drawer(state, params, seat):
        return Drawing(40, 20, background=(250, 250, 250)).circle(5 + 6 * state["x"], 10, 4, fill=(200, 0, 0))

    replay = make_replay(frames, {"env_id": "MyGame-v0", "learner_seat": 1})
    views = frame_views(replay, drawer)
    assert [v["shapes"][0]["x"] for v in views] == [5.0, 11.0, 17.0, 23.0, 29.0]
    placeholder = frame_views(replay)  # no drawer known for MyGame-v0: a placeholder, frames as text
    assert all(v["shapes"][0]["type"] == "text" for v in placeholder)
    render_html(replay, tmp_path / "mine.html", drawer=drawer)


# ----------------------------------------------------------------------------- old files, bad files


def test_version_1_duel_file_still_plays(tmp_path):
    """A replay as the single-module replays.py wrote it (version 1, Duel states, no views)."""
    game = make_game("Duel-v0", 1, max_steps=8)
    game.reset(seed=1)
    frames = [game.get_state(0)]
    for _ in range(5):
        game.step(np.array([[[1, 0, 0, 1], [2, 1, 0, 1]]]))
        frames.append(game.get_state(0))
    old = {
        "format": "sb3-selfplay-replay",
        "version": 1,
        "metadata": {"env_id": "Duel-v0", "opponent": "hunter", "learner_seat": 1, "outcome": "loss", "length": 6},
        "frames": frames,
        "game_params": game.get_params(),
    }
    path = tmp_path / "old.replay.json.gz"
    path.write_bytes(gzip.compress(json.dumps(old).encode()))
    replay = load_replay(path)
    assert replay_kind(replay) == "state"
    views = frame_views(replay)
    assert len(views) == 6 and all(v["width"] == game.render_size for v in views)
    assert any(s.get("stroke") == [255, 215, 0] for s in views[0]["shapes"])  # the learner (seat 1) in gold
    render_html(path, tmp_path / "old.html")
    pytest.importorskip("PIL.Image")
    render_gif(path, tmp_path / "old.gif", size=64)


def test_untrusted_views_are_rejected_in_one_line(tmp_path):
    base = make_replay([{"step": 0}, {"step": 1}], {"env_id": "Race-v0"}, views=[None, None])
    cases = [
        ([{"png": "javascript:alert(1)"}, None], "view 0: an image must be base64"),
        ([{"png": "AAAA"}, None], "view 0: an image is not a PNG"),
        ([None, {"width": 10, "height": 10, "shapes": [{"type": "circle", "x": 1, "y": 1, "r": 1, "fill": "red"}]}],
         "view 1: drawing shape 0 \\(circle\\): fill must be an RGB triple"),
        ([None, {"width": 10, "height": 10, "shapes": [{"type": "script", "src": "x"}]}], "view 1: drawing shape 0: unknown type"),
    ]  # fmt: skip
    for views, message in cases:
        with pytest.raises(ReplayError, match=message) as err:
            render_html({**base, "views": views}, tmp_path / "bad.html")
        assert "\n" not in str(err.value)
    assert not (tmp_path / "bad.html").exists()
    short = tmp_path / "short.json"
    short.write_text(json.dumps({**base, "views": [None]}))
    with pytest.raises(ReplayError, match="1 views for 2 frames"):
        load_replay(short)
    newer = tmp_path / "newer.json"
    newer.write_text(json.dumps({**base, "version": 3}))
    with pytest.raises(ReplayError, match="newer"):
        load_replay(newer)
    # a None view is a frame without a picture: a placeholder, not an error
    views = frame_views(base)
    assert all(v["shapes"][0]["text"] == "no picture of this frame" for v in views)


# ----------------------------------------------------------------------------- GIF and template


def test_duel_gif_frames_are_the_game_render(tmp_path):
    image_mod = pytest.importorskip("PIL.Image")
    game = make_game("Duel-v0", 1, max_steps=10)  # render_size 256, as the drawer's game
    rec = EpisodeRecorder(game)
    game.reset(seed=2)
    rec.reset()
    rng = np.random.default_rng(2)
    rendered, episodes = [game.render(0)], []
    while not episodes:
        actions = np.stack([rng.integers(0, k, (1, 2)) for k in (9, 2, 2, 2)], -1)
        actions[..., 3] = 1
        _, _, te, tr, infos = game.step(actions)
        episodes = rec.step(te | tr, infos)
        if not episodes:
            rendered.append(game.render(0))
    ep = episodes[0]
    replay = make_replay(ep.frames, {"env_id": "Duel-v0"}, ep.game_params)  # no learner seat: no gold
    with image_mod.open(render_gif(replay, tmp_path / "d.gif", size=256)) as im:
        frames = []
        for j in range(im.n_frames):
            im.seek(j)
            frames.append(np.asarray(im.convert("RGB")))
    distinct = [rendered[0]] + [b for a, b in zip(rendered, rendered[1:]) if not np.array_equal(a, b)]
    assert len(frames) == len(distinct)
    for got, want in zip(frames, distinct):
        np.testing.assert_array_equal(got, want)


def test_player_template_is_package_data_found_by_importlib_resources(tmp_path):
    """The template is read through importlib.resources: it is found in a zipped (installed) package."""
    from sb3_selfplay.replays.html import TEMPLATE, player_template

    text = player_template()
    assert text.count("__REPLAY_JSON__") == 1 and "paintDrawing" in text
    archive = tmp_path / "pkg.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for path in (REPO / "sb3_selfplay").rglob("*"):
            if path.is_file() and "__pycache__" not in path.parts:
                z.write(path, path.relative_to(REPO).as_posix())
    assert f"sb3_selfplay/replays/{TEMPLATE}" in zipfile.ZipFile(archive).namelist()
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); import sb3_selfplay.replays.html as h; "
        "assert '.zip' in h.__file__, h.__file__; t = h.player_template(); print(len(t), t.count('__REPLAY_JSON__'))"
    )
    out = subprocess.run([sys.executable, "-c", code, str(archive)], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == [str(len(text)), "1"]


def test_recorder_warning_is_given_once():
    game = race_game(num_envs=3, rgb=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        record_race(game, steps=30)
    assert len([w for w in caught if issubclass(w.category, RuntimeWarning)]) == 1
