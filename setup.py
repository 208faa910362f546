"""Package list for setuptools; everything else is in pyproject.toml.

The recipes ship inside the package as ``seqae.recipes`` (scripts and configs), so ``seqae run``
and ``seqae list`` work from an installed wheel; in the source tree they stay in ``recipes/``.
"""

from setuptools import find_packages, setup

setup(
    packages=[*find_packages(include=["seqae", "seqae.*"]), "seqae.recipes"],
    package_dir={"seqae.recipes": "recipes"},
)
