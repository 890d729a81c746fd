"""Calling an exported model: open it in this process or on a PredictionService over gRPC, run its signatures in
batches, and build on them: score pairs, rank texts (debiasing alpha), zero-shot labels and caption generation."""
