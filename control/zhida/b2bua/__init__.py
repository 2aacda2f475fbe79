"""SIP legs for answered mode: a B2BUA's caller (UAS) and agent (UAC) legs on top of the sippy stack.

`zhida.b2bua.legs` is the asyncio API; `zhida.b2bua.reactor` runs sippy's own event loop in a dedicated
thread. Nothing here imports sippy at module import time: sippy must first be imported by the reactor
thread (see `reactor`).
"""

from zhida.b2bua.legs import (
    CallFailed,
    Ended,
    IncomingCall,
    OutgoingCall,
    Provisional,
    SipStack,
)

__all__ = ["CallFailed", "Ended", "IncomingCall", "OutgoingCall", "Provisional", "SipStack"]
