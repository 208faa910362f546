"""Images the page shows: digits and grids of them, mel spectrograms, moon phases.

Plain ``uint8`` numpy arrays (``(H, W)`` grey or ``(H, W, 3)`` colour) that ``gr.Image`` shows
as they are, made without matplotlib figures so that a slider's answer is instant. Small images
are enlarged by repeating pixels (``scale``), so an 8x8 digit stays sharp.
"""

from __future__ import annotations

import math

import matplotlib
import numpy as np
import torch
from torch import Tensor

from seqae.plotting import tile_images

__all__ = ["GAP_GREY", "IMAGE_BUTTONS", "grid_image", "mel_image", "mel_range", "moon_phase_strips"]

#: Grey of the gaps between tiles (0 black, 255 white).
GAP_GREY = 190
#: The buttons of the page's images (no "share": it would post to Hugging Face).
IMAGE_BUTTONS: list[str] = ["download", "fullscreen"]


def _enlarge(image: np.ndarray, scale: int) -> np.ndarray:
    """Each pixel repeated ``scale`` times along both image axes."""
    return image.repeat(scale, axis=0).repeat(scale, axis=1)


def grid_image(images: Tensor, *, ncol: int, scale: int = 8) -> np.ndarray:
    """Square images (values in [0, 1], 1 = ink) tiled ``ncol`` per row, ink dark on white.

    Args:
        images: ``N`` square images in any layout holding ``side * side`` values each, e.g.
            ``(N, 64)`` digits (see :func:`seqae.plotting.tile_images`).
        ncol: Tiles per row.
        scale: Screen pixels per image pixel.

    Returns:
        ``uint8`` ``(H, W)`` grey image; the gaps between tiles are :data:`GAP_GREY`.
    """
    canvas = tile_images(images, ncol=ncol).numpy()
    grey = np.where(np.isnan(canvas), GAP_GREY, np.rint(255 * (1 - np.nan_to_num(canvas))))
    return _enlarge(grey.astype(np.uint8), scale)


def mel_range(*mels: Tensor, dynamic_range: float = 9.0) -> tuple[float, float]:
    """A shared colour range for several log-mels: from ``dynamic_range`` nats below the loudest
    bin of all to it, so that the panels are drawn on one scale."""
    top = max(float(m.max()) for m in mels)
    return top - dynamic_range, top


def mel_image(
    log_mel: Tensor,
    *,
    vmin: float,
    vmax: float,
    row_scale: int = 2,
    col_scale: int = 2,
    cmap: str = "magma",
) -> np.ndarray:
    """A log-mel ``(n_mels, frames)`` as a colour image, low frequencies at the bottom.

    Args:
        log_mel: Natural-log mel magnitudes.
        vmin: The value drawn darkest (and anything below it).
        vmax: The value drawn brightest.
        row_scale: Screen rows per mel bin.
        col_scale: Screen columns per frame.
        cmap: A matplotlib colormap name.

    Returns:
        ``uint8`` ``(n_mels * row_scale, frames * col_scale, 3)``.
    """
    x = log_mel.detach().float().cpu().numpy()[::-1]
    unit = np.clip((x - vmin) / max(vmax - vmin, 1e-6), 0.0, 1.0)
    rgb = matplotlib.colormaps[cmap](unit)[..., :3]
    image = (255 * rgb).astype(np.uint8).repeat(row_scale, axis=0).repeat(col_scale, axis=1)
    return np.ascontiguousarray(image)


def _moon(lit_from: float, size: int) -> np.ndarray:
    """A moon of ``size`` pixels whose lit part is where ``x > lit_from * half chord``: -1 is a
    full moon, 0 a half moon (right side lit), 1 a new moon. Values in [0, 1] (1 = lit)."""
    c = (size - 1) / 2
    y, x = np.mgrid[0:size, 0:size].astype(np.float64) - c
    r = 0.45 * size
    inside = x**2 + y**2 <= r**2
    chord = np.sqrt(np.clip(r**2 - y**2, 0.0, None))
    lit = inside & (x > lit_from * chord)
    return np.where(lit, 1.0, np.where(inside, 0.18, 0.0))


def moon_phase_strips(steps: int, *, size: int = 32, scale: int = 2) -> np.ndarray:
    """The tutorial's moon-phase example: from a full moon to a half moon, the true phases in
    between (top row: what a good latent path decodes to) against the pixel-wise blend of the
    two ends (bottom row: a half moon with a ghost of the full one, never a phase of the moon).

    Args:
        steps: Images per row, the two ends included (>= 2).
        size: Side of one moon image in pixels.
        scale: Screen pixels per image pixel.

    Returns:
        ``uint8`` ``(H, W)`` grey image, two rows of ``steps`` moons on a black sky.
    """
    if steps < 2:
        raise ValueError(f"steps must be at least 2, got {steps}")
    t = np.linspace(0.0, 1.0, steps)
    # the terminator moves as the cosine of the phase angle, full (angle 0) to half (pi / 2)
    phases = [_moon(-math.cos(a * math.pi / 2), size) for a in t]
    full, half = phases[0], phases[-1]
    blends = [(1 - a) * full + a * half for a in t]
    # tile_images draws 1 as ink: give it the sky as "ink" so that lit parts come out white
    tiles = torch.as_tensor(np.stack([*phases, *blends]), dtype=torch.float32)
    return grid_image(1.0 - tiles, ncol=steps, scale=scale)
