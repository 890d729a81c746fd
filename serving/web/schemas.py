"""Response models of the web API: they make the OpenAPI document and Swagger UI show what comes back."""

from pydantic import BaseModel, Field


class ErrorResponse(BaseModel):
    error: str = Field(description="What was wrong, in one line.")


class SearchResult(BaseModel):
    id: str
    source: str = Field(description="Where the image came from: a path, a URL, or upload:<file name>.")
    contrastive: float = Field(description="Cosine similarity of the image and text embeddings (stage 1).")
    log_likelihood: float = Field(description="log P(text | image), the caption log-likelihood (stage 2).")
    mean_log_prob: float = Field(description="log_likelihood per token: comparable across texts of any length.")
    pmi: float
    score: float = Field(description="The score the results are ranked by (rank_by).")
    payload: dict


class SimilarImage(BaseModel):
    id: str
    source: str
    similarity: float = Field(description="Cosine similarity of the two images' embeddings (-1 to 1).")
    payload: dict


class Limits(BaseModel):
    max_upload_bytes: int = Field(description="Largest image a request may upload.")
    max_image_pixels: int = Field(description="Most pixels (width x height x frames) of an image.")
    max_labels: int
    max_results: int
    fetches_private_urls: bool = Field(description="Whether URLs on loopback or private addresses are fetched.")
    poor_match_mean_log_prob: float = Field(
        description="Below this mean_log_prob of the best result, the page says nothing matches the query well."
    )


class AddedImage(BaseModel):
    id: str
    added: bool = Field(description="False when the index already held this image (same content).")
    source: str


class ImageEntry(BaseModel):
    id: str
    payload: dict


class ImageList(BaseModel):
    images: list[ImageEntry]
    next_offset: str | None = Field(description="Pass as `offset` for the next page; null on the last page.")


class Gallery(BaseModel):
    images: list[ImageEntry] = Field(description="Newest first.")
    next_before: int | None = Field(description="Pass as `before` for the next page; null on the last page.")
    count: int = Field(description="Images in the collection of the served model version.")


class Count(BaseModel):
    count: int
    model_version: int


class Label(BaseModel):
    label: str
    prompt: str
    score: float = Field(description="The ranking score (log_likelihood, or debiased with the stored alpha).")
    confidence: float = Field(description="Softmax of the scores over this image's labels: relative, sums to 1.")
    unknown_words: list[str] | None = Field(
        description="Words of the prompt the model does not know (each reads "
        "as [unk]); null when its vocabulary is unavailable."
    )
    log_likelihood: float
    mean_log_prob: float
    pmi: float
    contrastive: float | None = Field(None, description="For a model with a contrastive head.")


class Caption(BaseModel):
    caption: str
    log_likelihood: float


class Description(BaseModel):
    labels: list[Label] = Field(description="Zero-shot labels, best first.")
    captions: list[Caption] = Field(description="Generated captions, best first.")


class TextScores(BaseModel):
    text: str
    scores: dict = Field(description="The serving_default outputs for this (image, text) pair.")


class Reindexed(BaseModel):
    from_version: int
    model_version: int
    added: int
    errors: list
