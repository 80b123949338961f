"""Secure retrieval: what documents carry, and how access to them is decided.

The public names of retrieval (I1, I2): the metadata keys a document or
chunk carries (``CLASSIFICATION``, ``TENANT``, ``ALLOWED_USERS``…), the
authorizer that decides each document for the current principal, and the
search that every retriever integration runs. ``guard.retriever(...)`` is the
usual way in; see docs/secure-retrieval.md.
"""

from __future__ import annotations

from aiinvariants._classification import (
    ALLOWED_GROUPS,
    ALLOWED_USERS,
    CLASSIFICATION,
    DOC_ID,
    TENANT,
    UNTRUSTED,
    AccessDecision,
    Authorizer,
    LabelAuthorizer,
    allowed_labels,
    clearance_of,
    decide,
)
from aiinvariants._options import RetrievalOptions
from aiinvariants._retrieval import (
    RetrievalReport,
    SecureSearch,
    UnlabelledDataWarning,
    secure_retriever,
)

__all__ = [
    "ALLOWED_GROUPS",
    "ALLOWED_USERS",
    "CLASSIFICATION",
    "DOC_ID",
    "TENANT",
    "UNTRUSTED",
    "AccessDecision",
    "Authorizer",
    "LabelAuthorizer",
    "RetrievalOptions",
    "RetrievalReport",
    "SecureSearch",
    "UnlabelledDataWarning",
    "allowed_labels",
    "clearance_of",
    "decide",
    "secure_retriever",
]
