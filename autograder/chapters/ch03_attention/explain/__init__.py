"""Name what went wrong: diagnoses, misconceptions, attention pictures (needs the reference; never shipped)."""
