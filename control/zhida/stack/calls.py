"""`zhida call`: one call from the simulated carrier trunk, reported as one JSON line."""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Any

from zhida.config import Config
from zhida.stack.sipp import caller_pcap, caller_scenario, run_caller

# The caller waits for the prompt (about 3 s) before speaking, and the trailing silence lets the endpointer
# hear the end of speech.
LEAD_SILENCE_S = 3.2
# The caller keeps sending (silence) until it hangs up, as phones do: the agent hears and echoes it.
TAIL_SILENCE_S = 25.0


def place_call(config: Config, *, number: str, wav: Path, trunk: str = "127.0.0.2", expected_group: str = "",
               said: str = "", lead_silence_s: float = LEAD_SILENCE_S, netns: str | None = None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="zhida-call-") as tmp:
        work = Path(tmp)
        pcap = work / "caller.pcap"
        caller_pcap(wav, pcap, lead_silence_s=lead_silence_s, tail_silence_s=TAIL_SILENCE_S)
        scenario = caller_scenario(pcap, work / "caller.xml")
        target = f"{config.sip.address}:{config.sip.port}"
        result = run_caller(target, scenario, number, local_ip=trunk, work_dir=work, netns=netns)
    record = wait_for_record(config, result.call_id)
    return {
        "call_id": result.call_id,
        "said": said,
        "transcript": record.get("transcript", ""),
        "group": record.get("group", ""),
        "expected_group": expected_group,
        "agent": record.get("contact") if result.returncode == 0 else "",
        "agent_aor": record.get("agent", ""),
        "decision_basis": (record.get("decision") or {}).get("basis", ""),
        "confidence": (record.get("decision") or {}).get("confidence"),
        "end_of_speech_to_invite_ms": record.get("end_of_speech_to_invite_ms"),
        "end_of_speech_to_decision_ms": (record.get("timings") or {}).get("end_of_speech_to_decision_ms"),
        "outcome": record.get("outcome", ""),
        "sipp_rc": result.returncode,
        **({"sipp_error": result.stderr[-400:]} if result.returncode else {}),
    }


def wait_for_record(config: Config, call_id: str, timeout_s: float = 5.0) -> dict[str, Any]:
    """The controller writes a call's summary when the agent answers and again when the call ends."""
    if not call_id:
        return {}
    safe = "".join(c if c.isalnum() or c in "-_.@" else "_" for c in call_id)
    path = config.run_dir / "calls" / f"{safe}.json"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if path.exists():
            try:
                record = json.loads(path.read_text(encoding="utf-8"))
                if record.get("state") == "ended":
                    return record
            except ValueError:
                pass
        time.sleep(0.1)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
