"""Language models at work: training, scoring, perplexity and generation."""
