"""The web app: TF Serving's REST API, the search API, the OpenAPI document, Swagger UI and the search page.

    app = create_app(RestApi(registry, predictor), search_service_or_None, WebGuards(...))

serving/web/guards.py holds the trust boundary (allowed host names, same-origin writes, the write token, security
headers) and the body limits. Every error is JSON `{"error": "..."}` with a 4xx status for bad input (5xx only
for a bug, and the server stays up). Swagger UI's files come from the swagger-ui-bundle package: the page works
without internet access.
"""

import os

import swagger_ui_bundle
from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from captioning.inference.runners import InvalidInputError, MissingSignatureError
from captioning.inference.zero_shot import LabelsError
from captioning.search.fetch import FetchError
from captioning.search.images import ImageError
from captioning.search.index import ModelVersionError
from captioning.search.retrieval import QueryError
from serving.status import ServingError
from serving.web.guards import WebGuards
from serving.web.search_routes import search_router
from serving.web.search_service import BusyError
from serving.web.tf_serving_routes import tf_serving_router

OPENAPI_PATH = "/v1/openapi.json"
_STATIC = os.path.join(os.path.dirname(__file__), "static")
_BAD_INPUT = (QueryError, ImageError, FetchError, LabelsError, InvalidInputError)


def _error(status, message):
    return JSONResponse({"error": message}, status_code=status)


def _validation_message(error: RequestValidationError) -> str:
    first = error.errors()[0]
    where = " ".join(str(part) for part in first.get("loc", ()))
    return f"{where}: {first.get('msg', 'invalid')}" if where else first.get("msg", "invalid request")


def create_app(rest_api, search_service=None, guards=WebGuards()):
    app = FastAPI(title="Image-text similarity", version="1.0.0", docs_url=None, redoc_url=None,
                  openapi_url=OPENAPI_PATH,
                  description="Search and label images with an image-captioning model, and TF Serving's REST API "
                              "for its signatures. Errors are JSON: {\"error\": \"...\"}.")
    app.openapi_version = "3.0.3"  # what the bundled Swagger UI (4.x) renders
    guards.install(app)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException):
        return _error(error.status_code, str(error.detail))

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, error: RequestValidationError):
        return _error(400, _validation_message(error))

    @app.exception_handler(ModelVersionError)
    async def version_changed(request: Request, error: ModelVersionError):
        return _error(409, str(error))

    @app.exception_handler(MissingSignatureError)
    async def missing_signature(request: Request, error: MissingSignatureError):
        return _error(501, str(error))

    @app.exception_handler(ServingError)
    async def serving_error(request: Request, error: ServingError):
        return _error(error.http_status, error.message)

    @app.exception_handler(BusyError)
    async def busy(request: Request, error: BusyError):
        return JSONResponse({"error": str(error)}, status_code=503, headers={"Retry-After": "5"})

    @app.exception_handler(Exception)
    async def bug(request: Request, error: Exception):
        return _error(500, f"internal error: {error.__class__.__name__}: {error}")

    for kind in _BAD_INPUT:
        app.add_exception_handler(kind, lambda request, error: _error(400, str(error)))

    app.mount("/static", StaticFiles(directory=_STATIC), name="static")
    app.mount("/docs-assets", StaticFiles(directory=swagger_ui_bundle.swagger_ui_path), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def docs():
        return get_swagger_ui_html(openapi_url=OPENAPI_PATH, title="Image-text similarity API",
                                   swagger_js_url="/docs-assets/swagger-ui-bundle.js",
                                   swagger_css_url="/docs-assets/swagger-ui.css",
                                   swagger_favicon_url="/docs-assets/favicon-32x32.png")

    @app.get("/", include_in_schema=False)
    async def page():
        if search_service is None:
            raise HTTPException(404, "search is off: start the server with --index_dir")
        return FileResponse(os.path.join(_STATIC, "index.html"))

    if search_service is not None:
        app.include_router(search_router(search_service))
    app.include_router(tf_serving_router(rest_api))  # last: its catch-all answers every other path
    return app
