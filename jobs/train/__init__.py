"""Supervised fine-tuning of causal LMs on the published QA data."""
