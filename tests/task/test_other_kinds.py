"""Regression/embeddings (cosine, neighbour ranks), images (PSNR), sequences (exact match, edit distance)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from harness.task import image, regression, sequence


def test_embeddings_that_keep_direction_and_neighbours():
    rng = np.random.default_rng(0)
    g = rng.standard_normal((8, 16))
    found = regression.score([g], [g * 2.0])  # scaled: same direction, same neighbours
    assert found["cosine_min"] == pytest.approx(1.0) and found["nn_rank_correlation"] == pytest.approx(1.0)
    assert found["nn_top1_agreement"] == 1.0


def test_noisy_embeddings_lose_cosine_and_rank_correlation():
    rng = np.random.default_rng(0)
    g = rng.standard_normal((8, 16))
    found = regression.score([g], [g + rng.standard_normal(g.shape) * 2.0])
    assert found["cosine_min"] < 0.8 and found["nn_rank_correlation"] < 0.9


def test_neighbour_metrics_need_three_rows():
    found = regression.score([np.ones((2, 3))], [np.ones((2, 3))])
    assert found["nn_rank_correlation"] is None and found["cosine_min"] == pytest.approx(1.0)


def test_spearman_fallback_matches_scipy():
    rng = np.random.default_rng(1)
    u, v = rng.standard_normal(20), rng.standard_normal(20)
    from scipy.stats import spearmanr
    saved, regression.spearmanr = regression.spearmanr, None
    try:
        ours = regression._spearman(u, v)
    finally:
        regression.spearmanr = saved
    assert ours == pytest.approx(spearmanr(u, v).statistic)


def test_psnr_of_known_noise():
    g = np.linspace(0, 1, 1000).reshape(1, 1, 10, 100)
    a = g + 0.01  # mse 1e-4, peak 1: 40 dB
    found = image.score([g], [a])
    assert found["psnr_db_min"] == pytest.approx(40.0) and found["identical"] == 0
    assert image.psnr(g, g) == math.inf
    assert image.score([g], [g])["identical"] == 1


@pytest.mark.parametrize("a, b, distance", [([1, 2, 3], [1, 2, 3], 0), ([1, 2, 3], [1, 3], 1), ([], [4, 5], 2),
                                            ([1, 2, 3, 4], [2, 1, 3, 5], 3), ([7, 8], [8, 7, 9], 2)])
def test_edit_distance(a, b, distance):
    assert sequence.edit_distance(np.array(a), np.array(b)) == distance


def test_sequences_with_padding():
    g = np.array([[5, 6, 7, 0, 0], [1, 2, 0, 0, 0]])
    a = np.array([[5, 6, 7, 0, 9], [1, 3, 0, 0, 0]])  # after the first pad nothing counts
    found = sequence.score([g], [a], pad=0)
    assert found["exact_match_rate"] == 0.5 and found["max_edit_distance"] == 1
    assert found["normalized_edit_distance"] == pytest.approx(1 / 5)
