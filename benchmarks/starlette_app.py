"""A bare Starlette app answering a constant: the floor of what a Python ASGI server does on this box,
measured by benchmarks/serving.py beside the BentoML no-op endpoint and /recommend. Not part of the product."""

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


async def noop(request: Request) -> JSONResponse:
    await request.body()
    return JSONResponse({"ok": True})


app = Starlette(routes=[Route("/noop", noop, methods=["POST"])])
