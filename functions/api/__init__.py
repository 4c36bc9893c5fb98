"""The HTTPS API door: `app` (FastAPI) and `handler` (Mangum, for Lambda) live in `app`.

    app       the routes, the demo page (static/) and the error shapes
    models    the request (photo, parameters) and the answers
    limits    413 before any work for bodies over the synchronous payload limit
    gateway   API Gateway HTTP API events as ASGI requests, the path decoded exactly once
    crops     signed crop URLs of stored photos
    photos    a stored photo's overrides (read, write, crop again)

Lambda runs `functions/api/app.handler` (serverless.yml).
"""
