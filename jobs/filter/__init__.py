"""The filter stage: quality heuristics, near-duplicate removal and a domain classifier."""
