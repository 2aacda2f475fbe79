"""The call path: one explicit state machine per call, driven by Kamailio events, speech and routing."""
