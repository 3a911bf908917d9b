"""tinyharden's compiled Square attack (`square`): schedule, budget, bounds, determinism, strength."""
from __future__ import annotations

import numpy as np
import pytest

from tinyharden.attacks import evaluation as ev


@pytest.fixture(scope="module")
def undefended(linear16, prototypes):
    """The shared linear classifier and 48 test images, only those it classifies correctly."""
    x, y = prototypes(48, 2)
    ok = np.argmax(linear16.predict(x), -1) == y
    return linear16, x[ok], y[ok]


def test_p_schedule_and_square_side_follow_the_paper():
    from tinyharden.attacks.square_graph import p_schedule, side

    # Halvings after 10, 50, 200, 500, 1000, ... of 10,000 iterations, rescaled to the budget.
    assert [p_schedule(0.8, i, 10000) for i in (1, 10, 11, 50, 51, 200, 201, 9999)] == [
        0.8, 0.8, 0.4, 0.4, 0.2, 0.2, 0.1, 0.8 / 512]
    assert p_schedule(0.05, 1, 1000) == 0.05 and p_schedule(0.05, 2, 1000) == 0.025  # 2/1000 = 20/10000
    assert side(0.05, 32, 32) == 7 and side(1e-6, 32, 32) == 1 and side(1.0, 32, 32) == 31


def test_square_drives_an_undefended_model_near_zero_within_eps_and_budget(undefended):
    from tinyharden.attacks.square_graph import SquareGraph

    target, x, y = undefended
    eps, budget = 16 / 255, 300
    out = SquareGraph(max_iter=budget).run(target, x, y, eps=eps, norm="linf", seed=0, batch_size=16)
    acc = np.mean(np.argmax(target.predict(out.x_adv), -1) == y)
    assert acc <= 0.1, acc
    assert ev.norms(out.x_adv - x, "linf").max() <= eps * (1 + ev.REL_TOL) + ev.ABS_TOL
    assert out.x_adv.min() >= 0.0 and out.x_adv.max() <= 1.0
    # One query for the start and one per iteration while an image resists: never above the budget.
    assert len(x) <= out.queries <= budget * len(x)
    assert 1 <= out.info["queries_per_image_max"] <= budget


def test_queries_stop_once_an_image_is_fooled_and_the_budget_binds(undefended):
    from tinyharden.attacks.square_graph import SquareGraph

    target, x, y = undefended
    tiny = SquareGraph(max_iter=20).run(target, x, y, eps=1 / 255, norm="linf", seed=0)
    assert tiny.info["queries_per_image_max"] == 20  # some image resists 1/255: it spends the whole budget
    big = SquareGraph(max_iter=400).run(target, x, y, eps=32 / 255, norm="linf", seed=0)
    assert big.queries < 400 * len(x) / 4  # fooled images stop costing queries


def test_square_is_deterministic_for_a_seed(undefended):
    from tinyharden.attacks.square_graph import SquareGraph

    target, x, y = undefended
    runs = [SquareGraph(max_iter=40).run(target, x[:16], y[:16], eps=8 / 255, norm="linf", seed=s) for s in (3, 3, 4)]
    assert np.array_equal(runs[0].x_adv, runs[1].x_adv) and runs[0].queries == runs[1].queries
    assert not np.array_equal(runs[0].x_adv, runs[2].x_adv)


def test_square_on_a_scores_only_target_matches_the_keras_target(undefended):
    from tinyharden.attacks.square_graph import SquareGraph

    target, x, y = undefended

    class ScoresOnly:  # a Target with predict only, like a .tflite file
        name, differentiable = "scores-only", False
        input_shape, num_classes = target.input_shape, target.num_classes

        def predict(self, a):
            return target.predict(a)

    a = SquareGraph(max_iter=30).run(target, x[:12], y[:12], eps=8 / 255, norm="linf", seed=1)
    b = SquareGraph(max_iter=30).run(ScoresOnly(), x[:12], y[:12], eps=8 / 255, norm="linf", seed=1)
    assert np.allclose(a.x_adv, b.x_adv, atol=1e-6) and a.queries == b.queries


def test_square_is_as_strong_as_arts_on_the_same_budget(undefended):
    from tinyharden.attacks.square import Square
    from tinyharden.attacks.square_graph import SquareGraph

    target, x, y = undefended
    acc = {}
    for cls in (SquareGraph, Square):
        adv = cls(max_iter=100).run(target, x, y, eps=4 / 255, norm="linf", seed=0).x_adv
        acc[cls.__name__] = np.mean(np.argmax(target.predict(adv), -1) == y)
    assert acc["SquareGraph"] <= acc["Square"] + 0.15, acc
