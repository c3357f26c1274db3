"""Word vectors from IMDb's own reviews (train + unlabeled): PPMI co-occurrence + truncated SVD.

Levy, Goldberg & Dagan (2015) show this matches word2vec on similarity tasks when the context
distribution is smoothed (alpha 0.75) and the singular values are square-rooted. It needs two sparse
matrix passes instead of minutes of SGD, so the LSTM starts from vectors that already know "dreadful"
is like "awful" without spending its CPU budget learning it. No I/O.
"""

from __future__ import annotations

import numpy as np
import torch

FIRST_WORD_ID = 2  # 0 is padding, 1 unknown: neither gets co-occurrences


def cooccurrences(ids: np.ndarray, review_of: np.ndarray, vocab_size: int, window: int = 5) -> torch.Tensor:
    """Symmetric sparse counts of word pairs at most `window` apart within a review, weighted 1/distance."""
    total: torch.Tensor | None = None
    for distance in range(1, window + 1):
        left, right = ids[:-distance], ids[distance:]
        keep = (review_of[:-distance] == review_of[distance:]) & (left >= FIRST_WORD_ID) & (right >= FIRST_WORD_ID)
        pairs = torch.from_numpy(np.stack([left[keep], right[keep]]))
        weights = torch.full((pairs.shape[1],), 1.0 / distance, dtype=torch.float32)
        counts = torch.sparse_coo_tensor(pairs, weights, (vocab_size, vocab_size), check_invariants=False).coalesce()
        total = counts if total is None else (total + counts).coalesce()
    if total is None:
        empty = torch.zeros((2, 0), dtype=torch.long)
        return torch.sparse_coo_tensor(empty, torch.zeros(0), (vocab_size, vocab_size), check_invariants=False)
    return (total + total.t()).coalesce()  # both orders: "great film" counts for film's context too


def cooccurrence_counts(ids: np.ndarray, review_of: np.ndarray, vocab_size: int, window: int = 5) -> list[torch.Tensor]:
    """For each distance 1..`window`, how often each word pair lies that far apart within a review (sparse,
    int64): whole numbers, so the counts of the ranks' parts of a channel add up exactly to the channel's."""
    counts = []
    for distance in range(1, window + 1):
        left, right = ids[:-distance], ids[distance:]
        keep = (review_of[:-distance] == review_of[distance:]) & (left >= FIRST_WORD_ID) & (right >= FIRST_WORD_ID)
        pairs = torch.from_numpy(np.stack([left[keep], right[keep]]))
        ones = torch.ones(pairs.shape[1], dtype=torch.int64)
        counts.append(torch.sparse_coo_tensor(pairs, ones, (vocab_size, vocab_size), check_invariants=False).coalesce())
    return counts


def weighted_cooccurrences(counts: list[torch.Tensor]) -> torch.Tensor:
    """`cooccurrences` from `cooccurrence_counts`, bit for bit: coalescing adds a pair's float32 1/distance
    weights one at a time, so n of them sum to the n-th running sum of that weight (a cumulative sum), and
    the distances are then added in order as `cooccurrences` adds them."""
    total: torch.Tensor | None = None
    for distance, count in enumerate(counts, start=1):
        occurrences = count.values().numpy()
        running = np.cumsum(
            np.full(max(1, int(occurrences.max(initial=1))), 1.0 / distance, np.float32), dtype=np.float32
        )
        values = torch.from_numpy(running[occurrences - 1])
        weights = torch.sparse_coo_tensor(count.indices(), values, count.shape, check_invariants=False).coalesce()
        total = weights if total is None else (total + weights).coalesce()
    if total is None:
        raise ValueError("co-occurrences need at least one distance")
    return (total + total.t()).coalesce()


def ppmi(counts: torch.Tensor, alpha: float = 0.75) -> torch.Tensor:
    """Positive pointwise mutual information, with the context distribution raised to `alpha`."""
    indices, values = counts.indices(), counts.values().double()
    word_totals = torch.zeros(counts.shape[0], dtype=torch.float64).index_add_(0, indices[0], values)
    context = word_totals**alpha
    pmi = torch.log(values * context.sum()) - torch.log(word_totals[indices[0]]) - torch.log(context[indices[1]])
    positive = pmi > 0
    kept = torch.sparse_coo_tensor(indices[:, positive], pmi[positive].float(), counts.shape, check_invariants=False)
    return kept.coalesce()


def ppmi_svd_vectors(
    ids: np.ndarray, review_of: np.ndarray, vocab_size: int, dim: int, window: int = 5, seed: int = 0
) -> np.ndarray:
    """One `dim`-sized vector per id (rows 0 and 1 zero), scaled to unit variance per dimension."""
    return vectors_from_counts(cooccurrences(ids, review_of, vocab_size, window), dim, seed)


def vectors_from_counts(counts: torch.Tensor, dim: int, seed: int = 0) -> np.ndarray:
    """`ppmi_svd_vectors` from co-occurrence counts already made (summed over the ranks of a job)."""
    vocab_size = counts.shape[0]
    matrix = ppmi(counts)
    rank = min(dim, vocab_size - 1)
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)  # svd_lowrank draws a random projection
    try:
        left, singular, _ = torch.svd_lowrank(matrix, q=rank, niter=4)
    finally:
        torch.random.set_rng_state(generator_state)
    vectors = (left * singular.sqrt()).numpy()
    vectors = np.pad(vectors, ((0, 0), (0, dim - rank)))
    vectors /= vectors[FIRST_WORD_ID:].std(axis=0, keepdims=True) + 1e-8
    vectors[:FIRST_WORD_ID] = 0.0
    return vectors.astype(np.float32)
