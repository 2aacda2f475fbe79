"""The tenant's learning policy: defaults, the schema's checks, and when a scheduled run is due."""

from __future__ import annotations

from pathlib import Path

import pytest
from zhida.routing.config import ConfigError, load_config_file
from zhida.routing.feedback_learning import due_tenants
from zhida.routing.learning_policy import Gate, LearningPolicy, is_due, policy_of
from zhida.routing.versions import VersionStore

from tests.routing_versions.versionkit import Said, call_events, demo_tenants, record

HOUR = 3600.0


def test_policy_defaults_and_values(tmp_path: Path):
    assert policy_of({}) == LearningPolicy()
    tenants = demo_tenants(tmp_path / "t", "every_hours: 24\nmin_new_verdicts: 2\nauto_promote: true\n"
                                           "gate: {margin: 0.02, max_changed: 0.1}")
    policy = policy_of(load_config_file(tenants / "demo.yaml").raw)
    assert policy == LearningPolicy(every_hours=24, min_new_verdicts=2, auto_promote=True,
                                    gate=Gate(margin=0.02, max_changed=0.1, min_verdicts=20))
    broken = demo_tenants(tmp_path / "u", "ab_share: 0.9")
    with pytest.raises(ConfigError, match="learning/ab_share"):
        load_config_file(broken / "demo.yaml")


def test_is_due():
    policy = LearningPolicy(every_hours=24, min_new_verdicts=5)
    assert not is_due(LearningPolicy(), None, 100, 0.0)  # no schedule
    assert is_due(policy, None, 5, 0.0)
    assert not is_due(policy, None, 4, 0.0)  # too few new verdicts
    assert not is_due(policy, 1000.0, 50, 1000.0 + 23 * HOUR)
    assert is_due(policy, 1000.0, 50, 1000.0 + 24 * HOUR)


def test_due_tenants_counts_new_verdicts(tmp_path: Path, calls_db):
    tenants = demo_tenants(tmp_path / "t", "every_hours: 1\nmin_new_verdicts: 2")
    store = VersionStore(tenants)
    assert due_tenants(store, calls_db, ["demo"]) == []
    record(calls_db, [call_events(f"c{i}", "demo", [Said("快递到哪儿了", "route", "delivery")], verdict=True)
                      for i in range(2)])
    assert due_tenants(store, calls_db, ["demo"]) == ["demo"]
