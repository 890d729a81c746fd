"""The project's one HTTP stack: a FastAPI app on uvicorn serving TF Serving's REST API, the search, index,
label, caption and score API with its OpenAPI document and Swagger UI at /docs, and the search page at /."""
