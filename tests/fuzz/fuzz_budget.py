"""How many generated requests the fuzz suite sends, and how they were answered."""

from __future__ import annotations

import math
import os
from collections import Counter

OPERATIONS = 44
"""Operations in the API's document, about: ``MAO_FUZZ_REQUESTS`` is spread over them."""
REQUESTS_PER_EXAMPLE = 0.6
"""Requests sent per operation for each example allowed, measured (valid and invalid data;
Hypothesis stops early on operations with few distinct inputs)."""


def max_examples() -> int:
    """``MAO_FUZZ_EXAMPLES`` examples per operation, or as many as ``MAO_FUZZ_REQUESTS`` requests
    in all need (3000: about 115); 40 by default, about 1,000 requests."""
    if os.environ.get("MAO_FUZZ_EXAMPLES"):
        return int(os.environ["MAO_FUZZ_EXAMPLES"])
    if os.environ.get("MAO_FUZZ_REQUESTS"):
        return math.ceil(int(os.environ["MAO_FUZZ_REQUESTS"]) / (OPERATIONS * REQUESTS_PER_EXAMPLE))
    return 40


ANSWERS: Counter[str] = Counter()
"""Answers so far by class (2xx, 4xx, 5xx), for the summary line."""


def count(status: int) -> None:
    ANSWERS[f"{status // 100}xx"] += 1
