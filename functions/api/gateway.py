"""API Gateway HTTP API events (payload 2.0) as ASGI requests, the path decoded exactly once.

API Gateway's HTTP API percent-decodes the request path before it invokes the function, in
rawPath and requestContext.http.path alike: a captured event of a request for /capture/space%20value
holds "/capture/space value" in both (tests/events/apigw_http_v2_decoded_path.json; Lambda
function URLs, by contrast, keep rawPath encoded). Mangum's own handler unquotes
requestContext.http.path once more, so a key holding "%" could never be named by its URL
(sale%2541.jpg arrived as sale%41.jpg and became saleA.jpg) while a double-encoded spelling
could. This handler takes the path as API Gateway delivers it. The spelling the client sent is
gone by then, so the ASGI scope's raw_path stays None: the CDN's edge function is what refuses
other spellings (`autocrop.urls`). Reported elsewhere, not verified here: API Gateway also ends
the path at a decoded "?", so keys holding "?" have no working URL behind it.
"""

from __future__ import annotations

from typing import Any

from mangum.handlers import HTTPGateway
from mangum.types import LambdaConfig, LambdaContext, LambdaEvent


class HttpApiGateway(HTTPGateway):
    """Mangum's HTTP API (payload 2.0) handler, without its second percent-decoding of the path."""

    @classmethod
    def infer(cls, event: LambdaEvent, context: LambdaContext, config: LambdaConfig) -> bool:
        """Payload 2.0 events only; Mangum's own handlers keep every other kind."""
        return event.get("version") == "2.0" and "http" in (event.get("requestContext") or {})

    @property
    def scope(self) -> dict[str, Any]:
        """Mangum's scope with `path` as API Gateway decoded it (the $default stage: no stage prefix)."""
        scope: dict[str, Any] = dict(super().scope)
        scope["path"] = self.event.get("rawPath") or "/"
        scope["raw_path"] = None  # the spelling as sent is not in the event
        return scope
