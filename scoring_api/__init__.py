"""The synchronous scoring API: one application in, the champion's probability, decision band and reasons out.

It scores exactly as the stream does: the contract's validation (contracts/validate.py), the feature
formulas (contracts/feature_formulas.py), the behaviour window the stream would look up in the serving
database, and the stream's own scorer (udfs/scorer.py) on the registry's champion. ``riskctl serve`` or
``python -m scoring_api`` starts it; docs/API.md says how to call it.

Modules: ``app`` (routes, errors, limits, upkeep), ``service`` (one request from body to answer), ``inputs``
(validation and the model's input row), ``champion`` (the stream's scorer on the champion), ``store`` (the
serving database, all its SQL), ``keys`` (API keys), ``limits`` (rate limit, body size), ``publish`` (the
optional copy to Kafka), ``schemas`` (request and reply shapes), ``metrics``, ``server`` (uvicorn, OpenAPI).
"""
