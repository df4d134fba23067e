"""The verifier's typo test: rapidfuzz's edit distance gives what Helios's own did."""

from __future__ import annotations

import random
import string

import pytest

from helios.cache.wording import typo


def osa_distance(a: str, b: str) -> int:
    """Optimal string alignment, the dynamic programme ``typo`` used before rapidfuzz."""
    rows = [[i + j if i * j == 0 else 0 for j in range(len(b) + 1)] for i in range(len(a) + 1)]
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            rows[i][j] = min(
                rows[i - 1][j] + 1, rows[i][j - 1] + 1, rows[i - 1][j - 1] + (a[i - 1] != b[j - 1])
            )
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                rows[i][j] = min(rows[i][j], rows[i - 2][j - 2] + 1)
    return rows[-1][-1]


def reference_typo(a: str, b: str) -> bool:
    if a[0] != b[0] or min(len(a), len(b)) < 4 or max(len(a), len(b)) < 5:
        return False
    short, long = sorted((a, b), key=len)
    if long.startswith(short) and len(long) - len(short) <= 3:
        return True
    limit = 2 if len(short) >= 8 else 1
    return len(long) - len(short) <= limit and osa_distance(a, b) <= limit


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ("recieve", "receive", True),  # adjacent transposition: one edit
        ("column", "colunm", True),
        ("python", "pythonic", True),  # derived
        ("dataset", "datsaet", True),
        ("invoice", "involve", False),  # two edits in a short word
        ("configuration", "configuratoin", True),
        ("configuration", "konfiguration", False),  # first letters differ
        ("transform", "transfer", True),  # two edits in a long word
        ("transform", "translate", False),
        ("mail", "main", False),  # too short to call a typo
    ],
)
def test_typo(a: str, b: str, expected: bool) -> None:
    assert typo(a, b) is expected
    assert typo(b, a) is expected


def test_typo_agrees_with_the_hand_written_distance() -> None:
    rng = random.Random(0)
    letters = string.ascii_lowercase[:6]  # few letters: many near pairs
    for _ in range(20_000):
        a = "".join(rng.choices(letters, k=rng.randint(4, 11)))
        b = list(a)
        for _ in range(rng.randint(1, 3)):
            position = rng.randrange(len(b))
            edit = rng.randrange(4)
            if edit == 0:
                b[position] = rng.choice(letters)
            elif edit == 1:
                b.insert(position, rng.choice(letters))
            elif edit == 2 and len(b) > 1:
                del b[position]
            elif position + 1 < len(b):
                b[position], b[position + 1] = b[position + 1], b[position]
        assert typo(a, "".join(b)) == reference_typo(a, "".join(b)), (a, "".join(b))
