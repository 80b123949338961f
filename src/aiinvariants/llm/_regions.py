"""Where a call runs: region derivation and the region decision (I6).

The region of a call is read from the client, never from the caller's word:
the region in a Bedrock host (:func:`bedrock_placement`: the URL the request
goes to, not the client's ``region_name``), a Vertex location in the host, a
provider's data-residency host (``eu.api.openai.com``), or the region the
policy declares for an endpoint (``regions.declared``, e.g. an Azure
resource). A :class:`Placement` holds where the endpoint is (``home``) and
where a cross-region inference profile may route the request (``routes``,
region patterns). :func:`decide_region` denies a call whose home is unknown,
outside ``regions.allow``, or whose routes can leave it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from fnmatch import fnmatchcase
from functools import lru_cache
from typing import Final
from urllib.parse import unquote, urlsplit

from aiinvariants._errors import RegionDenied

__all__ = [
    "Placement",
    "bedrock_placement",
    "decide_region",
    "declared_region",
    "pattern_within",
    "region_from_url",
]

#: Data-residency hosts of providers whose default host has no region.
_RESIDENCY_HOSTS: Final[dict[str, str]] = {
    "eu.api.openai.com": "eu",
    "us.api.openai.com": "us",
}
_VERTEX_HOST: Final = re.compile(r"^([a-z]+-[a-z]+\d+)-aiplatform\.googleapis\.com$")
# Bedrock hosts: regional, FIPS, dual-stack (api.aws), China (amazonaws.com.cn)
# and interface VPC endpoints (vpce-….bedrock-runtime.<region>.vpce.amazonaws.com).
_AWS_HOST: Final = re.compile(
    r"^(?:vpce-[a-z0-9-]+\.)?bedrock(?:-agent)?(?:-runtime)?(?:-fips)?"
    r"\.([a-z]{2}(?:-gov|-iso[a-z]?)?-[a-z]+-\d)"
    r"\.(?:vpce\.)?(?:amazonaws\.com(?:\.cn)?|api\.aws)$"
)


@dataclass(frozen=True)
class Placement:
    """Where a call may run.

    Attributes:
        home: the region of the endpoint, or None when it cannot be
            established.
        routes: region patterns a cross-region profile may route to
            (empty: the call stays in ``home``).
        source: how the region was found (``client``, ``endpoint``,
            ``declared``…), for the audit trail.
    """

    home: str | None
    routes: tuple[str, ...] = ()
    source: str = "unknown"


# Characters on which URL parsers disagree about the host: urllib3 (what
# botocore connects with) and WHATWG parsers end the authority at a
# backslash, urlsplit does not, so ``http://a:1\\@b`` is ``b`` to urlsplit
# and ``a`` on the wire; white space and controls are stripped by some and
# refused by others.
_AMBIGUOUS: Final = re.compile(r"[\\\s\x00-\x1f\x7f]")


@lru_cache(maxsize=512)
def _endpoint(url: str) -> tuple[str, str, int | None] | None:
    """(scheme, host, port) of ``url``, or None when parsers could disagree.

    A URL with user info, a backslash, white space or a control character
    inside, or an unreadable port names no host every client would agree
    on, so it names none (its region is unknown).
    """
    text = url.strip()
    if _AMBIGUOUS.search(text):
        return None
    parts = urlsplit(text)
    if "@" in parts.netloc:
        return None
    try:
        port = parts.port
    except ValueError:
        return None
    return parts.scheme.lower(), (parts.hostname or "").lower(), port


def _origin(url: str) -> str | None:
    found = _endpoint(url)
    if found is None:
        return None
    scheme, host, port = found
    return f"{scheme}://{host}" + (f":{port}" if port else "")


def _host(url: str) -> str:
    found = _endpoint(url)
    return "" if found is None else found[1]


def declared_region(url: str, declared: Mapping[str, str]) -> str | None:
    """The region the policy declares for the endpoint ``url`` serves from.

    Keys of ``declared`` are compared by scheme, host and port, so
    ``https://res.openai.azure.com`` covers ``https://res.openai.azure.com/openai/``.
    A key with a path covers the URLs under that path, and the longest such
    key wins: a gateway that serves ``/eu`` and ``/us`` from one host is two
    endpoints. A URL whose path has dot segments (``/eu/../us``, encoded or
    not) is under no key with a path.
    """
    origin = _origin(url)
    if origin is None:
        return None
    path = _path(url)
    found: str | None = None
    longest = -1
    for key, region in declared.items():
        if _origin(key) != origin:
            continue
        key_path = _path(key)
        if key_path is None:
            continue
        prefix = key_path.rstrip("/")
        if prefix and (
            path is None or not (path == prefix or path.startswith(prefix + "/"))
        ):
            continue
        if len(prefix) > longest:
            found, longest = region.lower(), len(prefix)
    return found


def _path(url: str) -> str | None:
    """The path of ``url``, or None when a server could resolve it elsewhere."""
    path = urlsplit(url.strip()).path
    segments = unquote(path).split("/")
    if "." in segments or ".." in segments:
        return None
    return path


def region_from_url(url: str, declared: Mapping[str, str]) -> Placement:
    """The placement of an HTTP endpoint: declared, regional host, or unknown."""
    region = declared_region(url, declared)
    if region is not None:
        return Placement(region, source="declared")
    host = _host(url)
    if host in _RESIDENCY_HOSTS:
        return Placement(_RESIDENCY_HOSTS[host], source="endpoint")
    match = _VERTEX_HOST.match(host)
    if match:
        return Placement(match.group(1), source="endpoint")
    if host == "aiplatform.googleapis.com":
        # Vertex's global endpoint may serve from any region.
        return Placement("global", routes=("*",), source="endpoint")
    match = _AWS_HOST.match(host)
    if match:
        return Placement(match.group(1), source="endpoint")
    return Placement(None, source="endpoint")


def bedrock_placement(url: str, declared: Mapping[str, str]) -> Placement:
    """The placement of a Bedrock request by the URL it is sent to.

    The region is the endpoint's, never the client's ``region_name``: a
    client built for ``eu-central-1`` with an ``endpoint_url`` in
    ``us-east-1`` sends to us-east-1. A URL the policy declares wins; then a
    Bedrock host names its region; any other host (a proxy, a gateway, a
    loopback test server) has no known region until declared.
    """
    region = declared_region(url, declared)
    if region is not None:
        return Placement(region, source="declared")
    host = _host(url).rstrip(".")
    match = _AWS_HOST.match(host)
    if match:
        return Placement(match.group(1), source="endpoint")
    return Placement(None, source="endpoint")


def pattern_within(route: str, allow: tuple[str, ...]) -> bool:
    """True when every region matching glob ``route`` matches some ``allow``.

    Conservative: a route pattern is covered only by an allow pattern that
    equals it, by ``*``, or by a prefix pattern (``eu-*``) of which it is a
    narrower prefix pattern or a literal.
    """
    route = route.lower()
    for pattern in allow:
        if pattern in {route, "*"}:
            return True
        if "*" not in route and "?" not in route and fnmatchcase(route, pattern):
            return True
        if (
            pattern.endswith("*")
            and "*" not in pattern[:-1]
            and "?" not in pattern
            and route.endswith("*")
            and "*" not in route[:-1]
            and "?" not in route
            and route[:-1].startswith(pattern[:-1])
        ):
            return True
    return False


def decide_region(placement: Placement, *, allow: tuple[str, ...] | None) -> None:
    """Deny a call whose region is unknown, not allowed, or may leave the allow-list.

    ``allow=None`` means the policy has no region restriction.

    Raises:
        RegionDenied: ``region_unknown``, ``region_denied`` or
            ``cross_region_profile``.
    """
    if allow is None:
        return
    if placement.home is None:
        raise RegionDenied(
            "the region of this endpoint cannot be established; declare it "
            "in regions.declared",
            code="region_unknown",
        )
    if not pattern_within(placement.home, allow):
        raise RegionDenied(
            f"region {placement.home} is not allowed",
            code="region_denied",
            resource=placement.home,
        )
    for route in placement.routes:
        if not pattern_within(route, allow):
            raise RegionDenied(
                f"the inference profile may route to {route}, outside the "
                "allowed regions",
                code="cross_region_profile",
                resource=placement.home,
            )
