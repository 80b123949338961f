"""The sections of a policy: one frozen model per concern.

See :mod:`aiinvariants.policy` for the whole tree.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date
from typing import Annotated, Any, Final, Literal, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    StrictBool,
    Tag,
    model_validator,
)

from aiinvariants._errors import PolicyError
from aiinvariants._internal import policy_types as _pt
from aiinvariants._internal.policy_types import (
    DEFAULT_CLASSIFICATIONS,
    Action,
    Algorithm,
    Audience,
    Capability,
    EnvName,
    Frozen,
    Glob,
    Issuer,
    Label,
    NonEmptyUnique,
    PIIKind,
    Region,
    Scope,
    Seconds,
    Text,
    Unique,
    Url,
)

__all__ = [
    "CONSEQUENTIAL",
    "DEFAULT_CLASSIFICATIONS",
    "Action",
    "AnnexIII",
    "Approval",
    "AzureContentSafetyConfig",
    "BedrockGuardrailsConfig",
    "CapabilityPolicy",
    "ClassifierConfig",
    "ClearancePolicy",
    "CompetitorsOutput",
    "ConfirmWhen",
    "DataUsePolicy",
    "Exposure",
    "IdentityPolicy",
    "InjectedAction",
    "JWSAlgorithm",
    "ModelPolicy",
    "OpenAICompatibleConfig",
    "OpenAIModerationConfig",
    "OutputPolicy",
    "PIIKind",
    "PIIOutput",
    "RegionPolicy",
    "SecretsOutput",
    "SystemPromptOutput",
    "ToolOutputsOutput",
    "ToolPolicy",
    "UseCase",
]

Exposure = Literal["public", "internal"]
"""``public``: anonymous users reach it; ``internal``: authenticated users only."""

AnnexIII = Literal[
    "biometrics",
    "critical_infrastructure",
    "education",
    "employment",
    "essential_services",
    "law_enforcement",
    "migration",
    "justice",
]
"""The high-risk areas of EU AI Act (Regulation (EU) 2024/1689) Annex III."""

JWSAlgorithm = Literal[
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
    "ES256", "ES384", "ES512", "EdDSA",
]  # fmt: skip
"""The asymmetric JWS algorithms a policy may trust (RFC 7518, RFC 8037)."""

_BOUND_ORDER: Final = "_aiinvariants_classifications"


def _empty_mapping() -> Any:
    return Field(default_factory=_pt.FrozenDict)


class _Section(BaseModel):
    model_config = ConfigDict(
        frozen=True, extra="forbid", defer_build=True, hide_input_in_errors=True
    )


# -- who may see what ------------------------------------------------------------------


class ClearancePolicy(_Section):
    """How a verified principal gets a clearance (its highest readable label).

    Attributes:
        groups: group or role name (from the verified token) -> label.
        scopes: OAuth scope -> label.
        default_authenticated: the clearance of any authenticated principal
            that no mapping raises higher.
    """

    groups: Annotated[dict[Text, Label], Frozen] = _empty_mapping()
    scopes: Annotated[dict[Scope, Label], Frozen] = _empty_mapping()
    default_authenticated: Label = "public"

    def resolve(
        self,
        *,
        authenticated: bool,
        groups: Iterable[str] = (),
        scopes: Iterable[str] | str = (),
    ) -> str:
        """The clearance of a principal: the highest label its groups/scopes map to.

        An unauthenticated principal gets the public label whatever it
        claims: authority comes only with a verified identity.

        Args:
            authenticated: whether the identity was verified.
            groups: the principal's groups or roles.
            scopes: its scopes; a string is split on whitespace (RFC 6749).

        Raises:
            PolicyError: ``groups`` is a string, or this ClearancePolicy was
                built outside a Policy and maps to a label the default
                classifications do not have.
        """
        order: tuple[str, ...] = self.__dict__.get(
            _BOUND_ORDER, DEFAULT_CLASSIFICATIONS
        )
        if not authenticated:
            return order[0]
        if isinstance(groups, str):
            raise PolicyError("groups must be a collection of names, not a string")
        ranks = {label: index for index, label in enumerate(order)}
        candidates = [self.default_authenticated]
        candidates += [self.groups[g] for g in groups if g in self.groups]
        held = scopes.split() if isinstance(scopes, str) else scopes
        candidates += [self.scopes[s] for s in held if s in self.scopes]
        if any(label not in ranks for label in candidates):
            raise PolicyError(
                "the clearance map uses a label outside the classifications; "
                "use policy.clearance of a validated Policy"
            )
        return max(candidates, key=ranks.__getitem__)

    def _bound(self, classifications: tuple[str, ...]) -> ClearancePolicy:
        # resolve() needs the label order, which lives on the Policy. The
        # copy keeps an instance shared by two policies from being re-bound.
        bound = self.model_copy()
        bound.__dict__[_BOUND_ORDER] = classifications
        return bound


class IdentityPolicy(_Section):
    """The identity provider whose access tokens the app trusts.

    Exactly one key source is set: ``jwks_uri``, ``jwks`` or
    ``introspection_endpoint``. ``issuer``, ``audience`` and ``algorithms``
    have no defaults: a verifier that has not pinned them accepts tokens
    meant for someone else.

    Attributes:
        issuer: the exact ``iss`` value; an https URL (http only for
            loopback hosts), no query or fragment.
        audience: the ``aud`` value(s) this app accepts; a token minted for
            another API is refused (token confusion).
        algorithms: the accepted JWS algorithms, all asymmetric. ``none``
            and ``HS*`` are refused (RFC 8725): they enable unsigned tokens
            and key-confusion forgeries.
        jwks_uri: where the signing keys are fetched (https).
        jwks: an inline JWK Set of public keys; private or symmetric key
            material is refused.
        introspection_endpoint: an RFC 7662 endpoint for opaque tokens.
        introspection_client_id: the client id used at that endpoint.
        introspection_client_secret_env: the NAME of the environment
            variable holding the client secret.
        leeway_s: clock skew tolerated on ``exp``/``nbf``/``iat``, 0-60 s.
        require_typ: require an explicit access-token ``typ`` header
            (``at+jwt``, RFC 9068 / RFC 8725 section 3.11), so an ID token or
            another JWT from the same issuer is not accepted as an access token.
        scope_claims: claims read for scopes, in order.
        groups_claims: claims read for groups or roles, in order.
        tenant_claim: claim read for the tenant; None for single-tenant apps.
        max_token_bytes: longer tokens are refused before parsing (bounded cost).
        jwks_cache_ttl_s: how long fetched keys are cached.
        jwks_timeout_s: timeout of a key fetch; a failed fetch is a denial.
    """

    issuer: Issuer
    audience: Audience
    algorithms: Annotated[
        tuple[Annotated[JWSAlgorithm, Algorithm], ...], NonEmptyUnique
    ]
    jwks_uri: Url | None = None
    jwks: Annotated[dict[str, Any], AfterValidator(_pt.check_jwks)] | None = None
    introspection_endpoint: Url | None = None
    introspection_client_id: Text | None = None
    introspection_client_secret_env: EnvName | None = None
    leeway_s: int = Field(30, ge=0, le=60, strict=True)
    require_typ: StrictBool = True
    scope_claims: tuple[Text, ...] = ("scope", "scp")
    groups_claims: tuple[Text, ...] = ("groups", "roles")
    tenant_claim: Text | None = "tid"
    max_token_bytes: int = Field(8192, ge=1024, le=65536, strict=True)
    jwks_cache_ttl_s: int = Field(300, ge=1, le=86400, strict=True)
    jwks_timeout_s: Seconds = 5.0

    @model_validator(mode="after")
    def _one_key_source(self) -> Self:
        sources = [self.jwks_uri, self.jwks, self.introspection_endpoint]
        if sum(source is not None for source in sources) != 1:
            raise ValueError(
                "set exactly one of jwks_uri, jwks or introspection_endpoint"
            )
        client = (self.introspection_client_id, self.introspection_client_secret_env)
        if self.introspection_endpoint is None and any(c is not None for c in client):
            raise ValueError(
                "introspection_client_id / introspection_client_secret_env "
                "need introspection_endpoint"
            )
        return self


# -- models, regions, data use, capabilities, tools ------------------------------------


class ModelPolicy(_Section):
    """Which model families may be called (I5).

    Attributes:
        allow: glob patterns (``*``, ``?``) of allowed model ids, lower-cased.
            An empty tuple allows no model.
        deny: glob patterns that are refused even when allowed: deny wins.
        azure_deployments: Azure OpenAI deployment name -> the model id it
            serves, so a deployment name cannot hide a denied model.
    """

    allow: tuple[Glob, ...] = ("*",)
    deny: tuple[Glob, ...] = ()
    azure_deployments: Annotated[dict[Text, Text], Frozen] = _empty_mapping()


class RegionPolicy(_Section):
    """Where inference may run (I6).

    Attributes:
        allow: glob patterns of allowed regions, lower-cased. None means no
            region restriction; when set, a call whose region is unknown is
            denied. An empty tuple allows no region.
        declared: endpoint URL -> the region it serves, for endpoints whose
            region cannot be read from the URL (e.g. Azure resources).
    """

    allow: tuple[Glob, ...] | None = None
    declared: Annotated[dict[Url, Region], Frozen] = _empty_mapping()


class DataUsePolicy(_Section):
    """Provider data-use opt-out (I7).

    Attributes:
        require_opt_out: set the provider's "do not train / do not retain"
            switch on every call where the provider has one, and refuse a
            call that turns it off.
    """

    require_opt_out: StrictBool = True


#: The consequential capabilities: what a tool does that an attacker who
#: wrote content the run read would want done (I12). See docs/run-taint.md.
CONSEQUENTIAL: Final = (
    "sends_external",  # e-mail, message, HTTP request to a party outside the app
    "posts_publicly",  # publishes content (web page, public channel, social post)
    "fetches_url",  # requests a URL the call names (the URL itself carries data)
    "moves_money",  # payment, transfer, refund, standing-order change
    "books_or_buys",  # reservation, purchase, order, subscription
    "deletes",  # removes or overwrites data the user keeps
    "changes_credentials",  # password, key, token, MFA or recovery change
    "grants_access",  # shares, invites, adds members, changes permissions
    "modifies_data",  # creates or edits the user's records, files or events
)

ConfirmWhen = Literal["untrusted", "private_and_untrusted"]
"""When a ``confirm`` capability needs confirmation: once the run read
untrusted content (integrity and exfiltration), or only once it read both
private data and untrusted content (exfiltration only, the former rule)."""

InjectedAction = Literal["refuse", "confirm"]
"""What happens to a call whose argument came from untrusted content only."""


class CapabilityPolicy(_Section):
    """Tool capabilities AI may never reach, or only with confirmation (I3, I12).

    Attributes:
        forbidden: capabilities refused at tool registration and at call.
        confirm: the consequential capabilities: a tool with one of them
            needs a human confirmation in a run that read untrusted content,
            unless every argument of the call traces back to the user's
            request or trusted data (argument provenance). Defaults to every
            name in ``CONSEQUENTIAL``.
        confirm_when: ``untrusted`` (the default): untrusted content alone
            makes ``confirm`` capabilities need confirmation (an injected
            transfer or deletion needs no private data). A policy that sets
            ``confirm`` itself and leaves this out keeps the former rule,
            ``private_and_untrusted``.
        injected: a consequential call with an argument found in untrusted
            content and not in the user's request or trusted data is
            ``refuse``-d (``ToolForbidden``, code ``injected_argument``), or
            needs a ``confirm``-ation like any other.
        delegated: a call whose every such argument comes from the content
            of a record the user's request names ("pay the bill
            'bill-december-2023.txt'": the IBAN is in that file only) needs
            a ``confirm``-ation (the default), or is ``refuse``-d like an
            injected one: an app whose users never hand a task to content
            keeps an injection written into the named record from being
            asked at all.
    """

    forbidden: tuple[Capability, ...] = ("life_safety",)
    confirm: tuple[Capability, ...] = CONSEQUENTIAL
    confirm_when: ConfirmWhen = "untrusted"
    injected: InjectedAction = "refuse"
    delegated: InjectedAction = "confirm"

    @model_validator(mode="before")
    @classmethod
    def _former_rule_for_explicit_lists(cls, data: Any) -> Any:
        # A policy written for the former rule (``confirm: [sends_external]``
        # meant "when private and untrusted") keeps its meaning.
        if (
            isinstance(data, Mapping)
            and "confirm" in data
            and ("confirm_when" not in data)
        ):
            return {**data, "confirm_when": "private_and_untrusted"}
        return data

    @model_validator(mode="after")
    def _delegated_no_stricter_than_injected(self) -> Self:
        if self.delegated == "refuse" and self.injected == "confirm":
            raise ValueError(
                "capabilities.delegated: refuse with injected: confirm would "
                "refuse the values of the record the user named and ask for "
                "any other content's; set delegated: confirm, or both to refuse"
            )
        return self


class ToolPolicy(_Section):
    """What one tool needs and what it touches.

    A tool carrying a forbidden capability is valid here: it is refused at
    registration and at call, and reported by the policy verifier.

    Attributes:
        scopes: every one of these scopes is needed (RFC 6749 scope tokens;
            wildcards are refused).
        any_scopes: when non-empty, at least one of these is needed as well.
        data: the highest classification the tool returns. None means
            undeclared, treated as the highest label (fail closed).
        capabilities: what the tool can do (``sends_external``...).
        exposure: overrides the app's exposure for this tool.
        enabled: a disabled tool is refused.
        untrusted_output: the output may carry injected instructions and
            taints the run (I12).
        trusted_fields: fields of an untrusted output that the system of
            record writes, not whoever sent the content (ids, timestamps,
            the account's own fields): their values count as trusted data
            for argument provenance (I12); the rest stays untrusted. They
            count on the records of the result (the result, or the items
            of the list it is), not deeper; for any output they also name
            the fields by which the user's request can identify a record.
        container_fields: the trusted fields that name where a record lies,
            not the record (a message's channel, a file's folder): a value
            many records share. A request naming the container ("the web
            sites posted in 'general'") delegates to the content of every
            record in it (asked, never run unasked); the value identifies
            none of them. Each must be listed in ``trusted_fields``.
        free_text: the parameters whose values are the model's prose (a
            mail's subject and body): only the identifiers they carry are
            checked. Declared, every other parameter is checked whole,
            whatever its name; undeclared (None), a parameter named like
            prose (``body``, ``message``, ``text``...) is prose, and one
            named ``subject`` or ``title`` is checked whole, whatever its
            length (it may name the document the call acts on).
        confidential_output: the raw output must never be echoed (I8).
    """

    scopes: tuple[Scope, ...] = ()
    any_scopes: tuple[Scope, ...] = ()
    data: Label | None = None
    capabilities: tuple[Capability, ...] = ()
    exposure: Exposure | None = None
    enabled: StrictBool = True
    untrusted_output: StrictBool = True
    trusted_fields: tuple[Text, ...] = ()
    container_fields: tuple[Text, ...] = ()
    free_text: tuple[Text, ...] | None = None
    confidential_output: StrictBool = False

    @model_validator(mode="after")
    def _containers_are_trusted_fields(self) -> Self:
        missing = [f for f in self.container_fields if f not in self.trusted_fields]
        if missing:
            raise ValueError(
                f"container_fields {missing!r} are not in trusted_fields: a "
                "container is named by a field the system of record writes; "
                "list them under trusted_fields too"
            )
        return self


# -- outputs ---------------------------------------------------------------------------


class SecretsOutput(_Section):
    """Credentials in output (I8).

    Attributes:
        enabled: run the filter.
        action: what to do with a finding.
        registered_env: NAMES of environment variables whose values are the
            app's own secrets, matched in output. Never the values.
    """

    enabled: StrictBool = True
    action: Action = "block"
    registered_env: tuple[EnvName, ...] = ()


class SystemPromptOutput(_Section):
    """System prompt and hidden-policy leaks (I8).

    Attributes:
        enabled: run the filter.
        action: what to do with a finding.
        threshold: similarity in (0, 1] from which output counts as a leak.
        canary: plant a canary token in the system prompt and block it.
    """

    enabled: StrictBool = True
    action: Action = "block"
    threshold: float = Field(0.6, gt=0, le=1, allow_inf_nan=False, strict=True)
    canary: StrictBool = True


class ToolOutputsOutput(_Section):
    """Raw confidential tool outputs copied into the answer (I8).

    Attributes:
        enabled: run the filter.
        action: what to do with a finding.
        min_overlap_chars: the shortest verbatim overlap that counts.
    """

    enabled: StrictBool = True
    action: Action = "block"
    min_overlap_chars: int = Field(40, ge=8, le=100_000, strict=True)


class CompetitorsOutput(_Section):
    """Disparaging named competitors, the company or its people (I9).

    Attributes:
        enabled: run the filter.
        action: what to do with a finding.
        names: competitor names.
        aliases: competitor name -> other spellings; keys must be in ``names``.
        protect: the company's own names and people, also not to be disparaged.
    """

    enabled: StrictBool = True
    action: Action = "block"
    names: tuple[Text, ...] = ()
    aliases: Annotated[dict[Text, tuple[Text, ...]], Frozen] = _empty_mapping()
    protect: tuple[Text, ...] = ()

    @model_validator(mode="after")
    def _aliases_name_competitors(self) -> Self:
        _pt.raise_errors(
            "competitors",
            [
                (("aliases", name), "is not one of the competitor names")
                for name in self.aliases
                if name not in self.names
            ],
        )
        return self


class PIIOutput(_Section):
    """Personal data in output.

    Attributes:
        enabled: run the filter.
        action: what to do with a finding; redaction by default.
        kinds: which kinds of personal data are looked for.
    """

    enabled: StrictBool = True
    action: Action = "redact"
    kinds: Annotated[tuple[PIIKind, ...], Unique] = (
        "email",
        "phone",
        "payment_card",
        "iban",
        "national_id",
    )


class _Classifier(_Section):
    """Settings every classifier shares.

    Attributes:
        fail: ``closed`` (default): an error or timeout blocks the output;
            ``open`` lets it through (insecure, named so on purpose).
        timeout_s: per-call timeout, 0-60 s.
        api_key_env: NAME of the environment variable holding the API key.
    """

    fail: Literal["closed", "open"] = "closed"
    timeout_s: Seconds = 5.0
    api_key_env: EnvName | None = None


class BedrockGuardrailsConfig(_Classifier):
    """Amazon Bedrock Guardrails (ApplyGuardrail).

    Attributes:
        guardrail_id: the guardrail id or ARN.
        guardrail_version: ``DRAFT`` or a version number.
        region: the AWS region of the guardrail, e.g. ``eu-central-1``.
    """

    kind: Literal["bedrock_guardrails"] = "bedrock_guardrails"
    guardrail_id: Annotated[str, Field(pattern=r"^[A-Za-z0-9:/._-]{1,2048}$")]
    guardrail_version: Annotated[str, Field(pattern=r"^(DRAFT|[1-9][0-9]{0,7})$")] = (
        "DRAFT"
    )
    region: Region


class AzureContentSafetyConfig(_Classifier):
    """Azure AI Content Safety (text:analyze).

    Attributes:
        endpoint: the resource endpoint (https).
        categories: the harm categories checked.
        threshold: severity (0-7) from which a category counts as a finding.
    """

    kind: Literal["azure_content_safety"] = "azure_content_safety"
    endpoint: Url
    categories: Annotated[
        tuple[Literal["Hate", "SelfHarm", "Sexual", "Violence"], ...],
        NonEmptyUnique,
    ] = ("Hate", "SelfHarm", "Sexual", "Violence")
    threshold: int = Field(2, ge=0, le=7, strict=True)


class OpenAIModerationConfig(_Classifier):
    """The OpenAI moderation endpoint.

    Attributes:
        model: the moderation model.
    """

    kind: Literal["openai_moderation"] = "openai_moderation"
    model: Text = "omni-moderation-latest"


class OpenAICompatibleConfig(_Classifier):
    """A safety classifier behind an OpenAI-compatible API (e.g. Llama Guard).

    Attributes:
        base_url: the API base URL (https, or http on loopback).
        model: the classifier model name.
    """

    kind: Literal["openai_compatible"] = "openai_compatible"
    base_url: Url
    model: Text


def _kind(value: Any) -> Any:
    if isinstance(value, Mapping):
        return value.get("kind")
    return getattr(value, "kind", None)


_CLASSIFIER_KINDS: Final = (
    "bedrock_guardrails",
    "azure_content_safety",
    "openai_moderation",
    "openai_compatible",
)


def _by_kind(kinds: tuple[str, ...]) -> Discriminator:
    """Choose a union member by its ``kind``; an unknown kind names the choices."""
    return Discriminator(
        _kind,
        custom_error_type="unknown_kind",
        custom_error_message="kind must be one of: " + ", ".join(kinds),
        custom_error_context={},
    )


ClassifierConfig = Annotated[
    Annotated[BedrockGuardrailsConfig, Tag("bedrock_guardrails")]
    | Annotated[AzureContentSafetyConfig, Tag("azure_content_safety")]
    | Annotated[OpenAIModerationConfig, Tag("openai_moderation")]
    | Annotated[OpenAICompatibleConfig, Tag("openai_compatible")],
    _by_kind(_CLASSIFIER_KINDS),
]
"""One classifier, chosen by its ``kind``."""


class OutputPolicy(_Section):
    """The output filters (I8-I10). Every one is on by default.

    Attributes:
        secrets: credentials.
        system_prompt: system prompt and hidden policies.
        tool_outputs: raw confidential tool outputs.
        competitors: disparagement.
        pii: personal data.
        classifiers: external banned-content classifiers, in order.
    """

    secrets: SecretsOutput = Field(default_factory=SecretsOutput)
    system_prompt: SystemPromptOutput = Field(default_factory=SystemPromptOutput)
    tool_outputs: ToolOutputsOutput = Field(default_factory=ToolOutputsOutput)
    competitors: CompetitorsOutput = Field(default_factory=CompetitorsOutput)
    pii: PIIOutput = Field(default_factory=PIIOutput)
    classifiers: tuple[ClassifierConfig, ...] = ()


# -- use cases -------------------------------------------------------------------------


class Approval(_Section):
    """A recorded approval of a high-risk use case.

    Attributes:
        by: who approved, as an e-mail address.
        reference: the approval's reference (ticket, decision id).
        expires: the last day the approval is valid (inclusive).
    """

    by: Annotated[str, AfterValidator(_pt.check_email)]
    reference: Text
    expires: date

    def is_valid_on(self, day: date) -> bool:
        """True when the approval still holds on ``day``."""
        return day <= self.expires


class UseCase(_Section):
    """A declared use of AI (I11).

    Attributes:
        description: what the use case is, for people.
        high_risk: the EU AI Act Annex III area, if the use is high-risk.
        approval: the recorded approval; a high-risk use case runs only with
            one that has not expired. An expired approval is not a load
            error: it is refused at run time.
    """

    description: Annotated[str, Field(max_length=4096)] = ""
    high_risk: AnnexIII | None = None
    approval: Approval | None = None

    def is_approved_on(self, day: date) -> bool:
        """True when the use case may run on ``day``."""
        if self.high_risk is None:
            return True
        return self.approval is not None and self.approval.is_valid_on(day)


_MOVED_TO_AUDIT: Final = frozenset(
    {
        "AuditPolicy",
        "JsonlSinkConfig",
        "LoggingSinkConfig",
        "MemorySinkConfig",
        "OtelSinkConfig",
        "SinkConfig",
    }
)


def __getattr__(name: str) -> Any:
    # The audit section lives in _audit_sections; the deprecated path
    # aiinvariants.policy.sections (this module) still serves its names.
    if name in _MOVED_TO_AUDIT:
        from aiinvariants.policy import _audit_sections

        return getattr(_audit_sections, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
