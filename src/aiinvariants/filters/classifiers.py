"""Content classifiers that block banned categories, failing closed (I10).

A :class:`Classifier` looks at a whole answer and says whether it falls in a
banned category. Adapters:

* :class:`BedrockGuardrailsClassifier`: Amazon Bedrock ``ApplyGuardrail``
  (boto3 ``bedrock-runtime``), ``source="OUTPUT"``; flagged when the
  guardrail's ``action`` is ``GUARDRAIL_INTERVENED``.
* :class:`AzureContentSafetyClassifier`: Azure AI Content Safety
  ``POST {endpoint}/contentsafety/text:analyze``; flagged when a checked
  category's severity reaches the threshold.
* :class:`OpenAIModerationClassifier`: ``POST {base_url}/moderations``;
  flagged when a result is ``flagged``.
* :class:`OpenAICompatibleClassifier`: a safety model (e.g. Llama Guard)
  behind ``POST {base_url}/chat/completions``, answering ``safe`` or
  ``unsafe\\n<categories>``.

Every call has a timeout and bounded tenacity retries (transient errors
only: timeouts, connection errors, 5xx, 429; at most ``attempts`` tries
within ``budget_s``). Any failure, including a malformed answer, is a
:class:`ClassifierError`; :class:`ClassifierFilter` turns it into a blocking
finding unless the classifier was built with ``fail_open=True`` (policy
``fail: open``). A classifier judges the whole answer, so a stream guarded
with classifiers is held back until it is complete.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol, TypeVar, runtime_checkable

import httpx
from tenacity import (
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    stop_after_delay,
    wait_exponential,
)

from aiinvariants._errors import InsecureUsageWarning, PolicyError
from aiinvariants._internal.urls import require_url
from aiinvariants.filters._base import Action, Finding, fingerprint

__all__ = [
    "AzureContentSafetyClassifier",
    "BedrockGuardrailsClassifier",
    "Classifier",
    "ClassifierError",
    "ClassifierFilter",
    "OpenAICompatibleClassifier",
    "OpenAIModerationClassifier",
    "Verdict",
    "classifiers_from_policy",
]

T = TypeVar("T")
_WHOLE: Final = 1 << 30


@dataclass(frozen=True)
class Verdict:
    """A classifier's answer.

    Attributes:
        flagged: the text falls in a banned category.
        categories: the categories found (names as the service gives them).
    """

    flagged: bool
    categories: tuple[str, ...] = ()


class ClassifierError(Exception):
    """A classifier could not give a verdict (timeout, 5xx, malformed answer).

    The message names the classifier and the failure, never the text.
    """


class _Transient(ClassifierError):
    """A failure worth retrying."""


@runtime_checkable
class Classifier(Protocol):
    """Anything with a ``name``, a ``fail_open`` flag and ``classify(text)``.

    The adapters also have ``close()``, which releases their connections.
    """

    name: str
    fail_open: bool

    def classify(self, text: str) -> Verdict:
        """The verdict on ``text``; raises :class:`ClassifierError` on failure."""
        ...


class _Base:
    name = "classifier"

    def __init__(
        self, *, timeout_s: float, attempts: int, budget_s: float, fail_open: bool
    ) -> None:
        if not 0 < timeout_s <= 60:
            raise PolicyError(f"{self.name}: timeout_s must be in (0, 60]")
        if not 1 <= attempts <= 5 or not 0 < budget_s <= 120:
            raise PolicyError(f"{self.name}: attempts 1-5 and budget_s (0, 120]")
        self.timeout_s = float(timeout_s)
        self.attempts = attempts
        self.budget_s = float(budget_s)
        self.fail_open = fail_open
        if fail_open:
            warnings.warn(
                f"{self.name} is fail-open: an error lets output through",
                InsecureUsageWarning,
                stacklevel=3,
            )

    def _retry(self, call: Callable[[], T]) -> T:
        retrying = Retrying(
            stop=stop_after_attempt(self.attempts) | stop_after_delay(self.budget_s),
            wait=wait_exponential(multiplier=0.05, max=1.0),
            retry=retry_if_exception_type(_Transient),
            reraise=True,
        )
        try:
            return retrying(call)
        except _Transient as exc:
            raise ClassifierError(str(exc)) from exc

    def __repr__(self) -> str:
        return f"{type(self).__name__}(fail_open={self.fail_open})"


class _HTTP(_Base):
    def __init__(
        self,
        *,
        headers: Mapping[str, str],
        timeout_s: float,
        attempts: int,
        budget_s: float,
        fail_open: bool,
        transport: httpx.BaseTransport | None,
    ) -> None:
        super().__init__(
            timeout_s=timeout_s,
            attempts=attempts,
            budget_s=budget_s,
            fail_open=fail_open,
        )
        # The URL (checked by the subclass) is plain http only on loopback:
        # never send it through a proxy from the environment (see
        # aiinvariants._internal.urls.env_proxies_allowed); https keeps the proxy.
        direct = None if transport is not None else {"http://": httpx.HTTPTransport()}
        self._http = httpx.Client(
            headers=dict(headers),
            timeout=self.timeout_s,
            transport=transport,
            mounts=direct,
        )

    def _post(self, url: str, body: Any) -> Any:
        def once() -> Any:
            try:
                resp = self._http.post(url, json=body)
            except httpx.TimeoutException as exc:
                raise _Transient(f"{self.name}: timed out") from exc
            except httpx.HTTPError as exc:
                raise _Transient(f"{self.name}: {type(exc).__name__}") from exc
            if resp.status_code >= 500 or resp.status_code == 429:
                raise _Transient(f"{self.name}: HTTP {resp.status_code}")
            if resp.status_code != 200:
                raise ClassifierError(f"{self.name}: HTTP {resp.status_code}")
            try:
                return resp.json()
            except ValueError as exc:
                raise ClassifierError(f"{self.name}: answer is not JSON") from exc

        return self._retry(once)

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self._http.close()


def _malformed(name: str) -> ClassifierError:
    return ClassifierError(f"{name}: malformed answer")


class AzureContentSafetyClassifier(_HTTP):
    """Azure AI Content Safety ``text:analyze``.

    Args:
        endpoint: the resource endpoint, e.g. ``https://x.cognitiveservices.azure.com``.
        api_key: the resource key (sent as ``Ocp-Apim-Subscription-Key``).
        categories: the harm categories to check.
        threshold: severity (0-7) from which a category is a finding.
        timeout_s, attempts, budget_s: per-try timeout and the retry budget.
        fail_open: let output through when the service fails (insecure).
        transport: an httpx transport (tests).
    """

    name = "azure_content_safety"
    api_version = "2024-09-01"

    def __init__(
        self,
        *,
        endpoint: str,
        api_key: str,
        categories: Sequence[str] = ("Hate", "SelfHarm", "Sexual", "Violence"),
        threshold: int = 2,
        timeout_s: float = 5.0,
        attempts: int = 3,
        budget_s: float = 10.0,
        fail_open: bool = False,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        super().__init__(
            headers={"Ocp-Apim-Subscription-Key": api_key},
            timeout_s=timeout_s,
            attempts=attempts,
            budget_s=budget_s,
            fail_open=fail_open,
            transport=transport,
        )
        # The API key goes to this URL: the library's one URL rule.
        endpoint = require_url(endpoint, what="endpoint", query=False)
        self.url = (
            endpoint.rstrip("/")
            + f"/contentsafety/text:analyze?api-version={self.api_version}"
        )
        self.categories = tuple(categories)
        self.threshold = threshold

    def classify(self, text: str) -> Verdict:
        doc = self._post(
            self.url,
            {
                "text": text,
                "categories": list(self.categories),
                "outputType": "FourSeverityLevels",
            },
        )
        try:
            found = tuple(
                str(c["category"])
                for c in doc["categoriesAnalysis"]
                if int(c["severity"]) >= self.threshold
            )
            blocklists = tuple(
                f"blocklist:{m['blocklistName']}"
                for m in doc.get("blocklistsMatch") or ()
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise _malformed(self.name) from exc
        hits = found + blocklists
        return Verdict(bool(hits), hits)


class OpenAIModerationClassifier(_HTTP):
    """The OpenAI moderation endpoint (``POST /moderations``).

    Args:
        api_key: the API key.
        model: the moderation model.
        base_url: the API base URL.
        timeout_s, attempts, budget_s, fail_open, transport: as for
            :class:`AzureContentSafetyClassifier`.
    """

    name = "openai_moderation"

    def __init__(
        self,
        *,
        api_key: str,
        model: str = "omni-moderation-latest",
        base_url: str = "https://api.openai.com/v1",
        timeout_s: float = 5.0,
        attempts: int = 3,
        budget_s: float = 10.0,
        fail_open: bool = False,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        super().__init__(
            headers={"Authorization": f"Bearer {api_key}"},
            timeout_s=timeout_s,
            attempts=attempts,
            budget_s=budget_s,
            fail_open=fail_open,
            transport=transport,
        )
        base_url = require_url(base_url, what="base_url", query=False)
        self.url = base_url.rstrip("/") + "/moderations"
        self.model = model

    def classify(self, text: str) -> Verdict:
        doc = self._post(self.url, {"model": self.model, "input": text})
        try:
            results = doc["results"]
            if not results:
                raise _malformed(self.name)
            flagged = any(bool(r["flagged"]) for r in results)
            cats = sorted(
                {k for r in results for k, v in r["categories"].items() if v is True}
            )
        except (KeyError, TypeError, AttributeError) as exc:
            raise _malformed(self.name) from exc
        if not isinstance(results[0]["flagged"], bool):
            raise _malformed(self.name)
        return Verdict(flagged, tuple(cats))


class OpenAICompatibleClassifier(_HTTP):
    """A safety model (e.g. Llama Guard) behind an OpenAI-compatible API.

    The answer under review is sent as the assistant turn; the model must
    reply ``safe`` or ``unsafe`` followed by a line of categories
    (``S1,S10``). Any other reply is malformed, hence a denial.

    Args:
        base_url: the API base URL (``.../v1``).
        model: the classifier model name.
        api_key: the API key, if the endpoint needs one.
        timeout_s, attempts, budget_s, fail_open, transport: as for
            :class:`AzureContentSafetyClassifier`.
    """

    name = "openai_compatible"

    def __init__(
        self,
        *,
        base_url: str,
        model: str,
        api_key: str | None = None,
        timeout_s: float = 5.0,
        attempts: int = 3,
        budget_s: float = 10.0,
        fail_open: bool = False,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        super().__init__(
            headers=headers,
            timeout_s=timeout_s,
            attempts=attempts,
            budget_s=budget_s,
            fail_open=fail_open,
            transport=transport,
        )
        base_url = require_url(base_url, what="base_url", query=False)
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model = model

    def classify(self, text: str) -> Verdict:
        doc = self._post(
            self.url,
            {
                "model": self.model,
                "temperature": 0,
                "messages": [
                    {"role": "user", "content": "Review the assistant's answer."},
                    {"role": "assistant", "content": text},
                ],
            },
        )
        try:
            answer = doc["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError) as exc:
            raise _malformed(self.name) from exc
        if not isinstance(answer, str):
            raise _malformed(self.name)
        lines = [ln.strip() for ln in answer.strip().splitlines() if ln.strip()]
        if lines and lines[0].lower() == "safe" and len(lines) == 1:
            return Verdict(False)
        if lines and lines[0].lower() == "unsafe":
            cats = tuple(c.strip() for c in ",".join(lines[1:]).split(",") if c.strip())
            return Verdict(True, cats)
        raise _malformed(self.name)


class BedrockGuardrailsClassifier(_Base):
    """Amazon Bedrock Guardrails through boto3 ``apply_guardrail``.

    Args:
        client: a boto3 ``bedrock-runtime`` client; build it with
            :meth:`from_region` to get the timeouts set on it.
        guardrail_id: the guardrail id or ARN.
        guardrail_version: ``DRAFT`` or a version number.
        attempts, budget_s, fail_open: as for the HTTP classifiers
            (``timeout_s`` is the client's; see :meth:`from_region`).
    """

    name = "bedrock_guardrails"

    def __init__(
        self,
        *,
        client: Any,
        guardrail_id: str,
        guardrail_version: str = "DRAFT",
        timeout_s: float = 5.0,
        attempts: int = 3,
        budget_s: float = 10.0,
        fail_open: bool = False,
    ) -> None:
        super().__init__(
            timeout_s=timeout_s,
            attempts=attempts,
            budget_s=budget_s,
            fail_open=fail_open,
        )
        self._client = client
        self.guardrail_id = guardrail_id
        self.guardrail_version = guardrail_version

    @classmethod
    def from_region(
        cls,
        region: str,
        *,
        guardrail_id: str,
        guardrail_version: str = "DRAFT",
        timeout_s: float = 5.0,
        endpoint_url: str | None = None,
        **kwargs: Any,
    ) -> BedrockGuardrailsClassifier:
        """Build the boto3 client too, with connect/read timeouts and no
        botocore retries (tenacity retries instead)."""
        import boto3  # type: ignore[import-untyped,unused-ignore]
        from botocore.config import (  # type: ignore[import-untyped,unused-ignore]
            Config,
        )

        config = Config(
            connect_timeout=timeout_s,
            read_timeout=timeout_s,
            retries={"max_attempts": 1, "mode": "standard"},
        )
        client = boto3.client(
            "bedrock-runtime",
            region_name=region,
            config=config,
            endpoint_url=endpoint_url,
        )
        return cls(
            client=client,
            guardrail_id=guardrail_id,
            guardrail_version=guardrail_version,
            timeout_s=timeout_s,
            **kwargs,
        )

    def close(self) -> None:
        """Close the boto3 client's connections."""
        close = getattr(self._client, "close", None)
        if callable(close):
            close()

    def classify(self, text: str) -> Verdict:
        from botocore.exceptions import (  # type: ignore[import-untyped,unused-ignore]
            BotoCoreError,
            ClientError,
            ConnectionError,
            ReadTimeoutError,
        )

        def once() -> Any:
            try:
                return self._client.apply_guardrail(
                    guardrailIdentifier=self.guardrail_id,
                    guardrailVersion=self.guardrail_version,
                    source="OUTPUT",
                    content=[{"text": {"text": text}}],
                )
            except (ReadTimeoutError, ConnectionError) as exc:
                raise _Transient(f"{self.name}: {type(exc).__name__}") from exc
            except ClientError as exc:
                status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
                if isinstance(status, int) and (status >= 500 or status == 429):
                    raise _Transient(f"{self.name}: HTTP {status}") from exc
                raise ClassifierError(f"{self.name}: HTTP {status}") from exc
            except (BotoCoreError, ValueError) as exc:
                raise ClassifierError(f"{self.name}: {type(exc).__name__}") from exc

        doc = self._retry(once)
        action = doc.get("action") if isinstance(doc, Mapping) else None
        if action == "NONE":
            return Verdict(False)
        if action != "GUARDRAIL_INTERVENED":
            raise _malformed(self.name)
        cats: set[str] = set()
        for assessment in doc.get("assessments") or ():
            for policy_name, body in assessment.items():
                if isinstance(body, Mapping):
                    cats.add(policy_name)
        return Verdict(True, tuple(sorted(cats)))


class ClassifierFilter:
    """An output filter that asks a :class:`Classifier` about the whole text.

    A flagged text is one blocking finding ``classifier-<name>`` (I10); a
    classifier error is a blocking ``classifier-error-<name>`` finding
    unless the classifier is fail-open. The filter declares the whole text
    as its reach, so a :class:`~aiinvariants.filters.StreamGuard` holds a
    stream back until it is complete.
    """

    invariant = "I10"

    def __init__(self, classifier: Classifier) -> None:
        if not isinstance(classifier, Classifier):
            raise PolicyError(f"{type(classifier).__name__} is not a Classifier")
        self.classifier = classifier
        self.action: Action = "block"
        self.max_finding = _WHOLE
        self.context = _WHOLE

    def __repr__(self) -> str:
        return f"ClassifierFilter({self.classifier!r})"

    def scan(self, text: str) -> list[Finding]:
        if not text.strip():
            return []
        name = self.classifier.name
        try:
            verdict = self.classifier.classify(text)
        except Exception:
            if self.classifier.fail_open:
                return []
            return [
                Finding(
                    f"classifier-error-{name}",
                    0,
                    len(text),
                    "high",
                    fingerprint(text),
                    "block",
                    "I10",
                )
            ]
        if not verdict.flagged:
            return []
        return [
            Finding(
                f"classifier-{name}",
                0,
                len(text),
                "critical",
                fingerprint(text),
                "block",
                "I10",
            )
        ]


def _key(env: str | None, name: str, environ: Mapping[str, str]) -> str | None:
    if env is None:
        return None
    value = environ.get(env)
    if not value:
        raise PolicyError(
            f"outputs.classifiers: {name}: environment variable {env} is unset or empty"
        )
    return value


def _needed(key: str | None, kind: str) -> str:
    if key is None:
        raise PolicyError(f"outputs.classifiers: {kind} needs api_key_env")
    return key


def classifiers_from_policy(
    policy: Any, *, environ: Mapping[str, str] = os.environ
) -> list[Classifier]:
    """The classifiers ``outputs.classifiers`` declares, ready to call.

    Raises:
        PolicyError: a named API-key variable is unset or empty, or a
            classifier that needs a key has none.
    """
    out: list[Classifier] = []
    for cfg in policy.outputs.classifiers:
        common = {"timeout_s": cfg.timeout_s, "fail_open": cfg.fail == "open"}
        key = _key(cfg.api_key_env, cfg.kind, environ)
        if cfg.kind == "bedrock_guardrails":
            out.append(
                BedrockGuardrailsClassifier.from_region(
                    cfg.region,
                    guardrail_id=cfg.guardrail_id,
                    guardrail_version=cfg.guardrail_version,
                    **common,
                )
            )
        elif cfg.kind == "azure_content_safety":
            out.append(
                AzureContentSafetyClassifier(
                    endpoint=cfg.endpoint,
                    api_key=_needed(key, cfg.kind),
                    categories=cfg.categories,
                    threshold=cfg.threshold,
                    **common,
                )
            )
        elif cfg.kind == "openai_moderation":
            out.append(
                OpenAIModerationClassifier(
                    api_key=_needed(key, cfg.kind), model=cfg.model, **common
                )
            )
        else:
            out.append(
                OpenAICompatibleClassifier(
                    base_url=cfg.base_url, model=cfg.model, api_key=key, **common
                )
            )
    return out
