"""Scaling studies: nested subsets, law fits and their report."""
