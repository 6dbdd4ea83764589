"""What a GPU-hour costs, per GPU model, for pricing waste (DESIGN.md "Definitions").

The default table holds public on-demand **list prices** in USD per GPU-hour. They are what a
cloud charges anyone without a discount, so real costs (reserved, spot, owned hardware) are
usually lower: pass your own table for numbers to act on.

Sources of :data:`DEFAULT_PRICES_USD_PER_GPU_HOUR`:

* RunPod Serverless pricing documentation (https://docs.runpod.io/serverless/pricing,
  "Flex cost per second", read 2026-11-23), per-second rate x 3600: H200 $0.00155/s,
  H100 $0.00116/s, A100 80GB $0.00076/s, L40/L40S/RTX 6000 Ada $0.00053/s, A40/RTX A6000
  $0.00034/s, L4/RTX A5000/RTX 3090 $0.00019/s, RTX 4090 $0.00031/s, RTX A4000/RTX 4000
  $0.00016/s, B200 $0.00240/s.
* Lambda on-demand cloud price list (https://lambda.ai/service/gpu-cloud): A100 40GB $1.48
  per GPU-hour (as quoted from that page on 2026-05-07) and Tesla V100 16GB $0.55 per
  GPU-hour (8x V100 instance, per GPU, as Lambda listed it in 2024; not re-checked since).

Model names from NVML (``NVIDIA H100 80GB HBM3``, ``NVIDIA A100-SXM4-40GB``,
``Tesla V100-SXM2-16GB``) are matched to table keys by words: a key matches when every word
of it appears in the name, and the key with the most words wins, so ``A100 40GB`` beats
``A100`` and ``L4`` never matches ``L40S``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from gpufleet.analysis.history import HistoryQueryError

DEFAULT_PRICES_USD_PER_GPU_HOUR: Mapping[str, float] = MappingProxyType(
    {
        "B200": 8.64,
        "H200": 5.58,
        "H100": 4.18,
        "A100": 2.74,
        "A100 80GB": 2.74,
        "A100 40GB": 1.48,
        "L40S": 1.91,
        "L40": 1.91,
        "RTX 6000 Ada": 1.91,
        "A40": 1.22,
        "RTX A6000": 1.22,
        "L4": 0.68,
        "RTX A5000": 0.68,
        "RTX 3090": 0.68,
        "RTX 4090": 1.12,
        "RTX A4000": 0.58,
        "V100": 0.55,
    }
)
"""USD per GPU-hour, public on-demand list prices (see the module docstring for sources)."""

DEFAULT_FALLBACK_USD_PER_GPU_HOUR = 2.00
"""Price of a model the table does not know: between an A100 and an H100 list price."""

_NOISE = frozenset({"NVIDIA", "TESLA", "GEFORCE", "QUADRO"})
"""Vendor and brand words NVML puts in names; they never tell two models apart."""


def _words(name: str) -> frozenset[str]:
    return frozenset(w for w in re.split(r"[\s\-_/]+", name.upper()) if w and w not in _NOISE)


@dataclass(frozen=True)
class PriceTable:
    """USD per GPU-hour by GPU model, with a fallback for models it does not know.

    Args:
        usd_per_gpu_hour: model key (``H100``, ``A100 40GB``, or a full NVML name) -> price.
        fallback_usd_per_gpu_hour: price of a model no key matches.

    Raises:
        HistoryQueryError: a negative, NaN or infinite price, or an empty model key.
    """

    usd_per_gpu_hour: Mapping[str, float] = field(
        default_factory=lambda: DEFAULT_PRICES_USD_PER_GPU_HOUR
    )
    fallback_usd_per_gpu_hour: float = DEFAULT_FALLBACK_USD_PER_GPU_HOUR

    def __post_init__(self) -> None:
        prices = dict(self.usd_per_gpu_hour)
        for model, price in [*prices.items(), ("fallback", self.fallback_usd_per_gpu_hour)]:
            if not _words(model):
                raise HistoryQueryError(f"price table has an empty GPU model name {model!r}")
            if not isinstance(price, int | float) or not math.isfinite(price) or price < 0:
                raise HistoryQueryError(
                    f"price of {model!r} must be a finite, non-negative USD per GPU-hour; "
                    f"got {price!r}"
                )
        # Frozen and read-only, so a table shared between requests cannot be changed by one.
        object.__setattr__(self, "usd_per_gpu_hour", MappingProxyType(prices))

    def lookup(self, model: str | None) -> tuple[float, bool]:
        """``(price, used_fallback)`` for a model name as NVML reports it (None: unknown)."""
        if model:
            if model in self.usd_per_gpu_hour:
                return float(self.usd_per_gpu_hour[model]), False
            words = _words(model)
            best: tuple[int, float] | None = None
            for key, price in self.usd_per_gpu_hour.items():
                key_words = _words(key)
                if key_words <= words and (best is None or len(key_words) > best[0]):
                    best = (len(key_words), float(price))
            if best is not None:
                return best[1], False
        return float(self.fallback_usd_per_gpu_hour), True

    def price_for(self, model: str | None) -> float:
        """USD per GPU-hour of ``model``; the fallback price when no key matches."""
        return self.lookup(model)[0]

    def uses_fallback(self, model: str | None) -> bool:
        """Whether ``model`` is priced with the fallback."""
        return self.lookup(model)[1]


DEFAULT_PRICE_TABLE = PriceTable()
"""The list-price table above with the default fallback."""


def price_for(model: str | None, table: PriceTable | None = None) -> float:
    """USD per GPU-hour of ``model`` from ``table`` (default: :data:`DEFAULT_PRICE_TABLE`)."""
    return (table or DEFAULT_PRICE_TABLE).price_for(model)
