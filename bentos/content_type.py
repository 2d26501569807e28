"""Refuse request bodies the API does not declare, before BentoML reads them.

Every POST route of the service takes JSON (the published OpenAPI schema declares `application/json` only).
BentoML picks its body parser from the Content-Type header: `multipart/form-data` goes to a form parser
that raises on a missing boundary (answered 500: schemathesis' coverage phase found it, check ST102) and
would download any URL sent as a file field; every other type is parsed as JSON. This middleware answers
415 with the accepted type for anything but JSON, so the framework's parsers only ever see JSON. A request
without a Content-Type is left to BentoML (parsed as JSON, as before).

Added in bentos/service.py with `RecommenderService.add_asgi_middleware(JsonOnly, paths=API_ROUTES)`.
Hand-written: about twenty lines of ASGI; neither Starlette nor BentoML has a content-type guard.
"""

from __future__ import annotations

import json

ACCEPTED = "application/json"


class JsonOnly:
    def __init__(self, app, paths: tuple[str, ...] | None = None):
        self.app, self.paths = app, set(paths) if paths is not None else None

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["method"] in ("POST", "PUT", "PATCH") and (
                self.paths is None or scope["path"] in self.paths):
            media_type = media_type_of(scope)
            if media_type and media_type != ACCEPTED:
                await refuse(send, media_type)
                return
        await self.app(scope, receive, send)


def media_type_of(scope) -> str | None:
    """The request's media type, lower-case without parameters ("multipart/form-data"), or None."""
    for name, value in scope.get("headers") or ():
        if name.lower() == b"content-type":
            return value.decode("latin-1").split(";", 1)[0].strip().lower() or None
    return None


async def refuse(send, media_type: str) -> None:
    body = json.dumps({"error": f"unsupported Content-Type {media_type!r}: this API takes {ACCEPTED}"}).encode()
    await send({"type": "http.response.start", "status": 415,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"accept-post", ACCEPTED.encode())]})
    await send({"type": "http.response.body", "body": body})
