"""Image-text similarity from a captioning model.

Importing the package changes nothing global: the entry points quieten TensorFlow themselves
(captioning.util.cli).
"""
