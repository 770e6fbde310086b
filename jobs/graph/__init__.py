"""Level-3 concept graph: co-occurrence graph, random-walk sampling, reference grounding."""
