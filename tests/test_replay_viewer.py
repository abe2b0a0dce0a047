"""The HTML replay player in a real browser: headless Chromium draws the canvas and plays, for a
Duel replay (the game's vector drawing), an RGB-frame replay (a game with ``render()`` only) and
observation frames.

Skipped where Chromium is not installed (Debian: ``apt-get install chromium``).
"""

import os
import shutil
import subprocess

import numpy as np
import pytest

from sb3_selfplay.games import make_game
from sb3_selfplay.replays import EpisodeRecorder, make_replay, render_html

EVIL = "</script><img src=x onerror=alert(1)>"


def find_chromium():
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    return "/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None


CHROMIUM = find_chromium()
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium not installed (apt-get install chromium)")


def chromium(tmp_path, *args, timeout=90):
    """Run headless Chromium on a fresh profile; return stdout."""
    profile = tmp_path / "chromium-profile"
    cmd = [
        CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--disable-dev-shm-usage", "--hide-scrollbars", f"--user-data-dir={profile}", *args,
    ]  # fmt: skip
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def duel_page(tmp_path, max_steps=20):
    game = make_game("Duel-v0", 1, max_steps=max_steps, seed=0)
    rec = EpisodeRecorder(game)
    game.reset(seed=0)
    rec.reset()
    rng = np.random.default_rng(0)
    episodes = []
    while not episodes:
        actions = np.stack([rng.integers(0, k, (1, 2)) for k in (9, 2, 2, 2)], -1)
        actions[..., 3] = 1
        _, _, terminated, truncated, infos = game.step(actions)
        episodes = rec.step(terminated | truncated, infos)
    ep = episodes[0]
    meta = {"env_id": "Duel-v0", "opponent": EVIL, "learner_seat": 0, "outcome": "draw", "fps": 20}
    return render_html(make_replay(ep.frames, meta, ep.game_params), tmp_path / "duel.html"), len(ep.frames)


def body_attributes(dom):
    start = dom.index("<body")
    tag = dom[start : dom.index(">", start)]
    attrs = {}
    for part in tag.split()[1:]:
        if "=" in part:
            key, value = part.split("=", 1)
            attrs[key] = value.strip('"')
    return attrs


def test_duel_page_draws_frame_zero_and_escapes(tmp_path):
    page, _ = duel_page(tmp_path)
    dom = chromium(tmp_path, "--virtual-time-budget=1000", "--dump-dom", page.as_uri())
    attrs = body_attributes(dom)
    assert attrs.get("data-drawn") == "1", dom[:500]
    assert attrs["data-frame"] == "0"
    assert int(attrs["data-distinct-colours"]) >= 5  # arena, pillars, two agents, cones, ...
    assert "<img" not in dom  # the malicious opponent name became text, not markup
    assert "&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;" in dom
    assert "frame 1 / " in dom


def test_duel_page_plays_to_the_end(tmp_path):
    page, n_frames = duel_page(tmp_path)
    dom = chromium(tmp_path, "--virtual-time-budget=5000", "--dump-dom", page.as_uri() + "#play")
    attrs = body_attributes(dom)
    assert attrs["data-frame"] == str(n_frames - 1)  # 20 fps for 5 virtual seconds > n_frames
    assert f"frame {n_frames} / {n_frames}" in dom


def test_duel_screenshot_has_arena_colours(tmp_path):
    image = pytest.importorskip("PIL.Image", reason="Pillow not installed (needed to read the screenshot)")
    page, _ = duel_page(tmp_path)
    shot = tmp_path / "shot.png"
    chromium(tmp_path, f"--screenshot={shot}", "--window-size=800,700", "--virtual-time-budget=1000", page.as_uri())
    with image.open(shot) as im:
        colours = {c for _, c in im.convert("RGB").getcolors(1 << 20)}
    assert len(colours) > 20
    for colour in [(235, 235, 225), (110, 110, 110), (40, 90, 220), (220, 60, 40)]:  # arena, pillar, agents
        assert colour in colours, colour


def test_observation_replay_draws_bars(tmp_path):
    frames = [{"obs": np.sin(np.arange(12) + t).round(3).tolist(), "action": [t % 3]} for t in range(8)]
    page = render_html(make_replay(frames, {"env_id": "CartPoleNoVel-v1", "opponent": EVIL}), tmp_path / "obs.html")
    dom = chromium(tmp_path, "--virtual-time-budget=1000", "--dump-dom", page.as_uri())
    attrs = body_attributes(dom)
    assert attrs.get("data-drawn") == "1" and int(attrs["data-distinct-colours"]) >= 3
    assert "<img" not in dom


class Blink:
    """A game with ``render()`` only (no vector drawing): a green block crossing a 40x30 picture."""

    num_envs = 1

    def __init__(self):
        self.t = 0

    def get_state(self, env_index=0):
        return {"step": self.t}

    def get_params(self):
        return {"speed": 4}

    def render(self, env_index=0):
        img = np.full((30, 40, 3), 250, np.uint8)
        x = (self.t * 4) % 36
        img[10:20, x : x + 4] = (0, 160, 60)
        img[0, :] = (90, 0, 90)
        return img


def rgb_page(tmp_path, n_steps=8):
    game = Blink()
    rec = EpisodeRecorder(game)
    rec.reset()
    episodes = []
    for t in range(1, n_steps + 1):
        game.t = t % n_steps
        episodes += rec.step(np.array([t == n_steps]), [{"episode": {"l": t}}])
    (ep,) = episodes
    assert rec.rgb_frames and len(ep.views) == n_steps
    meta = {"env_id": "Blink-v0", "opponent": EVIL, "outcome": "win", "fps": 20}
    return render_html(make_replay(ep.frames, meta, ep.game_params, views=ep.views), tmp_path / "rgb.html"), n_steps


def test_rgb_frame_replay_draws_and_plays(tmp_path):
    page, n_frames = rgb_page(tmp_path)
    dom = chromium(tmp_path, "--virtual-time-budget=1000", "--dump-dom", page.as_uri())
    attrs = body_attributes(dom)
    assert attrs.get("data-drawn") == "1", dom[:500]
    assert attrs["data-frame"] == "0" and int(attrs["data-distinct-colours"]) >= 2  # paper and block, read back
    assert "<img" not in dom and "&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;" in dom
    dom = chromium(tmp_path, "--virtual-time-budget=5000", "--dump-dom", page.as_uri() + "#play")
    assert body_attributes(dom)["data-frame"] == str(n_frames - 1) and f"frame {n_frames} / {n_frames}" in dom


def test_rgb_frame_screenshot_shows_the_game_picture(tmp_path):
    image = pytest.importorskip("PIL.Image", reason="Pillow not installed (needed to read the screenshot)")
    page, _ = rgb_page(tmp_path)
    shot = tmp_path / "shot.png"
    chromium(tmp_path, f"--screenshot={shot}", "--window-size=800,700", "--virtual-time-budget=1000", page.as_uri())
    with image.open(shot) as im:
        colours = {c for _, c in im.convert("RGB").getcolors(1 << 20)}
    for colour in [(250, 250, 250), (0, 160, 60), (90, 0, 90)]:  # enlarged without smoothing: exact colours
        assert colour in colours, colour
