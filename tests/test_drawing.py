"""Vector drawings (games/drawing.py), the numpy rasteriser, and Duel's one renderer."""

import json
import math

import numpy as np
import pytest

from sb3_selfplay.games import make_game
from sb3_selfplay.games.drawing import Drawing, rasterize
from sb3_selfplay.games.duel.render import SEAT_COLOURS, draw_duel

RED, BLUE, WHITE = (255, 0, 0), (0, 0, 255), (255, 255, 255)


def colour_count(img, colour):
    return int(np.all(img == np.array(colour, np.uint8), axis=-1).sum())


# ----------------------------------------------------------------------------- primitives


def test_rect_covers_exactly_its_pixels_and_scales():
    d = Drawing(20, 10, background=WHITE).rect(2, 3, 5, 4, fill=RED)
    img = rasterize(d)
    assert img.shape == (10, 20, 3) and img.dtype == np.uint8
    expected = np.zeros((10, 20), bool)
    expected[3:7, 2:7] = True
    np.testing.assert_array_equal(np.all(img == RED, axis=-1), expected)
    big = rasterize(d, width=40)  # twice the size: the same rectangle, twice as wide and high
    assert big.shape == (20, 40, 3) and colour_count(big, RED) == 4 * 20
    assert np.all(big[6:14, 4:14] == RED)


def test_circle_polygon_polyline_and_alpha():
    d = Drawing(100, 100, background=WHITE)
    d.circle(50, 50, 20, fill=RED)
    img = rasterize(d)
    assert abs(colour_count(img, RED) - math.pi * 20**2) < 0.02 * math.pi * 20**2
    assert tuple(img[50, 50]) == RED and tuple(img[50, 75]) == WHITE

    # even-odd: a square with a square hole (one polygon, outer then inner outline)
    ring = [(10, 10), (90, 10), (90, 90), (10, 90), (10, 10), (30, 30), (70, 30), (70, 70), (30, 70), (30, 30)]
    img = rasterize(Drawing(100, 100, background=WHITE).polygon(ring, fill=BLUE))
    assert tuple(img[20, 20]) == BLUE and tuple(img[50, 50]) == WHITE and tuple(img[5, 5]) == WHITE
    assert colour_count(img, BLUE) == 80 * 80 - 40 * 40

    img = rasterize(Drawing(100, 100, background=WHITE).line(10, 50, 90, 50, stroke=RED, width=4))
    assert np.all(img[48:52, 10:91] == RED) and tuple(img[45, 50]) == WHITE and tuple(img[54, 50]) == WHITE

    # alpha blends over what lies below: 25 % blue over white
    img = rasterize(Drawing(10, 10, background=WHITE).rect(0, 0, 10, 10, fill=BLUE, alpha=0.25))
    assert tuple(img[5, 5]) == (191, 191, 255)


def test_text_is_drawn_and_anchored():
    d = Drawing(120, 40, background=WHITE).text(60, 20, "step 12", size=12, fill=(0, 0, 0), align="center")
    img = rasterize(d)
    ink = np.argwhere(np.all(img == 0, axis=-1))
    assert len(ink) > 30
    rows, cols = ink[:, 0], ink[:, 1]
    assert abs((cols.min() + cols.max()) / 2 - 60) <= 2 and abs((rows.min() + rows.max()) / 2 - 20) <= 2
    assert rasterize(Drawing(120, 40).text(60, 20, "", fill=(0, 0, 0))).min() == 255  # empty text: nothing


def test_json_round_trip_and_validation():
    d = Drawing(64, 48, background=(1, 2, 3))
    d.circle(10, 10, 5, fill=RED, stroke=BLUE, width=2, alpha=0.5).rect(1, 2, 3, 4, stroke=RED)
    d.polygon(np.array([[0, 0], [10, 0], [5, 8]]), fill=BLUE).polyline([(0, 0), (5, 5), (9, 1)], stroke=RED)
    d.text(3, 40, "hi  there\n", size=10, align="right")
    data = json.loads(json.dumps(d.to_dict()))
    again = Drawing.from_dict(data)
    assert again == d and again.to_dict() == data and data["shapes"][-1]["text"] == "hi there"
    np.testing.assert_array_equal(rasterize(again), rasterize(d))
    bad = [
        ({**data, "shapes": [{"type": "script", "x": 1}]}, "unknown type 'script'"),
        ({**data, "shapes": [{"type": "circle", "x": 1, "y": 1}]}, "lacks 'r'"),
        ({**data, "shapes": [{"type": "circle", "x": 1, "y": 1, "r": 2, "fill": "red"}]}, "fill must be an RGB triple"),
        ({**data, "shapes": [{"type": "rect", "x": 1, "y": 1, "w": 2, "h": float("nan")}]}, "h must be a finite number"),
        ({**data, "shapes": [{"type": "polygon", "points": [[0, 0], [1, 1]]}]}, "at least 3"),
        ({**data, "shapes": [{"type": "text", "x": 0, "y": 0, "text": "a", "align": "justify"}]}, "align"),
        ({**data, "shapes": [{"type": "circle", "x": 1, "y": 1, "r": 2, "alpha": 2}]}, "alpha must be in"),
        ({**data, "width": 0}, "width must be in"),
        ({"width": 4, "height": 4}, "lacks shapes"),
    ]
    for broken, message in bad:
        with pytest.raises(ValueError, match=message) as err:
            Drawing.from_dict(broken)
        assert "\n" not in str(err.value)


