"""A guarded boto3 ``bedrock-runtime`` client (I5-I8).

``guard_bedrock(guard, client)`` (what ``guard.llm(client)`` calls for a
botocore client) returns a client whose ``converse`` and ``converse_stream``
check the model id (Bedrock ids, inference-profile prefixes and ARNs are
normalized) and the region: the client's own region, plus every region an
inference profile (``eu.``, ``us.``, ``global.``…) may route to. Answers,
reasoning text and tool-use input pass the output pipeline; stream deltas
pass a stream guard. Bedrock has no data-use switch (see
:mod:`aiinvariants.llm.optout`). ``invoke_model`` and every other operation
raise ``PolicyError``: use the Converse API.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from aiinvariants.errors import MissingIntegrationError, PolicyError

try:
    import botocore.client  # type: ignore[import-untyped,unused-ignore]
except ImportError as exc:  # pragma: no cover - exercised without the extra
    raise MissingIntegrationError(extra="bedrock", package="boto3") from exc

from aiinvariants.filters import StreamGuard
from aiinvariants.llm.classifiers import Classifier
from aiinvariants.llm.guarded import CallGuard
from aiinvariants.llm.regions import Placement, declared_region
from aiinvariants.llm.streams import GuardedStream

if TYPE_CHECKING:
    from aiinvariants.guard import Guard

__all__ = ["GuardedBedrock", "guard_bedrock"]


def guard_bedrock(
    guard: Guard,
    client: Any,
    *,
    system_prompt: str | None = None,
    classifiers: Iterable[Classifier] = (),
) -> GuardedBedrock:
    """Guard a boto3 ``bedrock-runtime`` client.

    Raises:
        PolicyError: ``client`` is not a botocore client for bedrock-runtime.
    """
    if not isinstance(client, botocore.client.BaseClient) or (
        client.meta.service_model.service_name != "bedrock-runtime"
    ):
        raise PolicyError(
            "guard_bedrock needs a boto3 client for 'bedrock-runtime', got "
            f"{type(client).__name__}"
        )
    region = declared_region(client.meta.endpoint_url, guard.policy.regions.declared)
    if region is not None:
        placement = Placement(region, source="declared")
    else:
        home = client.meta.region_name
        placement = Placement(home.lower() if home else None, source="client")
    checks = CallGuard(
        guard,
        provider="bedrock",
        placement=placement,
        system_prompt=system_prompt,
        classifiers=classifiers,
        resource="bedrock.converse",
    )
    return GuardedBedrock(client, checks)


def _prepare(checks: CallGuard, kwargs: dict[str, Any]) -> dict[str, Any]:
    params = checks.before(kwargs.get("modelId"), kwargs)
    system = params.get("system")
    if isinstance(system, list):
        params["system"] = [
            {**b, "text": checks.register_system(b["text"])}
            if isinstance(b, Mapping) and isinstance(b.get("text"), str)
            else b
            for b in system
        ]
    return params


def check_converse(checks: CallGuard, response: dict[str, Any]) -> dict[str, Any]:
    """Pass a Converse response's texts and tool inputs through the pipeline."""
    message = response.get("output", {}).get("message", {})
    for block in message.get("content", ()):
        if isinstance(block.get("text"), str):
            block["text"] = checks.text(block["text"])
        if "toolUse" in block:
            block["toolUse"]["input"] = checks.json_args(block["toolUse"].get("input"))
        reasoning = block.get("reasoningContent", {}).get("reasoningText")
        if reasoning and isinstance(reasoning.get("text"), str):
            reasoning["text"] = checks.text(reasoning["text"])
    return response


class ConverseStream:
    """Event filter for converse_stream events (dicts)."""

    def __init__(self, checks: CallGuard) -> None:
        self._checks = checks
        self._guards: dict[tuple[int, str], StreamGuard] = {}

    def process(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        if "contentBlockDelta" in event:
            body = event["contentBlockDelta"]
            index = body.get("contentBlockIndex", 0)
            delta = body.get("delta", {})
            for kind, holder, field in self._fields(delta):
                sg = self._guards.setdefault((index, kind), self._checks.stream())
                holder[field] = sg.feed(holder[field])
            return [event]
        if "contentBlockStop" in event:
            index = event["contentBlockStop"].get("contentBlockIndex", 0)
            return [*self._release(index), event]
        if "messageStop" in event:
            return [*self.finish(), event]
        return [event]

    @staticmethod
    def _fields(delta: dict[str, Any]) -> list[tuple[str, dict[str, Any], str]]:
        out = []
        if isinstance(delta.get("text"), str):
            out.append(("text", delta, "text"))
        tool = delta.get("toolUse")
        if isinstance(tool, dict) and isinstance(tool.get("input"), str):
            out.append(("toolUse", tool, "input"))
        reasoning = delta.get("reasoningContent")
        if isinstance(reasoning, dict) and isinstance(reasoning.get("text"), str):
            out.append(("reasoningContent", reasoning, "text"))
        return out

    def _release(self, index: int) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for key in sorted(k for k in self._guards if k[0] == index):
            rest = self._guards.pop(key).close()
            if not rest:
                continue
            kind = key[1]
            delta: dict[str, Any] = (
                {"text": rest}
                if kind == "text"
                else {kind: {"input" if kind == "toolUse" else "text": rest}}
            )
            out.append(
                {"contentBlockDelta": {"contentBlockIndex": index, "delta": delta}}
            )
        return out

    def finish(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for index in sorted({k[0] for k in self._guards}):
            out.extend(self._release(index))
        return out


class GuardedBedrock:
    """A guarded ``bedrock-runtime`` client: ``converse`` and ``converse_stream``.

    Attributes:
        system_prompt: the registered system prompt with its canary planted.
        checks: the :class:`~aiinvariants.llm.CallGuard` it runs.
    """

    def __init__(self, client: Any, checks: CallGuard) -> None:
        self.client = client
        self.checks = checks
        self.system_prompt = checks.system_prompt

    def converse(self, **kwargs: Any) -> dict[str, Any]:
        """``converse``, guarded (same arguments)."""
        params = _prepare(self.checks, kwargs)
        return check_converse(self.checks, self.client.converse(**params))

    def converse_stream(self, **kwargs: Any) -> dict[str, Any]:
        """``converse_stream``, guarded; ``["stream"]`` yields safe events."""
        params = _prepare(self.checks, kwargs)
        response = dict(self.client.converse_stream(**params))
        response["stream"] = GuardedStream(
            response["stream"], ConverseStream(self.checks)
        )
        return response

    def __getattr__(self, name: str) -> Any:
        raise PolicyError(
            f"bedrock-runtime {name} is not guarded by aiinvariants; use "
            "converse or converse_stream"
        )

    def __repr__(self) -> str:
        return f"GuardedBedrock(region={self.checks.placement.home!r})"
