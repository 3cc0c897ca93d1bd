"""Chapter 3 of *Build a Large Language Model From Scratch*: attention, from softmax to multi-head attention."""
from pathlib import Path

from autograder.assignment import load

CHAPTER = load(Path(__file__).resolve().parent)
"""This folder's assignment, for the chapter's own knowledge (explain/, measure/)."""
