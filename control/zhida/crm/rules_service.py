"""RuleVersionService: a tenant's routing rule-set versions through the token-authenticated API.

Thin handlers over `zhida.routing.versions.VersionStore` (files next to the routing service's tenant files, on
this box): list, promote, roll back, A/B tests.  Learning from calls needs LAC and the sentence encoder, which
the controller's process does not load: it runs `zhida rules learn --from-calls` as a child process on the same
call-record store and returns its result.  Changes of the live version reach WatchCalls through the history
watcher (`zhida.routing.version_events`), whoever made them.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any, NoReturn

import grpc

from zhida.crm import convert
from zhida.crm.auth import TokenAuth, resolve_tenant
from zhida.routing.versions import LiveChange, Version, VersionError, VersionStore
from zhida.v1 import rules_pb2 as pb
from zhida.v1 import rules_pb2_grpc

log = logging.getLogger(__name__)

MAX_REF = 64
LEARN_TIMEOUT_S = 3600.0


def version_pb(v: Version, live: str, candidate: str) -> pb.RuleVersion:
    return pb.RuleVersion(
        id=v.id,
        number=v.number,
        author=v.author,
        create_time=convert.timestamp(v.created_at),
        source=v.source,
        parent_id=v.parent,
        measurements_json=json.dumps(v.measurements, ensure_ascii=False),
        live=v.id == live,
        candidate=v.id == candidate,
    )


def change_pb(c: LiveChange) -> pb.LiveVersionChange:
    return pb.LiveVersionChange(
        tenant=c.tenant,
        version_id=c.version,
        number=c.number,
        previous_version_id=c.previous,
        action=c.action,
        by=c.by,
        time=convert.timestamp(c.at),
    )


class RuleVersionService(rules_pb2_grpc.RuleVersionServiceServicer):
    def __init__(self, *, auth: TokenAuth, tenants_dir: str | Path, db_url: str) -> None:
        self.auth = auth
        self.versions = VersionStore(tenants_dir)
        self.db_url = db_url

    async def _tenant(self, request: Any, context: grpc.aio.ServicerContext) -> str:
        principal = await self.auth.require(context)
        tenant = await resolve_tenant(principal, request.tenant, context)
        if hasattr(request, "version") and len(request.version) > MAX_REF:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"version: at most {MAX_REF} characters")
        return tenant

    def _synced(self, fn: Any, tenant: str, *args: Any, **kwargs: Any) -> Any:
        """`fn` after recording the tenant file as a version if it is not one (an upload, a hand edit), so
        that a rollback can bring it back."""
        self.versions.sync(tenant)
        return fn(tenant, *args, **kwargs)

    async def _run(self, context: grpc.aio.ServicerContext, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """A version-store call in a thread; its refusals become status codes with the reason."""
        from zhida.routing.config import ConfigError

        try:
            return await asyncio.to_thread(fn, *args, **kwargs)
        except VersionError as exc:
            code = grpc.StatusCode.NOT_FOUND if "has no version" in str(exc) else grpc.StatusCode.FAILED_PRECONDITION
            await _abort(context, code, str(exc))
        except ConfigError as exc:
            await _abort(context, grpc.StatusCode.FAILED_PRECONDITION, f"version: {exc.reason}")
        except ValueError as exc:
            await _abort(context, grpc.StatusCode.INVALID_ARGUMENT, str(exc))

    async def ListRuleVersions(
        self, request: pb.ListRuleVersionsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListRuleVersionsResponse:
        tenant = await self._tenant(request, context)

        def collect() -> tuple[list[Version], str, Any]:
            self.versions.sync(tenant)
            return self.versions.list(tenant), self.versions.live_id(tenant), self.versions.experiment(tenant)

        versions, live, test = await self._run(context, collect)
        candidate = test.candidate if test else ""
        return pb.ListRuleVersionsResponse(
            versions=[version_pb(v, live, candidate) for v in versions],
            experiment_share=test.share if test else 0.0,
        )

    async def PromoteRuleVersion(
        self, request: pb.PromoteRuleVersionRequest, context: grpc.aio.ServicerContext
    ) -> pb.PromoteRuleVersionResponse:
        tenant = await self._tenant(request, context)
        if not request.version:
            await _abort(context, grpc.StatusCode.INVALID_ARGUMENT, "version: required")
        principal = await self.auth.require(context)
        change = await self._run(context, self._synced, self.versions.promote, tenant, request.version,
                                 by=principal.name)
        return pb.PromoteRuleVersionResponse(change=change_pb(change))

    async def RollbackRules(
        self, request: pb.RollbackRulesRequest, context: grpc.aio.ServicerContext
    ) -> pb.RollbackRulesResponse:
        tenant = await self._tenant(request, context)
        principal = await self.auth.require(context)
        change = await self._run(context, self._synced, self.versions.rollback, tenant, request.version or None,
                                 by=principal.name)
        return pb.RollbackRulesResponse(change=change_pb(change))

    async def SetRulesExperiment(
        self, request: pb.SetRulesExperimentRequest, context: grpc.aio.ServicerContext
    ) -> pb.SetRulesExperimentResponse:
        tenant = await self._tenant(request, context)
        principal = await self.auth.require(context)
        if not request.candidate:
            await self._run(context, self.versions.stop_experiment, tenant)
            return pb.SetRulesExperimentResponse(running=False)
        if len(request.candidate) > MAX_REF:
            await _abort(context, grpc.StatusCode.INVALID_ARGUMENT, f"candidate: at most {MAX_REF} characters")
        await self._run(context, self.versions.start_experiment, tenant, request.candidate, request.share,
                        by=principal.name)
        return pb.SetRulesExperimentResponse(running=True)

    async def LearnRulesFromCalls(
        self, request: pb.LearnRulesFromCallsRequest, context: grpc.aio.ServicerContext
    ) -> pb.LearnRulesFromCallsResponse:
        tenant = await self._tenant(request, context)
        principal = await self.auth.require(context)
        argv = [sys.executable, "-m", "zhida.cli", "rules", "learn", "--from-calls", "--tenant", tenant,
                "--tenants", str(self.versions.tenants_dir), "--db", self.db_url, "--by", principal.name]
        if request.HasField("since"):
            since = convert.seconds_of(request.since)
            from datetime import UTC, datetime

            argv += ["--since", datetime.fromtimestamp(since, tz=UTC).isoformat()]
        process = await asyncio.create_subprocess_exec(
            *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env={**os.environ}
        )
        try:
            out, err = await asyncio.wait_for(process.communicate(), LEARN_TIMEOUT_S)
        except (TimeoutError, asyncio.CancelledError):
            process.kill()
            await process.wait()
            raise
        if process.returncode != 0:
            reason = err.decode("utf-8", "replace").strip().splitlines()
            message = next((line for line in reversed(reason) if line.startswith("zhida: ")), "learning failed")
            log.error("learning from calls for %s failed: %s", tenant, "\n".join(reason[-5:]))
            await _abort(context, grpc.StatusCode.FAILED_PRECONDITION, message.removeprefix("zhida: ")[:500])
        result = json.loads(out)
        version = await self._run(context, self.versions.get, tenant, result["version"])
        live = await self._run(context, self.versions.live_id, tenant)
        test = await self._run(context, self.versions.experiment, tenant)
        return pb.LearnRulesFromCallsResponse(
            candidate=version_pb(version, live, test.candidate if test else ""),
            action=result["action"],
            replay_json=json.dumps(result["replay"], ensure_ascii=False),
        )


async def _abort(context: grpc.aio.ServicerContext, code: grpc.StatusCode, message: str) -> NoReturn:
    await context.abort(code, message)
    raise AssertionError("unreachable")  # abort raises
