"""What one measured run yields: latency percentiles by nearest rank."""

from __future__ import annotations

import pytest

from bench.load import percentile


@pytest.mark.parametrize(("values", "q", "expected"), [
    (range(1, 11), 50, 5),  # the 5th of 10: ceil(0.5 * 10)
    (range(1, 11), 90, 9),
    (range(1, 11), 99, 10),
    (range(1, 101), 99, 99),
    (range(1, 101), 50, 50),
    (range(1, 5), 50, 2),
    ([7.0], 99, 7.0),
])
def test_a_percentile_is_the_value_of_nearest_rank(values, q, expected):
    assert percentile(list(values), q) == expected


def test_no_values_have_no_percentile():
    assert percentile([], 50) != percentile([], 50)  # NaN
