"""Sizes as people write them for microcontrollers: 65536, 64K, 64KiB, 1M (no TensorFlow).

    >>> parse_size("64K")
    65536

K, KB and KiB all mean 1024 bytes, as MCU datasheets use them. The CLI's size options and the
recipe's `export.max_flash` / `max_ram` both read sizes through here.
"""
from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BeforeValidator

_BYTE_UNITS = {"": 1, "b": 1, "k": 1024, "kb": 1024, "kib": 1024, "m": 1024 ** 2, "mb": 1024 ** 2, "mib": 1024 ** 2}


def parse_size(text: Any) -> Any:
    """'64K' -> 65536; an int is returned as is; anything else raises ValueError naming the accepted forms."""
    if isinstance(text, int) and not isinstance(text, bool):
        return text
    m = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z]*)\s*", str(text))
    unit = m.group(2).lower() if m else None
    if not m or unit not in _BYTE_UNITS:
        raise ValueError(f"a size in bytes such as 65536, 64K or 1MiB, got '{text}'")
    return int(float(m.group(1)) * _BYTE_UNITS[unit])


Size = Annotated[int, BeforeValidator(parse_size)]  # a pydantic field that takes 64K as well as 65536
