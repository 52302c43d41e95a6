"""Search beyond the grid: a seeded random sample of configurations from a declared space (``space``), and
successive halving, which trains every configuration briefly and only the best ones to the full budget
(``halving``)."""
