"""``benchmarks/transfer_real.py``: the calibrated threshold is the F1-best cut of the few-shot
pixels, also for an under-confident detector whose probabilities all lie below 0.5."""

from __future__ import annotations

from types import ModuleType

import numpy as np
import pytest

from fixtures_scripts import load_script


def bench() -> ModuleType:
    return load_script("benchmarks/transfer_real.py")


def f1(pred: np.ndarray, truth: np.ndarray) -> float:
    tp = int((pred & truth).sum())
    return 2 * tp / (int(pred.sum()) + int(truth.sum()))


def test_under_confident_ranking_gets_a_threshold_below_half() -> None:
    prob = np.array([0.3, 0.2, 0.1, 0.05], np.float32)
    truth = np.array([True, True, False, False])
    threshold = bench().f1_threshold(prob, truth)
    assert threshold < 0.5
    assert ((prob > threshold) == truth).all()


def test_ties_are_never_split_and_no_change_keeps_half() -> None:
    module = bench()
    prob = np.array([0.4, 0.4, 0.1], np.float32)
    truth = np.array([True, False, False])
    assert module.f1_threshold(prob, truth) == pytest.approx(0.25)
    assert module.f1_threshold(prob, np.zeros(3, bool)) == 0.5


def test_threshold_reaches_the_best_f1_of_any_cut() -> None:
    rng = np.random.default_rng(0)
    truth = rng.random(500) < 0.2
    prob = np.clip(0.3 * truth + rng.normal(0.2, 0.1, 500), 0.001, 0.999).round(2)
    threshold = bench().f1_threshold(prob.astype(np.float32), truth)
    best = max(f1(prob > t, truth) for t in np.r_[0.0, np.unique(prob)])
    assert 0 < threshold < 1
    assert f1(prob > threshold, truth) == best
