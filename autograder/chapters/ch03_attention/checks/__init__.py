"""The graded checks, one pytest file per part of chapter 3."""
