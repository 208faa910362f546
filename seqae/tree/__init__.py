"""seqae's tree plugin: text -> latent binary tree -> text (URNNG, Kim et al. 2019, arXiv 1904.03746).

In progress: the tree CRF over unlabeled binary trees (the encoder q(tree | sentence)) comes
first: :mod:`~seqae.tree.inside` (the vectorised chart algorithms), :mod:`~seqae.tree.trees`
(span sets, bracketed strings, SHIFT/REDUCE actions, span-indicator tensors),
:mod:`~seqae.tree.crf` (the span scorer and the ``TreeCRF`` distribution) and
:mod:`~seqae.tree.bottleneck` (the ``tree_crf`` bottleneck).
"""
