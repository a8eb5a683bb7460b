"""Scores of every token: indicators, reference tokens, clustering, projections."""
