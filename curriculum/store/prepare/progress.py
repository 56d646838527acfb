"""Progress of a long `prepare`: units done / total, documents/s, tokens/s and ETA on one bar."""

from __future__ import annotations

import time
from typing import Any

from tqdm.auto import tqdm


class UnitProgress:
    """A tqdm bar over units (its ETA is units left x the mean unit time), with throughput in the postfix."""

    def __init__(self, total: int, done: int, enabled: bool):
        self.bar = tqdm(total=total, initial=done, desc="prepare", unit="unit", disable=not enabled, smoothing=0)
        self.started = time.perf_counter()
        self.documents = 0
        self.tokens = 0
        self.skipped = done

    def __call__(self, info: dict[str, Any]) -> None:
        """Report one finished (or found finished) unit."""
        if not info.get("skipped"):
            self.documents += sum(s["documents"] for s in info["splits"].values())
            self.tokens += int(info.get("input_tokens", 0))
            elapsed = max(time.perf_counter() - self.started, 1e-9)
            self.bar.set_postfix_str(f"{self.documents / elapsed:,.0f} docs/s, {self.tokens / elapsed:,.0f} tokens/s")
        self.bar.update(1)

    def close(self) -> None:
        self.bar.close()
