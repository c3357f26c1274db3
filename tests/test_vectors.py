"""sentiment.vectors: co-occurrence counts within reviews, positive PMI, and PPMI-SVD vectors in which
words used alike point alike."""

from __future__ import annotations

import numpy as np
import torch

from sentiment.vectors import cooccurrence_counts, cooccurrences, ppmi, ppmi_svd_vectors, weighted_cooccurrences

FIRST_WORD = 2  # ids 0 (padding) and 1 (unknown) get no vector


def corpus(reviews: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Reviews of words 2-5 ("praise") or 6-9 ("complaint"), never mixed: 2 and 3 share contexts, 2 and 6 do not."""
    rng = np.random.default_rng(seed)
    token_lists = [rng.integers(2, 6, 12) if n % 2 else rng.integers(6, 10, 12) for n in range(reviews)]
    ids = np.concatenate(token_lists).astype(np.int64)
    return ids, np.repeat(np.arange(reviews), 12)


def test_cooccurrences_stay_within_a_review() -> None:
    ids = np.array([2, 3, 4, 5], dtype=np.int64)
    counts = cooccurrences(ids, np.array([0, 0, 1, 1]), vocab_size=6, window=5).to_dense()
    assert counts[2, 3] > 0 and counts[4, 5] > 0
    assert counts[3, 4] == 0 and counts[2, 5] == 0  # neighbours in the array, but in different reviews


def test_ppmi_keeps_only_positive_association() -> None:
    ids, review_of = corpus(200)
    matrix = ppmi(cooccurrences(ids, review_of, vocab_size=10)).to_dense()
    assert (matrix >= 0).all()
    assert matrix[2, 3] > 0 and matrix[2, 7] == 0  # praise with praise; never with complaint


def test_words_used_alike_get_vectors_that_point_alike() -> None:
    ids, review_of = corpus(400)
    vectors = ppmi_svd_vectors(ids, review_of, vocab_size=10, dim=4, seed=1)
    assert vectors.shape == (10, 4) and vectors.dtype == np.float32
    assert not vectors[:FIRST_WORD].any()

    def cosine(a: int, b: int) -> float:
        return float(vectors[a] @ vectors[b] / (np.linalg.norm(vectors[a]) * np.linalg.norm(vectors[b])))

    assert cosine(2, 3) > 0.5 > cosine(2, 7)
    assert np.array_equal(vectors, ppmi_svd_vectors(ids, review_of, vocab_size=10, dim=4, seed=1))  # seeded


def test_counts_of_parts_summed_give_the_whole_channels_cooccurrences_bit_for_bit() -> None:
    rng = np.random.default_rng(3)
    ids = rng.integers(0, 40, 5000)
    review_of = np.repeat(np.arange(50), 100)
    whole = cooccurrences(ids, review_of, 40)
    cut = 2400  # where review 24 starts: a rank holds whole reviews
    parts = [cooccurrence_counts(ids[:cut], review_of[:cut], 40), cooccurrence_counts(ids[cut:], review_of[cut:], 40)]
    summed = weighted_cooccurrences([(first + second).coalesce() for first, second in zip(*parts, strict=True)])
    assert torch.equal(summed.indices(), whole.indices()) and torch.equal(summed.values(), whole.values())
