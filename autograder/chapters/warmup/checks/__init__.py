"""The warm-up's graded checks."""
