"""Routing: tenant rule files, the weighted rule engine, learning and evaluation, and the gRPC server."""
