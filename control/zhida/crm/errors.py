"""Database work off the event loop, with database failures turned into gRPC status codes.

A lost database is the server's problem, not the caller's: it answers UNAVAILABLE (clients may retry) and
logs the cause, instead of the UNKNOWN an unhandled exception would give.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, TypeVar

import grpc
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

log = logging.getLogger(__name__)

T = TypeVar("T")


async def in_thread(
    context: grpc.aio.ServicerContext, what: str, function: Callable[..., T], *args: Any, **kwargs: Any
) -> T:
    """Runs `function` in a worker thread; aborts the RPC on a database error of `what`."""
    try:
        return await asyncio.to_thread(function, *args, **kwargs)
    except IntegrityError as exc:
        # Two changes raced for the same name; the other one won.
        log.warning("%s refused a conflicting change: %s", what, exc.orig)
        await context.abort(
            grpc.StatusCode.ALREADY_EXISTS, f"{what}: a conflicting change was made meanwhile"
        )
    except SQLAlchemyError as exc:
        log.error("%s failed: %s", what, exc)
        await context.abort(grpc.StatusCode.UNAVAILABLE, f"{what} unavailable")
    raise AssertionError("unreachable")  # abort raises
