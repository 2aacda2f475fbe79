"""A tenant's learning policy: the `learning:` block of its tenant file.

    learning:
      labelled: unionpay-train.tsv    # labelled sentences learned from with the calls (relative: tenants folder)
      catalogue: unionpay-faq.tsv     # the tenant's known questions and their groups
      every_hours: 24                 # learn from calls on this schedule (`zhida rules learn --due`)
      min_new_verdicts: 20            # ... when at least this many new verdicts came in since the last run
      auto_promote: false             # a candidate that passes the gate goes live by itself
      ab_share: 0.1                   # else, one that passes starts an A/B test on this share of callers
      gate:
        margin: 0.0                   # the candidate may be this much less accurate on verdict calls
        max_changed: 0.2              # ... and change at most this share of past decisions
        min_verdicts: 20              # no verdict-labelled calls, no judgement: fewer fail the gate

The schema (`schema.json`) checks the types and ranges; this module gives the defaults.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Gate:
    margin: float = 0.0
    max_changed: float = 0.2
    min_verdicts: int = 20


@dataclass(frozen=True)
class LearningPolicy:
    labelled: str = ""
    catalogue: str = ""
    every_hours: float = 0.0  # 0: no schedule
    min_new_verdicts: int = 20
    auto_promote: bool = False
    ab_share: float = 0.0
    gate: Gate = Gate()


def policy_of(raw: dict[str, Any]) -> LearningPolicy:
    """The policy of a validated tenant document (`TenantConfig.raw`)."""
    block = dict(raw.get("learning") or {})
    gate = Gate(**(block.pop("gate", None) or {}))
    return LearningPolicy(**block, gate=gate)


def is_due(policy: LearningPolicy, last_run: float | None, new_verdicts: int, now: float) -> bool:
    """Whether a scheduled learning run should start now."""
    if policy.every_hours <= 0 or new_verdicts < policy.min_new_verdicts:
        return False
    return last_run is None or now - last_run >= policy.every_hours * 3600
