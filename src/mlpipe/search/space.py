"""``sweep.random``: a seeded random sample of configurations from a declared space.

Each key of the space has a distribution: ``log_uniform: [low, high]`` and ``uniform: [low, high]`` (floats, kept
to 4 significant digits), ``int: [low, high]`` (both ends included), or ``choice: [value, ...]``. Sample ``i`` is
drawn from a generator seeded by ``(seed, i)`` alone, so adding samples (a larger ``n``) adds runs and leaves the
others' values, and run ids (``sample-07``), as they were.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

RANGES = ("log_uniform", "uniform", "int")
DISTRIBUTIONS = (*RANGES, "choice")
DIGITS = 4  # significant digits of a sampled float: readable in run configs and tables


class SpaceError(ValueError):
    """A space that cannot be sampled; the message is one line naming the key."""


def check_distribution(key: str, distribution: Any) -> None:
    """One line naming ``sweep.random.space.<key>`` for an unknown distribution or an empty range."""
    where = f"sweep.random.space.{key}"
    if not isinstance(distribution, Mapping) or len(distribution) != 1:
        raise SpaceError(f"{where}: give one distribution, e.g. {{log_uniform: [1.0e-4, 0.3]}}")
    ((kind, arguments),) = distribution.items()
    if kind not in DISTRIBUTIONS:
        raise SpaceError(f"{where}: unknown distribution {kind!r}; allowed: {', '.join(DISTRIBUTIONS)}")
    if kind == "choice":
        if not isinstance(arguments, list) or not arguments:
            raise SpaceError(f"{where}.choice: give a non-empty list of values")
        return
    if not isinstance(arguments, list) or len(arguments) != 2 or not all(_is_number(end) for end in arguments):
        raise SpaceError(f"{where}.{kind}: give [low, high], two numbers")
    low, high = arguments
    if (kind == "int" and not (float(low).is_integer() and float(high).is_integer())) or (
        low > high if kind == "int" else low >= high
    ):
        raise SpaceError(f"{where}.{kind}: [{low}, {high}] is an empty range")
    if kind == "log_uniform" and low <= 0:
        raise SpaceError(f"{where}.log_uniform: [{low}, {high}] must lie above 0")


def bounds(distribution: Mapping) -> list:
    """The values a distribution can take at its ends (a choice: all of them), for checking against the schema."""
    ((kind, arguments),) = distribution.items()
    return [int(end) for end in arguments] if kind == "int" else list(arguments)


def sample(space: Mapping[str, Mapping], seed: int, index: int) -> dict[str, Any]:
    """The values of sample ``index``: the same whatever else is sampled."""
    rng = np.random.Generator(np.random.PCG64([seed, index]))
    values = {}
    for key, distribution in space.items():
        ((kind, arguments),) = distribution.items()
        if kind == "choice":
            values[key] = arguments[int(rng.integers(len(arguments)))]
        elif kind == "int":
            values[key] = int(rng.integers(int(arguments[0]), int(arguments[1]) + 1))
        elif kind == "uniform":
            values[key] = _rounded(rng.uniform(*arguments))
        else:
            values[key] = _rounded(math.exp(rng.uniform(math.log(arguments[0]), math.log(arguments[1]))))
    return values


def sample_id(index: int) -> str:
    return f"sample-{index:02d}"


def _rounded(value: float) -> float:
    return float(f"{value:.{DIGITS}g}")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
