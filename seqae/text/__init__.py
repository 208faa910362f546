"""seqae's text plugin: a sequence-to-sequence-to-sequence autoencoder whose code is a readable
summary (in progress: the data, the tokenizer and the evaluation come first).

- :mod:`~seqae.text.corpus`: the embedded article/summary corpus, built offline from Debian's
  English package descriptions (``seqae data text``), split by source package.
- :mod:`~seqae.text.loaders`: a user's files (articles, summaries, JSONL pairs) and Gigaword's
  headline-generation files, with clear errors naming the file and line.
- :mod:`~seqae.text.tokenizer`: a word-level tokenizer trained on the training text, saved as a
  ``transformers.PreTrainedTokenizerFast``, with per-article extended ids so that a pointer
  (copy) mechanism can reach an article's rare and unseen words.
"""

from seqae.extras import require_extra

require_extra("text", feature="the text plugin")
