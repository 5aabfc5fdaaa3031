"""Evaluating generated text: BLEU and chrF through the sacrebleu library, never a metric of our own."""
