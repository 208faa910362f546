"""seqae's recipes: readable scripts with a ``main(cfg)``, run by ``seqae run NAME``.

Installed as the package data ``seqae.recipes``; each script is loaded by path, not imported as
a module of this package, and no recipe imports another.
"""
