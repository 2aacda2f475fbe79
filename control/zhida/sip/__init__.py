"""Signalling plane: the controller's links to Kamailio (evapi events, JSON-RPC)."""
