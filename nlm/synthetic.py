"""Moved to `nlm.corpora.markov`; this name stays only until tests/test_train.py imports the new one."""

from nlm.corpora.markov import MarkovSource, fake_words

__all__ = ["MarkovSource", "fake_words"]
