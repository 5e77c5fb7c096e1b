"""Running observation normalization for ES policies (as in ARS, Mania et al. 2018).

Statistics are frozen while an iteration's rollouts run (every member sees the
same normalization) and merged afterwards from per-member sums, in member
order, so the result does not depend on how the population was split across
workers.
"""

import dataclasses

import numpy as np

#: variances below this are treated as 1: a coordinate that has not moved yet
#: (or never moves) is left unscaled instead of divided by ~0.
MIN_VARIANCE = 1e-8
#: Keras' `Normalization` divides by max(√var, ε) with this ε; we do the same so
#: the exported model computes exactly what the rollouts computed.
EPSILON = 1e-7


@dataclasses.dataclass(frozen=True)
class ObsStats:
    """Count, mean and sum of squared deviations (M2) of all observations seen."""

    count: float
    mean: np.ndarray
    m2: np.ndarray

    @classmethod
    def empty(cls, dim):
        return cls(0.0, np.zeros(dim), np.zeros(dim))

    @property
    def variance(self):
        """Population variance, with `MIN_VARIANCE`-small entries (or no data) set to 1."""
        if self.count < 2:
            return np.ones_like(self.mean)
        var = self.m2 / self.count
        return np.where(var < MIN_VARIANCE, 1.0, var)

    def merge(self, count, total, total_sq):
        """These statistics plus a batch given by its count, sum and sum of squares.

        Chan et al.'s parallel update, float64.
        """
        count = float(count)
        if count <= 0:
            return self
        batch_mean = np.asarray(total, np.float64) / count
        batch_m2 = np.maximum(np.asarray(total_sq, np.float64) - count * batch_mean**2, 0.0)
        n = self.count + count
        delta = batch_mean - self.mean
        mean = self.mean + delta * (count / n)
        m2 = self.m2 + batch_m2 + delta**2 * (self.count * count / n)
        return ObsStats(n, mean, m2)

    def merge_members(self, counts, totals, totals_sq):
        """Merge per-member batches one by one, in member order (deterministic)."""
        stats = self
        for count, total, total_sq in zip(counts, totals, totals_sq):
            stats = stats.merge(count, total, total_sq)
        return stats

    def normalizer(self):
        """(mean, variance) float32 arrays as given to `keras.layers.Normalization`."""
        return self.mean.astype(np.float32), self.variance.astype(np.float32)
