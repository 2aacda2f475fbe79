"""The learning loop on real calls through Kamailio, rtpengine and the controller: a caller's wording the rules send
to the wrong group, the agent's verdict over the CRM API, `zhida rules learn --from-calls`, the candidate
replayed and promoted with the CLI, and the next real call with that wording rings the right group's agent (the
running routing service reloads the promoted version by itself, no restart)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import grpc
import pytest
from zhida.call.prompts import synthesize
from zhida.config import Config
from zhida.stack.calls import place_call
from zhida.v1 import calls_pb2, calls_pb2_grpc

from tests.call.conftest import TRUNK_IP, Agents
from tests.call.test_crm_events import tenant_token
from tests.routing_versions.versionkit import MISROUTED, demo_tenants

pytestmark = pytest.mark.timeout(420)

NUMBER = "4008001234"
RIGHT_GROUP = "complaint"
COMPLAINT_AGENT = "1031"


def rules_cli(config: Config, *args: str) -> dict:
    """One `zhida rules …` command against the stack's tenants folder and call records; its JSON answer."""
    command = [str(Path(sys.executable).parent / "zhida"), "rules", *args, "--tenant", "demo",
               "--tenants", str(config.routing_tenants_dir), "--by", "supervisor"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=240,
                          env={**os.environ, "ZHIDA_DB_URL": config.controller.db_url
                               or f"sqlite:///{config.run_dir / 'data' / 'zhida.db'}"})
    assert done.returncode == 0, f"{' '.join(args)}: {done.stderr[-2000:]}"
    return json.loads(done.stdout)


def test_a_verdict_on_a_real_call_is_learned_and_the_next_call_reaches_the_right_group(
    full_stack: Config, tmp_path: Path
) -> None:
    # the tenant learns from its calls plus its labelled sentences (a policy the operator writes)
    demo_tenants(full_stack.routing_tenants_dir, learning="labelled: demo-sentences.tsv")
    phones = Agents(full_stack, tmp_path)
    try:
        for agent in ("1001", "1002", COMPLAINT_AGENT, "1091"):
            phones.start(agent)
        wav = synthesize(MISROUTED, tmp_path / "misrouted.wav")

        first = place_call(full_stack, number=NUMBER, wav=wav, trunk=TRUNK_IP)
        assert first["sipp_rc"] == 0, first
        assert first["transcript"], first
        assert first["group"] not in ("", RIGHT_GROUP), f"the live rules already route it right: {first}"

        metadata = (("authorization", f"Bearer {tenant_token(full_stack, 'demo')}"),)
        with grpc.insecure_channel(full_stack.controller.api_listen) as channel:
            calls_pb2_grpc.CallEventServiceStub(channel).SubmitFeedback(calls_pb2.SubmitFeedbackRequest(
                call_id=first["call_id"], feedback=calls_pb2.Feedback(correct=False, correct_group=RIGHT_GROUP)),
                metadata=metadata, timeout=10)

        learned = rules_cli(full_stack, "learn", "--from-calls")
        assert learned["action"] != "promoted", learned  # the tenant allows no automatic promotion
        candidate = learned["version"]
        replay = rules_cli(full_stack, "replay", "--candidate", candidate)
        changes = {row["call_id"]: row for row in replay["changes"]}
        assert changes[first["call_id"]]["candidate"]["group"] == RIGHT_GROUP, replay
        assert replay["candidate"]["right"] == replay["labelled"] == 1, replay
        assert rules_cli(full_stack, "versions")["live"] != candidate
        rules_cli(full_stack, "promote", candidate)
        assert rules_cli(full_stack, "versions")["live"] == candidate

        second = place_call(full_stack, number=NUMBER, wav=wav, trunk=TRUNK_IP)
        assert second["sipp_rc"] == 0, second
        assert second["transcript"] == first["transcript"], (first, second)
        assert second["group"] == RIGHT_GROUP, second
        assert second["agent_aor"].startswith(f"sip:{COMPLAINT_AGENT}@"), second
    finally:
        phones.stop()
