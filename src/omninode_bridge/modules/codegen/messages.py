"""The codegen event payloads: the nine schemas of seed 001 (requests, responses, session status)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

import msgspec

from omninode_bridge.core.inputs import text

__all__ = [
    "CodegenAnalysisRequest",
    "CodegenAnalysisResponse",
    "CodegenMixinRequest",
    "CodegenMixinResponse",
    "CodegenPatternRequest",
    "CodegenPatternResponse",
    "CodegenStatusEvent",
    "CodegenValidationRequest",
    "CodegenValidationResponse",
    "CurrentStep",
    "Metadata",
    "Progress",
    "SessionStatus",
]

#: A short name (a language, a node type): one line, no control characters.
Name = Annotated[str, text(min_length=1, max_length=255)]
#: A document (a PRD, source code, a description): lines, tabs; no other control characters.
Document = Annotated[str, text(min_length=1, max_length=1_000_000, multiline=True)]
#: A list of short names.
Names = Annotated[list[Name], msgspec.Meta(max_length=1000)]
#: Free metadata of a status event (NUL and depth are checked for every JSON body).
Metadata = Annotated[dict[str, Any], msgspec.Meta(max_length=1000)]
#: What a session is doing now.
CurrentStep = Annotated[str, text(max_length=500)]
Progress = Annotated[float, msgspec.Meta(ge=0, le=100)]


class CodegenAnalysisRequest(msgspec.Struct, forbid_unknown_fields=True):
    """PRD analysis request."""

    prd_content: Document
    target_language: Name
    analysis_depth: Literal["basic", "comprehensive"] = "basic"


class CodegenValidationRequest(msgspec.Struct, forbid_unknown_fields=True):
    """Code validation request."""

    code_content: Document
    language: Name
    validation_rules: Names = msgspec.field(default_factory=list)


class CodegenPatternRequest(msgspec.Struct, forbid_unknown_fields=True):
    """Pattern matching request."""

    node_type: Name
    functionality_description: Document
    language: Name


class CodegenMixinRequest(msgspec.Struct, forbid_unknown_fields=True):
    """Mixin recommendation request."""

    node_name: Name
    required_capabilities: Names
    language: Name


class CodegenAnalysisResponse(msgspec.Struct):
    """Analysis result."""

    analysis_result: dict[str, Any]
    confidence_score: float
    recommendations: list[str]


class CodegenValidationResponse(msgspec.Struct):
    """Validation result."""

    is_valid: bool
    issues: list[dict[str, Any]]
    suggestions: list[str]


class CodegenPatternResponse(msgspec.Struct):
    """Pattern matches."""

    similar_patterns: list[dict[str, Any]]
    recommended_approach: str
    code_snippets: list[str]


class CodegenMixinResponse(msgspec.Struct):
    """Mixin recommendations."""

    recommended_mixins: list[str]
    implementation_notes: str
    dependencies: list[str]


SessionStatus = Literal["started", "in_progress", "completed", "failed"]


class CodegenStatusEvent(msgspec.Struct):
    """Session status, on the status topic (6 partitions, keyed by correlation id).

    Its fields have the types of :class:`CodegenStatusUpdate`, so what the HTTP endpoint accepts the
    recording consumer accepts too (a bad update is a 422 at the edge, not a dead letter).
    """

    session_id: uuid.UUID
    status: SessionStatus
    progress_percent: Progress
    current_step: CurrentStep
    metadata: Metadata = msgspec.field(default_factory=dict)
