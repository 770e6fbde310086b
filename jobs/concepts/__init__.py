"""Topic and key-concept extraction (P-K): prompt, parser and node identity."""
