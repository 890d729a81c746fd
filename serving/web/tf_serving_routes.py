"""TF Serving's REST API (/v1/...) on the web app, answered by serving.rest_api.RestApi.

TF Serving matches its paths with its own regular expressions and answers malformed ones with its own messages,
so every route hands the raw path to RestApi; the routes declared here exist to document the API in the OpenAPI
document, and a catch-all route sends every other path to RestApi too.
"""

import re

from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool

_ERROR = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
_RESPONSES = {
    400: {"description": "INVALID_ARGUMENT or FAILED_PRECONDITION", **_ERROR},
    404: {"description": "Model or version not found", **_ERROR},
    413: {"description": "Body larger than --max_request_bytes", **_ERROR},
}
_PREDICT_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "description": "TF Serving's predict request: row format (`instances`) or columnar format "
                    '(`inputs`). Binary inputs such as `image_bytes` are written as {"b64": "..."}.',
                    "properties": {
                        "signature_name": {"type": "string", "default": "serving_default"},
                        "instances": {"type": "array", "items": {}},
                        "inputs": {},
                    },
                    "example": {"instances": [{"image_bytes": {"b64": "iVBORw0KGgo..."}, "text": "a red circle"}]},
                }
            }
        },
    }
}
_GET_ROUTES = {
    "/v1/models/{model_name}": "Model status: every served version",
    "/v1/models/{model_name}/versions/{version}": "Status of one version",
    "/v1/models/{model_name}/labels/{label}": "Status of the version with a label",
    "/v1/models/{model_name}/metadata": "Signature definitions of the newest version",
    "/v1/models/{model_name}/versions/{version}/metadata": "Signature definitions of one version",
}
_POST_ROUTES = {
    "/v1/models/{model_name}:predict": "Run a signature of the newest version",
    "/v1/models/{model_name}/versions/{version}:predict": "Run a signature of one version",
    "/v1/models/{model_name}/labels/{label}:predict": "Run a signature of the version with a label",
}


def _path_parameters(path):
    return [
        {"name": name, "in": "path", "required": True, "schema": {"type": "integer" if name == "version" else "string"}}
        for name in re.findall(r"{(\w+)}", path)
    ]


def tf_serving_router(rest_api):
    router = APIRouter(tags=["TF Serving REST API"])

    async def answer(request: Request):
        body = await request.body()
        path = request.scope.get("raw_path", b"").decode("latin-1") or request.url.path
        status, text = await run_in_threadpool(rest_api.handle, request.method, path, body)
        return Response(text, status_code=int(status), media_type="application/json")

    for path, summary in _GET_ROUTES.items():
        router.add_api_route(
            path,
            answer,
            methods=["GET"],
            summary=summary,
            responses=_RESPONSES,
            openapi_extra={"parameters": _path_parameters(path)},
        )
    for path, summary in _POST_ROUTES.items():
        router.add_api_route(
            path,
            answer,
            methods=["POST"],
            summary=summary,
            responses=_RESPONSES,
            openapi_extra={"parameters": _path_parameters(path), **_PREDICT_BODY},
        )
    # Everything else (malformed /v1 paths, other methods' errors, unknown paths) gets RestApi's answer.
    router.add_api_route("/{path:path}", answer, methods=["GET", "POST"], include_in_schema=False)
    return router
