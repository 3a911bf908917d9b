"""Parsers for command-line values shared by several commands (no TensorFlow).

    parse_bytes("64K", "--max-flash")   # 65536
"""
from __future__ import annotations

from tinyharden.errors import UserError



def parse_fraction(text: str | None, flag: str) -> float | None:
    """An accuracy bar: 0.8 or 80% -> 0.8."""
    if text is None:
        return None
    t = text.strip()
    try:
        v = float(t[:-1]) / 100 if t.endswith("%") else float(t)
    except ValueError:
        raise UserError(f"{flag} must be an accuracy such as 0.8 or 80%, got '{text}'") from None
    if not 0 <= v <= 1:
        raise UserError(f"{flag} {text} is outside [0, 1]; give a fraction such as 0.8 or a percentage such as 80%")
    return v


def parse_bytes(text: str | None, flag: str) -> int | None:
    """65536, 64K, 64KB or 64KiB -> 65536 (K, KB and KiB are all 1024 bytes, as on MCU datasheets)."""
    from tinyharden.units import parse_size

    if text is None:
        return None
    try:
        value = parse_size(text)
    except ValueError:
        raise UserError(f"{flag} must be a size in bytes such as 65536, 64K or 1MiB, got '{text}'") from None
    if value <= 0:
        raise UserError(f"{flag} must be a positive size in bytes, got '{text}'")
    return value


def parse_range(text: str, flag: str = "--input-range") -> tuple[float, float]:
    """LO,HI (fractions allowed) -> (lo, hi), e.g. 0,255 for a model fed raw pixels."""
    from tinyharden.recipe import parse_number

    parts = [p for p in text.replace(" ", "").replace(":", ",").split(",") if p]
    try:
        lo, hi = (float(parse_number(p)) for p in parts)
    except ValueError:
        raise UserError(f"{flag} must be LO,HI such as 0,255 or -1,1, got '{text}'") from None
    if not hi > lo:
        raise UserError(f"{flag} {text}: LO must be below HI, e.g. 0,255")
    return lo, hi


def parse_list(text: str | None) -> list[str] | None:
    """"pgd, square" -> ["pgd", "square"]."""
    if text is None:
        return None
    return [v.strip() for v in text.split(",") if v.strip()]


def parse_numbers(text: str | None, flag: str) -> list[float] | None:
    """"1/255,8/255" -> [0.0039..., 0.0313...]."""
    from tinyharden.recipe import parse_number

    if text is None:
        return None
    try:
        return [float(parse_number(v)) for v in parse_list(text) or []]
    except ValueError as exc:
        raise UserError(f"{flag}: {exc}") from None


def parse_params(items) -> dict[str, dict]:
    """["pgd.steps=40", "square.max_iter=5000"] -> {"pgd": {"steps": 40}, "square": {"max_iter": 5000}}."""
    from tinyharden.safe_yaml import parse_cli_value

    params: dict[str, dict] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        name, dot, field = key.strip().partition(".")
        if not sep or not dot or not name or not field:
            raise UserError(f"--param '{item}' must look like ATTACK.KEY=VALUE, e.g. pgd.steps=40")
        value = parse_cli_value(raw, source=f"--param '{key.strip()}'")
        params.setdefault(name, {})[field] = value
    return params


def sample_count(n: int | None, limit: int | None) -> int | None:
    """sample_count(None, 500) -> 500: -n N, or --limit N, its hidden old name in export and run (both: must agree)."""
    if n is not None and limit is not None and n != limit:
        raise UserError(f"-n {n} and --limit {limit} are the same option (--limit is its old name); give -n only")
    value = n if n is not None else limit
    if value is not None and value < 1:
        raise UserError(f"-n must be at least 1, got {value}")
    return value
