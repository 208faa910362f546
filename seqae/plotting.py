"""Figure helpers shared by the recipes.

Only what several recipes draw the same way: square images tiled on one canvas with thin gaps.
Matplotlib's backend is the caller's choice (recipes select ``Agg``); pyplot is not imported.
"""

from __future__ import annotations

import math
from typing import Any

import matplotlib
import torch
from torch import Tensor

__all__ = ["tile_images", "show_images"]


def tile_images(images: Tensor, *, ncol: int) -> Tensor:
    """Tile square images on one canvas, ``ncol`` per row, one NaN pixel between tiles.

    Args:
        images: ``N`` square images in any layout holding ``side * side`` values each, e.g.
            ``(N, 64)``, ``(N, 8, 8)`` or ``(N, 1, R, R)``. Values are clamped to ``[0, 1]``.
        ncol: Tiles per row; the last row may be short (its empty cells stay NaN).

    Returns:
        A float ``(rows * (side + 1) - 1, ncol * (side + 1) - 1)`` CPU tensor, NaN in the gaps.
    """
    if ncol < 1:
        raise ValueError(f"ncol must be at least 1, got {ncol}")
    n = images.shape[0]
    per_image = images[0].numel() if n else 0
    side = math.isqrt(per_image)
    if n == 0 or side * side != per_image:
        raise ValueError(
            f"expected a non-empty batch of square images, got shape {tuple(images.shape)}"
        )
    step = side + 1
    rows = math.ceil(n / ncol)
    canvas = torch.full((rows * step - 1, ncol * step - 1), float("nan"))
    tiles = images.detach().cpu().float().clamp(0, 1).reshape(n, side, side)
    for i, tile in enumerate(tiles):
        r, c = divmod(i, ncol)
        canvas[r * step : r * step + side, c * step : c * step + side] = tile
    return canvas


def show_images(
    ax: Any,
    images: Tensor,
    *,
    ncol: int,
    cmap: str = "gray_r",
    gap_color: str = "#b0b0b0",
) -> None:
    """Draw :func:`tile_images` on a matplotlib axis, without ticks.

    Args:
        ax: A matplotlib ``Axes``.
        images: Square images, see :func:`tile_images`.
        ncol: Tiles per row.
        cmap: Colormap name (``"gray_r"``: ink on paper; ``"gray"``: white on black).
        gap_color: Colour of the gaps and of empty cells.
    """
    colors = matplotlib.colormaps[cmap].with_extremes(bad=gap_color)
    ax.imshow(
        tile_images(images, ncol=ncol).numpy(), cmap=colors, vmin=0, vmax=1, interpolation="nearest"
    )
    ax.set_xticks([])
    ax.set_yticks([])
