"""Image classifiers at work: the classification task, training, evaluation and FGSM attacks."""
