"""The search, index, label, caption and score API of the web app (documented at /docs)."""

import asyncio
import io
from typing import Literal

from fastapi import APIRouter, File, Form, HTTPException, Query, Request, UploadFile
from fastapi.responses import JSONResponse, Response
from PIL import Image
from starlette.concurrency import run_in_threadpool

from captioning.inference.zero_shot import DEFAULT_TEMPLATE
from captioning.search import retrieval
from captioning.search.fetch import without_userinfo
from captioning.search.images import image_size
from captioning.search.sources import display_name
from captioning.search.thumbnails import MEDIA_TYPE as THUMBNAIL_TYPE
from serving.web import schemas

_ERRORS = {
    status: {"model": schemas.ErrorResponse, "description": description}
    for status, description in (
        (400, "Bad input: the message names the problem"),
        (404, "No such image in the index"),
        (409, "The index holds another model version's embeddings: re-index"),
        (413, "Upload or body too large"),
        (503, "Every URL-fetch slot is taken: try again shortly"),
    )
}
_WRITE_ERRORS = {
    status: {"model": schemas.ErrorResponse, "description": description}
    for status, description in (
        (401, "A token is configured and the request has not got it"),
        (403, "A cross-origin request"),
    )
}


async def _image_input(service, file, url, image_id):
    """The bytes of the one image a request names by upload, URL or indexed id, and its source name."""
    given = [name for name, value in (("file", file), ("url", url), ("id", image_id)) if value]
    if len(given) != 1:
        raise HTTPException(400, "give exactly one of file (an upload), url or id")
    if file:
        limit = service.limits.max_upload_bytes
        data = await file.read(limit + 1)
        if len(data) > limit:
            raise HTTPException(
                413, f"the upload is larger than this server's limit of {limit} bytes (--max_upload_bytes)"
            )
        await run_in_threadpool(image_size, data, service.image_limits)
        return data, f"upload:{file.filename or 'image'}"
    if url:
        # Awaited, not run on the shared thread pool: slow URLs hold fetch slots, never the other routes' threads.
        return await asyncio.wrap_future(service.fetch(url)), without_userinfo(url)
    try:
        data, payload = await run_in_threadpool(service.stored_image, image_id)
    except KeyError:
        raise HTTPException(404, f"no image with id {image_id} in the index") from None
    return data, payload["source"]


def _shown(payload: dict) -> dict:
    """A payload as the API shows it: the source by its display name, never a server path."""
    return {**payload, "source": display_name(payload["source"])}


