"""Text to ids: tokenizers and vocabularies, the encoded corpus, batches and BPTT windows."""
