"""Which agents can take a call now: registered, not in a call, longest idle first."""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass, field
from typing import Any

from zhida.events import CallEvent, CallEventKind

log = logging.getLogger(__name__)

# What Kamailio's registrar does with a REGISTER that names no expiry (its default_expires).
REGISTRAR_DEFAULT_EXPIRES_S = 3600.0
# A call of another controller whose end was never heard (that controller died, the relay lost the database)
# stops counting after this long.
REMOTE_CALL_MAX_S = 4 * 3600.0
_EXPIRES_PARAM = re.compile(r";\s*expires\s*=\s*(\d+)", re.IGNORECASE)


@dataclass
class AgentState:
    registered_until: float = 0.0
    busy_calls: set[str] = field(default_factory=set)
    idle_since: float = 0.0
    # calls of the machine room's other controllers this agent answered (call id -> when), from their relayed
    # events: the agent is offered calls after the free ones, never left out, since an end may go unheard
    remote_calls: dict[str, float] = field(default_factory=dict)


class AgentBook:
    def __init__(self) -> None:
        self._agents: dict[str, AgentState] = {}

    def _state(self, aor: str) -> AgentState:
        return self._agents.setdefault(normalise_aor(aor), AgentState())

    def registered(self, aor: str, expires_s: float) -> None:
        self._state(aor).registered_until = time.time() + expires_s

    def reserve(self, aor: str, call_id: str) -> None:
        self._state(aor).busy_calls.add(call_id)

    def release(self, aor: str, call_id: str) -> None:
        state = self._state(aor)
        if call_id in state.busy_calls:
            state.busy_calls.discard(call_id)
            if not state.busy_calls:
                state.idle_since = time.time()

    def release_call(self, call_id: str) -> None:
        for aor, state in self._agents.items():
            if call_id in state.busy_calls:
                self.release(aor, call_id)

    def remote_event(self, event: CallEvent) -> None:
        """Another controller's call event (EventBus.add_remote_sink): which agents are talking there."""
        data = event.data
        if event.kind is CallEventKind.ANSWERED and data.get("agent"):
            self._state(str(data["agent"])).remote_calls[event.call_id] = time.time()
        elif event.kind is CallEventKind.REROUTED and data.get("agent"):
            self._end_remote(event.call_id, str(data.get("previous_agent") or ""))
            self._state(str(data["agent"])).remote_calls[event.call_id] = time.time()
        elif event.kind is CallEventKind.ENDED:
            self._end_remote(event.call_id)

    def _end_remote(self, call_id: str, aor: str = "") -> None:
        states = [self._state(aor)] if aor else list(self._agents.values())
        for state in states:
            if state.remote_calls.pop(call_id, None) is not None and not state.remote_calls:
                state.idle_since = max(state.idle_since, time.time())

    def _talking_elsewhere(self, state: AgentState, now: float) -> bool:
        for call_id, since in list(state.remote_calls.items()):
            if now - since > REMOTE_CALL_MAX_S:
                del state.remote_calls[call_id]
        return bool(state.remote_calls)

    def talking_elsewhere(self, aor: str) -> bool:
        """Whether the agent talks on a call of another controller, as far as its relayed events say."""
        return self._talking_elsewhere(self._state(aor), time.time())

    def is_registered(self, aor: str) -> bool:
        return self._state(aor).registered_until > time.time()

    def is_free(self, aor: str) -> bool:
        return not self._state(aor).busy_calls

    def select(self, aors: list[str]) -> list[str]:
        """Registered and free agents first (longest idle first); then those talking on another controller's
        call (a phone with call waiting may take it; a busy one answers 486 and Kamailio rings the next); agents
        busy on this controller's calls are left out; unregistered ones go last, since Kamailio skips them anyway
        and a registration may be in flight."""
        now = time.time()
        available = [a for a in aors if self._state(a).registered_until > now and not self._state(a).busy_calls]
        available.sort(key=lambda a: self._state(a).idle_since)
        elsewhere = [a for a in available if self._talking_elsewhere(self._state(a), now)]
        free = [a for a in available if a not in elsewhere]
        unregistered = [a for a in aors if self._state(a).registered_until <= now]
        return free + elsewhere + unregistered

    def load_usrloc_dump(self, dump: Any) -> int:
        """Reconciles registrations with Kamailio's full `ul.dump` answer (the "brief" one has no contacts)."""
        count = 0
        for domain in (dump or {}).get("Domains", []):
            for record in domain.get("Domain", {}).get("AoRs", []):
                info = record.get("Info", {})
                aor = info.get("AoR")
                contacts = info.get("Contacts", [])
                expires = max((c.get("Contact", {}).get("Expires", 0) for c in contacts), default=0)
                if aor and isinstance(expires, int | float) and expires > 0:
                    self.registered(f"sip:{aor}", float(expires))
                    count += 1
        return count


def normalise_aor(aor: str) -> str:
    aor = aor.strip().strip("<>")
    return aor if aor.startswith("sip:") else f"sip:{aor}"


def requested_expiry_s(contact: str, expires_header: Any) -> float:
    """What a REGISTER asked for (RFC 3261 10.2.1): the Contact's expires parameter, else the Expires header,
    else the registrar's default; `Contact: *` removes every binding."""
    found = _EXPIRES_PARAM.search(contact)
    if found:
        return float(found.group(1))
    if contact.strip() == "*":
        return 0.0
    try:
        return float(expires_header) if expires_header not in (None, "") else REGISTRAR_DEFAULT_EXPIRES_S
    except (TypeError, ValueError):
        return REGISTRAR_DEFAULT_EXPIRES_S


def saved_expiry_s(lookup: Any) -> float:
    """Seconds left of the longest-lived contact in Kamailio's `ul.lookup` answer; 0 when it lists none."""
    contacts = lookup.get("Contacts", []) if isinstance(lookup, dict) else []
    left = [c.get("Contact", {}).get("Expires") for c in contacts if isinstance(c, dict)]
    return max((float(x) for x in left if isinstance(x, int | float)), default=0.0)
