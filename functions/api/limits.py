"""Bodies over the synchronous Lambda payload limit: 413 with the way forward, before any work."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from functions.api.models import ApiError
from functions.settings import get_settings


class BodyLimitMiddleware:
    """Answer 413 to bodies over `api_max_body_bytes` (declared or streamed) before any work."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        limit = get_settings().api_max_body_bytes
        declared = dict(scope["headers"]).get(b"content-length", b"").decode()
        if declared.isdigit() and int(declared) > limit:
            await _too_large(int(declared), limit).response()(scope, receive, send)
            return
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                await _too_large(size, limit).response()(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": b"".join(chunks), "more_body": False}

        await self.app(scope, replay, send)


def _too_large(size: int, limit: int) -> ApiError:
    settings = get_settings()
    upload_to = f"s3://{settings.input_bucket or '<input bucket>'}/<key>"
    crops_at = f"s3://{settings.output_bucket or '<output bucket>'}/{settings.normalised_prefix}/<key>/"
    return ApiError(
        413,
        "payload_too_large",
        f"The request body is {'at least ' if size <= limit else ''}{size} bytes; this API takes "
        f"at most {limit} bytes (the synchronous Lambda payload limit). Upload the photo to "
        f"{upload_to} instead: its crops and crops.json appear in {crops_at}.",
        limit_bytes=limit,
        upload_to=upload_to,
        crops_at=crops_at,
    )
