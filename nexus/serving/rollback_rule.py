"""The automatic-rollback rule, shared by the local canary router and the KServe canary guard.

Example:
    >>> champion = VersionHealth(requests=200, error_rate=0.01, p95_seconds=0.020)
    >>> challenger = VersionHealth(requests=40, error_rate=0.10, p95_seconds=0.021)
    >>> rollback_reason(champion, challenger, min_requests=20, max_error_rate_margin=0.05, max_p95_margin=0.5)
    "challenger error rate 10.0% exceeds the champion's 1.0% by more than 5.0%"
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class VersionHealth:
    """One version over the rule's window: requests answered, the share that failed, p95 latency."""

    requests: float
    error_rate: float
    p95_seconds: float | None = None


def _digits_that_show_the_gap(rate: float, limit: float) -> int:
    """Decimals (1 to 4) at which ``rate`` prints above ``limit``: 5.03% against 5% must not read 5.0%."""
    for digits in range(1, 4):
        if round(rate * 100, digits) > round(limit * 100, digits):
            return digits
    return 4


def rollback_reason(
    champion: VersionHealth | None,
    challenger: VersionHealth | None,
    min_requests: float,
    max_error_rate_margin: float,
    max_p95_margin: float,
) -> str | None:
    """Why the challenger should be rolled back, or ``None``.

    Errors count once the challenger has ``min_requests`` (against the champion's rate, 0 without
    traffic); latency counts once both have ``min_requests`` and both p95s are known.
    """
    if challenger is None or challenger.requests < min_requests:
        return None
    champion_error = champion.error_rate if champion else 0.0
    if challenger.error_rate > champion_error + max_error_rate_margin:
        digits = _digits_that_show_the_gap(challenger.error_rate, champion_error + max_error_rate_margin)
        return (
            f"challenger error rate {challenger.error_rate:.{digits}%} exceeds the champion's "
            f"{champion_error:.{digits}%} by more than {max_error_rate_margin:.{digits}%}"
        )
    if champion is None or champion.requests < min_requests:
        return None
    if champion.p95_seconds is None or challenger.p95_seconds is None:
        return None
    if challenger.p95_seconds > champion.p95_seconds * (1 + max_p95_margin):
        return (
            f"challenger p95 latency {challenger.p95_seconds * 1000:.1f} ms exceeds the champion's "
            f"{champion.p95_seconds * 1000:.1f} ms by more than {max_p95_margin:.0%}"
        )
    return None
