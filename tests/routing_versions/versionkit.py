"""Helpers of the rule-version tests: a tenants folder with the demo tenant, and calls written as records."""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine
from zhida.events import CallEvent, CallEventKind, CallOutcome
from zhida.routing.store import packaged_demo_dir
from zhida.store import CallRecorder

REPO = Path(__file__).resolve().parents[2]
DEMO_YAML = packaged_demo_dir() / "demo.yaml"
DEMO_SENTENCES = REPO / "control" / "zhida" / "demo" / "sentences.tsv"
# The demo rules send this to repair (修好, 坏了); the agent who took it says it was a complaint.
MISROUTED = "修好之后又坏了我要找你们领导"


def demo_tenants(folder: Path, learning: str = "") -> Path:
    """A tenants folder holding the demo tenant (with a `learning:` block) and its labelled sentences."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(DEMO_SENTENCES, folder / "demo-sentences.tsv")
    text = DEMO_YAML.read_text("utf-8")
    if learning:
        text += "\nlearning:\n" + "".join(f"  {line}\n" for line in learning.strip().splitlines())
    (folder / "demo.yaml").write_text(text, "utf-8")
    return folder


@dataclass(frozen=True)
class Said:
    """One utterance of a scripted call and the decision recorded for it."""

    transcript: str
    kind: str  # route, reprompt, fallback
    group: str = ""
    route: str = ""
    basis: str = "final"


def call_events(
    call_id: str,
    tenant: str,
    said: list[Said],
    *,
    caller: str = "13800138000",
    verdict: bool | None = None,
    right_group: str = "",
    start: float | None = None,
    decision_extra: dict | None = None,
) -> list[CallEvent]:
    """The events a call publishes: started, then a final and a decision per utterance, ended, feedback."""
    t = time.time() if start is None else start
    events = [CallEvent(call_id, tenant, CallEventKind.STARTED, {"caller": caller, "called": "4008001234"}, t)]
    for i, s in enumerate(said):
        at = t + 2 + 3 * i
        events.append(CallEvent(call_id, tenant, CallEventKind.PROMPT, {"prompt": "welcome", "attempt": i + 1}, at))
        events.append(CallEvent(call_id, tenant, CallEventKind.FINAL,
                                {"transcript": s.transcript, "confidence": 0.9, "basis": s.basis}, at + 1))
        data = {"kind": s.kind, "route": s.route or s.group, "group": s.group, "score": 1.0, "confidence": 0.8,
                "explanation": [{"term": "x", "route": s.route or s.group, "weight": 1.0, "kind": "phrase"}],
                **(decision_extra or {})}
        events.append(CallEvent(call_id, tenant, CallEventKind.DECISION, data, at + 1.1))
    end = t + 3 + 3 * len(said)
    events.append(CallEvent(call_id, tenant, CallEventKind.ENDED, {"outcome": CallOutcome.CONNECTED}, end))
    if verdict is not None:
        events.append(CallEvent(call_id, tenant, CallEventKind.FEEDBACK,
                                {"correct": verdict, "correct_group": right_group, "agent": "sip:a@x"}, end + 1))
    return events


def record(engine: Engine, calls: list[list[CallEvent]]) -> None:
    """Writes the calls through the real recorder, as the call path's event bus does."""
    recorder = CallRecorder(engine).start()
    try:
        for events in calls:
            for e in events:
                recorder(e)
        assert recorder.flush(10)
    finally:
        recorder.close()
