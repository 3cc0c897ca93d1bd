"""`autograder.nbgrader.grade`, the name released notebooks' hidden cells call (kept for them)."""
from autograder.integrations.nbgrader import grade

__all__ = ["grade"]