def search_router(service):
    router = APIRouter(tags=["Search"], responses=_ERRORS)

    @router.get("/search", response_model=list[schemas.SearchResult], summary="Search the images by text")
    async def search(
        q: str = Query(description="What to look for, e.g. 'a red star left of a blue cross'."),
        k: int = Query(10, ge=1, description="Results to return (at most --max_search_results)."),
        candidates: int = Query(
            retrieval.DEFAULT_CANDIDATES,
            ge=1,
            description="Stage-1 neighbours reranked by log-likelihood (K; at most --max_search_candidates).",
        ),
        rank_by: Literal["log_likelihood", "debiased"] = "log_likelihood",
    ):
        """Stage 1: the `candidates` nearest image embeddings; stage 2: those reranked by caption log-likelihood.
        Best first, with both scores."""
        rows = await run_in_threadpool(service.search, q, k, candidates, rank_by)
        return [{**row, "source": display_name(row["source"]), "payload": _shown(row["payload"])} for row in rows]

    @router.post(
        "/api/images",
        response_model=schemas.AddedImage,
        status_code=201,
        responses=_WRITE_ERRORS,
        summary="Add an image (upload or URL)",
    )
    async def add_image(file: UploadFile | None = File(None), url: str | None = Form(None)):
        """Adds the image unless the index already holds the same content (then `added` is false, status 200)."""
        data, source = await _image_input(service, file, url, None)
        added = await run_in_threadpool(service.add, source, data)
        return JSONResponse(
            {**added, "source": display_name(added["source"])}, status_code=201 if added["added"] else 200
        )

    @router.get("/api/images", response_model=schemas.ImageList, summary="List the indexed images")
    async def list_images(offset: str | None = None, limit: int = Query(100, ge=1, le=1000)):
        page, next_offset = await run_in_threadpool(service.list, offset, limit)
        return {
            "images": [{"id": image_id, "payload": _shown(payload)} for image_id, payload in page],
            "next_offset": next_offset,
        }

    @router.get("/api/gallery", response_model=schemas.Gallery, summary="The collection, newest first")
    async def gallery(
        before: int | None = Query(None, description="`next_before` of the previous page."),
        limit: int = Query(24, ge=1, le=1000),
    ):
        page, next_before, count = await run_in_threadpool(service.gallery, before, limit)
        return {
            "images": [{"id": image_id, "payload": _shown(payload)} for image_id, payload in page],
            "next_before": next_before,
            "count": count,
        }

    @router.get("/api/images/count", response_model=schemas.Count, summary="Count the indexed images")
    async def count():
        return await run_in_threadpool(service.count)

    @router.get(
        "/api/images/{image_id}/file", summary="The image itself", responses={200: {"content": {"image/*": {}}}}
    )
    async def image_file(image_id: str):
        data, _ = await _image_input(service, None, None, image_id)
        with Image.open(io.BytesIO(data)) as image:
            kind = image.format.lower()
        return Response(data, media_type=f"image/{kind}", headers={"Cache-Control": "max-age=86400"})

    @router.get(
        "/api/images/{image_id}/thumbnail",
        summary="A small preview of the image",
        responses={200: {"content": {THUMBNAIL_TYPE: {}}}, 304: {"description": "Not modified"}},
    )
    async def thumbnail(image_id: str, request: Request):
        """At most 192 pixels a side, made on first use and kept with the index. An id names one content, so the
        answer never changes: cached for a year, revalidated by its ETag."""
        try:
            data, digest = await run_in_threadpool(service.thumbnail, image_id)
        except KeyError:
            raise HTTPException(404, f"no image with id {image_id} in the index") from None
        headers = {"Cache-Control": "max-age=31536000, immutable", "ETag": f'"{digest}"'}
        if request.headers.get("if-none-match") == headers["ETag"]:
            return Response(status_code=304, headers=headers)
        return Response(data, media_type=THUMBNAIL_TYPE, headers=headers)

    @router.get(
        "/api/images/{image_id}/similar",
        response_model=list[schemas.SimilarImage],
        summary="Images like an indexed one",
    )
    async def similar(
        image_id: str, k: int = Query(12, ge=1, description="Images to return (at most --max_search_results).")
    ):
        """The images whose embeddings are nearest this image's stored one (it is left out), best first."""
        try:
            rows = await run_in_threadpool(service.similar, image_id, k)
        except KeyError:
            raise HTTPException(404, f"no image with id {image_id} in the index") from None
        return [{**row, "source": display_name(row["source"]), "payload": _shown(row["payload"])} for row in rows]

    @router.get("/api/limits", response_model=schemas.Limits, summary="The limits a request can run into")
    async def limits():
        return service.page_limits()

    @router.delete("/api/images/{image_id}", status_code=204, responses=_WRITE_ERRORS, summary="Delete an image")
    async def delete_image(image_id: str):
        if not await run_in_threadpool(service.delete, image_id):
            raise HTTPException(404, f"no image with id {image_id} in the index")
        return Response(status_code=204)

    @router.post(
        "/api/reindex",
        response_model=schemas.Reindexed,
        responses=_WRITE_ERRORS,
        summary="Embed the images of the previous model version with the served one",
    )
    async def reindex():
        done = await run_in_threadpool(service.reindex)
        if done is None:
            raise HTTPException(409, "nothing to re-index: no images of another model version")
        return done

    @router.post(
        "/api/describe",
        response_model=schemas.Description,
        summary="Zero-shot labels and generated captions for an image",
    )
    async def describe(
        file: UploadFile | None = File(None),
        url: str | None = Form(None),
        id: str | None = Form(None, description="An indexed image's id."),
        labels: str = Form("", description="Comma-separated labels, e.g. cat,dog,car."),
        prompt_template: str = Form(DEFAULT_TEMPLATE),
        beam_size: int = Form(3, ge=1, description="Captions to generate (at most --max_beam_size)."),
    ):
        wanted = [label for label in labels.split(",") if label.strip()]
        service.check_counts(labels=len(wanted))  # before any image is read or fetched
        data, _ = await _image_input(service, file, url, id)
        return await run_in_threadpool(service.describe, data, wanted, prompt_template, beam_size)

    @router.post("/api/score", response_model=list[schemas.TextScores], summary="Score texts against an image")
    async def score(
        text: list[str] = Form(description="One or more texts."),
        file: UploadFile | None = File(None),
        url: str | None = Form(None),
        id: str | None = Form(None),
    ):
        service.check_counts(texts=len(text))
        data, _ = await _image_input(service, file, url, id)
        return await run_in_threadpool(service.score, data, text)

    return router
