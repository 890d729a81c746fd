"""The web app: TF Serving's REST API, the search API, the OpenAPI document, Swagger UI and the search page.

    app = create_app(RestApi(registry, predictor), search_service_or_None, WebGuards(...))

serving/web/guards.py holds the trust boundary (allowed host names, same-origin writes, the write token, security
headers) and the body limits. Every error is JSON `{"error": "..."}`, with the status of its kind
(captioning.util.errors.OUTCOMES: 4xx for bad input); a bug is a 500 that names nothing of it (the log does), and
the server stays up. Swagger UI's files come from the swagger-ui-bundle package: the page works
without internet access.
"""

import os

import swagger_ui_bundle
from absl import logging
from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from captioning.util.errors import CaptioningError, Unavailable, client_message
from serving.status import from_error
from serving.web.guards import WebGuards
from serving.web.search_routes import search_router
from serving.web.tf_serving_routes import tf_serving_router

OPENAPI_PATH = "/v1/openapi.json"
_STATIC = os.path.join(os.path.dirname(__file__), "static")
RETRY_AFTER_SECONDS = 5  # told to a client whose request found something busy or unreachable


def _error(status, message):
    return JSONResponse({"error": message}, status_code=status)


def _validation_message(error: RequestValidationError) -> str:
    first = error.errors()[0]
    where = " ".join(str(part) for part in first.get("loc", ()))
    return f"{where}: {first.get('msg', 'invalid')}" if where else first.get("msg", "invalid request")


def create_app(rest_api, search_service=None, guards=WebGuards()):
    app = FastAPI(
        title="Image-text similarity",
        version="1.0.0",
        docs_url=None,
        redoc_url=None,
        openapi_url=OPENAPI_PATH,
        description="Search and label images with an image-captioning model, and TF Serving's REST API "
        'for its signatures. Errors are JSON: {"error": "..."}.',
    )
    app.openapi_version = "3.0.3"  # what the bundled Swagger UI (4.x) renders
    guards.install(app)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException):
        return _error(error.status_code, str(error.detail))

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, error: RequestValidationError):
        return _error(400, _validation_message(error))

    @app.exception_handler(CaptioningError)
    async def expected(request: Request, error: CaptioningError):
        failure = from_error(error)  # its kind's status; a ServingError's, TF Serving's for its code
        headers = {"Retry-After": str(RETRY_AFTER_SECONDS)} if isinstance(error, Unavailable) else None
        return JSONResponse({"error": failure.message}, status_code=failure.http_status, headers=headers)

    @app.exception_handler(Exception)
    async def bug(request: Request, error: Exception):
        logging.error("%s %s failed", request.method, request.url.path, exc_info=error)
        return _error(from_error(error).http_status, client_message(error))

    app.mount("/static", StaticFiles(directory=_STATIC), name="static")
    app.mount("/docs-assets", StaticFiles(directory=swagger_ui_bundle.swagger_ui_path), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def docs():
        return get_swagger_ui_html(
            openapi_url=OPENAPI_PATH,
            title="Image-text similarity API",
            swagger_js_url="/docs-assets/swagger-ui-bundle.js",
            swagger_css_url="/docs-assets/swagger-ui.css",
            swagger_favicon_url="/docs-assets/favicon-32x32.png",
        )

    @app.get("/", include_in_schema=False)
    async def page():
        if search_service is None:
            raise HTTPException(404, "search is off: start the server with --index_dir")
        return FileResponse(os.path.join(_STATIC, "index.html"))

    if search_service is not None:
        app.include_router(search_router(search_service))
    app.include_router(tf_serving_router(rest_api))  # last: its catch-all answers every other path
    return app
