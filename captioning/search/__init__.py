"""Search and label an image collection with the model's two scores.

An index (`index`) keeps one Qdrant collection per exported model version with each image's `embed_image`
vector; the images themselves (and, when the model has `encode_image`, their encoder features) sit in a
content-addressed folder (`store`). `indexing` adds images from files, folders, CSVs, URLs (`sources`, `fetch`) or
bytes; `retrieval` answers a text in two stages: nearest embeddings, then the caption log-likelihood of those few.
`describe` gives zero-shot labels and a caption for one image. All model calls go through `models`.

This package knows nothing of the server: the CLI (`python -m captioning.search`) opens a SavedModel in process,
and serving.web wires the same classes to the served model.
"""
