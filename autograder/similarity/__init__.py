"""Similarity across a class: which submissions share unusual code with each other or with a named source."""
