"""When a failed delivery is tried again: DESIGN.md's fixed schedule, scaled by
`MV_WEBHOOK_RETRY_BASE_SECONDS` (5 s by default: 5 s, 30 s, 2 min, 10 min, 30 min, 1 h,
2 h, 4 h; with 9 attempts the last comes about 7 h 43 min after the first)."""

RETRY_MULTIPLIERS: tuple[int, ...] = (1, 6, 24, 120, 360, 720, 1440, 2880)


def retry_delay_seconds(attempt: int, base_seconds: float) -> float:
    """Seconds to wait after attempt number `attempt` (1 = the first) failed, before attempt
    `attempt + 1`. Past the table's end the last step repeats, so a larger
    `MV_WEBHOOK_MAX_ATTEMPTS` keeps retrying every 2880 times the base."""
    if attempt < 1:
        raise ValueError("attempt numbers start at 1")
    if base_seconds < 0:
        raise ValueError("base_seconds must not be negative")
    multiplier = RETRY_MULTIPLIERS[min(attempt, len(RETRY_MULTIPLIERS)) - 1]
    return base_seconds * multiplier


def should_retry(attempt: int, max_attempts: int) -> bool:
    """Whether attempt number `attempt` having failed, another one is due."""
    if attempt < 1:
        raise ValueError("attempt numbers start at 1")
    return attempt < max_attempts
