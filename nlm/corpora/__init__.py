"""Synthetic corpora whose answer is known: a Markov source's exact entropy rate, and long-range memory tasks."""
