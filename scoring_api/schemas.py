"""The shapes the API reads and answers, as pydantic models (they are its OpenAPI document), and the
application's JSON Schema derived from the loan_application contract."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from contracts.events import LOAN_APPLICATION
from contracts.schema import EventContract

Decision = Literal["approve", "refer", "decline"]
# Which behaviour the features hold: the window closed at the event time, the one before it (the closed one
# not computed yet), none (no window for the customer: zeros, as in the stream), or none asked for.
Behaviour = Literal["closed_window", "previous_window", "no_window", "not_used"]


class ScoreReply(BaseModel):
    """The score of one application."""

    event_id: str = Field(description="The application event's event_id (the stream's score row has the same).")
    application_id: str = Field(description="The application (and loan) id.")
    model_version: str = Field(description="Registry version of the champion model that scored it.")
    probability: float = Field(description="Probability of default, from the champion model.")
    decision: Decision = Field(description="Band of the probability: approve below api.approve_below, decline at "
                               "or above api.decline_at, refer between.")
    reason_codes: list[str] = Field(description="Features that raise the probability most, largest first, as the "
                                    "stream gives them: only for probabilities at or above model.alert_threshold.")
    features: dict[str, float | None] = Field(description="Every model input, by name (contracts/features.py), as "
                                              "scored; null for an application attribute the application lacks "
                                              "(the model takes its training mean).")
    behaviour: Behaviour = Field(description="Where the behaviour features come from: the customer's window closed "
                                 "at the event time, the one before it, no window yet (zeros, as the stream), or "
                                 "not used (application-only scoring, zeros).")
    behaviour_as_of: str | None = Field(description="End of the behaviour window used (UTC), or null.")
    published: bool = Field(description="Whether the application was also published to the loan-applications topic.")


class Violation(BaseModel):
    """One contract rule the application breaks."""

    rule: str = Field(description="The rule as the stream's dead letters name it, e.g. range:amount_minor.")
    field: str | None = Field(description="The field it concerns, if one.")
    message: str = Field(description="What is wrong, in words.")


class ErrorReply(BaseModel):
    """Why a request was not answered with a score."""

    error: str = Field(description="A stable code: invalid_application, invalid_request, unauthorized, "
                       "rate_limited, body_too_large, store_unavailable, model_unavailable, publish_failed, "
                       "timeout, idempotency_key_reused, idempotency_key_in_progress.")
    message: str = Field(description="One sentence for people.")
    violations: list[Violation] = Field(default_factory=list, description="Each broken contract rule "
                                        "(invalid_application only).")


class BatchItem(BaseModel):
    """The answer to one application of a batch: a score or an error, with the status it would have alone."""

    index: int = Field(description="Position of the application in the request.")
    status: int = Field(description="200 with a score; otherwise the status this application alone would get.")
    score: ScoreReply | None = None
    error: ErrorReply | None = None


class BatchReply(BaseModel):
    """One answer per application, in request order."""

    results: list[BatchItem]


class Health(BaseModel):
    """Liveness or readiness."""

    status: Literal["ok", "unavailable"]
    model_version: str | None = None
    reasons: list[str] = Field(default_factory=list, description="Why the service is not ready.")


_JSON_TYPES: dict[str, dict[str, Any]] = {
    "string": {"type": "string"},
    "int": {"type": "integer", "format": "int32"},
    "long": {"type": "integer", "format": "int64"},
    "double": {"type": "number"},
    "boolean": {"type": "boolean"},
    "date": {"type": "string", "format": "date"},
    "timestamp": {"type": "string", "format": "date-time"},
}


def contract_schema(contract: EventContract = LOAN_APPLICATION) -> dict[str, Any]:
    """A JSON Schema of an event contract: types, enumerations, bounds, nullability and PII marks from its fields."""
    properties: dict[str, Any] = {}
    for f in contract.fields:
        schema = dict(_JSON_TYPES[f.type])
        if f.choices is not None:
            schema["enum"] = list(f.choices)
        if f.minimum is not None:
            schema["minimum"] = f.minimum
        if f.maximum is not None:
            schema["maximum"] = f.maximum
        notes = [f.doc] + ([f"Unit: {f.unit}."] if f.unit else []) + (["Personal data: never logged."] if f.pii else [])
        properties[f.name] = ({"anyOf": [schema, {"type": "null"}]} if f.nullable else schema) | {
            "description": " ".join(notes)}
    return {"type": "object", "title": "LoanApplication", "description": contract.doc + " Fields the contract does "
            "not know are ignored.", "properties": properties, "required": contract.required}
