"""Batch jobs built on inference: the pairs CSV and the `get_similarity_score.py --csv` job that scores it."""
