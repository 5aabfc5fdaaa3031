"""The special symbols, with the same ids at every level (word, char and sentencepiece alike).

0 <pad>   padding, never predicted
1 <unk>   any symbol outside the vocabulary (the OOV token)
2 <bos>   start of a sentence (sentence-mode models and scoring)
3 <eos>   end of a line
"""

SPECIALS = ("<pad>", "<unk>", "<bos>", "<eos>")
PAD, UNK, BOS, EOS = range(4)
LEVELS = ("word", "char", "bpe", "unigram")
SYMBOL_LEVELS = ("word", "char")
SUBWORD_LEVELS = ("bpe", "unigram")