# ----------------------------------------------------------------------------- Duel


def duel_in_play(n_envs=2, steps=12, seed=0, **params):
    game = make_game("Duel-v0", n_envs, seed=seed, **params)
    game.reset(seed=seed)
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        actions = np.stack([rng.integers(0, k, (n_envs, 2)) for k in (9, 2, 2, 2)], -1)
        actions[..., 3] = 1  # fire whenever possible: shots appear
        game.step(actions)
    return game


def test_duel_render_is_its_drawing_rasterised():
    """render() and the replay path (state -> drawing -> JSON -> rasterise) give the same image."""
    game = duel_in_play(render_size=200)
    for i in range(game.num_envs):
        state = json.loads(json.dumps(game.get_state(i)))  # as a replay file holds it
        drawing = game.draw_state(state)
        assert isinstance(drawing, Drawing) and (drawing.width, drawing.height) == (200, 200)
        via_json = Drawing.from_dict(json.loads(json.dumps(drawing.to_dict())))
        np.testing.assert_array_equal(game.render(i), rasterize(via_json))
        np.testing.assert_array_equal(game.render(i), rasterize(draw_duel(state, game.get_params(), 200)))


def test_duel_drawing_shows_the_game():
    game = duel_in_play(n_envs=1, steps=0)
    state = game.get_state(0)
    params = game.get_params()
    img = rasterize(draw_duel(state, params, 256))
    for colour in [(235, 235, 225), (110, 110, 110), *SEAT_COLOURS]:  # arena, pillars, both agents
        assert colour_count(img, colour) > 20, colour
    # the agents are where the state says (y up in the world, down in the picture)
    s = 256 / state["arena_size"]
    for seat, agent in enumerate(state["agents"]):
        col, row = int(agent["x"] * s), int((state["arena_size"] - agent["y"]) * s)
        assert tuple(img[row, col]) == SEAT_COLOURS[seat] or tuple(img[row, col]) == (255, 255, 255)  # body or heading
    # the learner's outline is gold only when asked
    gold = (255, 215, 0)
    assert colour_count(img, gold) == 0
    assert colour_count(rasterize(draw_duel(state, params, 256, highlight_seat=1)), gold) > 10
    # a dead agent's health bar is empty; a hit draws the orange shot
    hurt = json.loads(json.dumps(state))
    hurt["agents"][1]["health"] = 0.0
    hurt["agents"][0].update(shot=True, hit=True)
    img2 = rasterize(draw_duel(hurt, params, 256))
    assert colour_count(img2, (255, 170, 0)) > 20
    assert colour_count(img2[:8], SEAT_COLOURS[1]) == 0 and colour_count(img2[:8], SEAT_COLOURS[0]) > 100


def test_duel_field_of_view_is_cut_by_pillars():
    params = make_game("Duel-v0", 1).get_params()
    agent = {"x": 2.0, "y": 5.0, "angle": 0.0, "health": 100.0, "shot": False, "hit": False}
    away = {"x": 9.0, "y": 9.5, "angle": math.pi, "health": 100.0, "shot": False, "hit": False}
    state = {"arena_size": 10.0, "view_range": 8.0, "fov": 60.0, "agents": [agent, away], "pillars": []}
    open_view = rasterize(draw_duel(state, params, 200))
    blocked = rasterize(draw_duel({**state, "pillars": [{"x": 4.0, "y": 5.0, "r": 0.8}]}, params, 200))
    behind = (100, 140)  # row, col of world point (7, 5): in view, behind the pillar at (4, 5)
    tinted = tuple(open_view[behind])
    assert tinted != (235, 235, 225) and tuple(blocked[behind]) == (235, 235, 225)
