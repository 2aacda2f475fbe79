"""SIP legs for answered mode: a B2BUA's caller (UAS) and agent (UAC) legs on top of the sippy stack.

By concern: `zhida.b2bua.stack` (the SIP endpoint both legs share), `zhida.b2bua.legs` (the caller and agent
legs, the asyncio API), `zhida.b2bua.sippy_adapter` (everything that touches sippy's objects),
`zhida.b2bua.reactor` (sippy's own event loop in a dedicated thread), `zhida.b2bua.model` (what legs report).
Nothing here imports sippy at module import time: sippy must first be imported by the reactor thread.
"""

from zhida.b2bua.legs import IncomingCall, OutgoingCall
from zhida.b2bua.model import CallFailed, Ended, LegError, Provisional
from zhida.b2bua.stack import SipStack

__all__ = ["CallFailed", "Ended", "IncomingCall", "LegError", "OutgoingCall", "Provisional", "SipStack"]
