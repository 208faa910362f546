"""Image tiling shared by the recipes' figures."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from seqae.plotting import show_images, tile_images  # noqa: E402


def test_tiles_land_in_place_with_nan_gaps_and_blank_cells() -> None:
    images = torch.stack([torch.full((2, 2), v) for v in (0.1, 0.2, 0.3)])  # 3 tiles of side 2
    canvas = tile_images(images, ncol=2)
    assert canvas.shape == (2 * 3 - 1, 2 * 3 - 1)
    assert torch.equal(canvas[0:2, 0:2], torch.full((2, 2), 0.1))
    assert torch.equal(canvas[0:2, 3:5], torch.full((2, 2), 0.2))
    assert torch.equal(canvas[3:5, 0:2], torch.full((2, 2), 0.3))
    assert canvas[2].isnan().all() and canvas[:, 2].isnan().all()  # gaps
    assert canvas[3:5, 3:5].isnan().all()  # the short last row's empty cell


@pytest.mark.parametrize("shape", [(4, 64), (4, 8, 8), (4, 1, 8, 8)])
def test_any_layout_of_square_images(shape: tuple[int, ...]) -> None:
    images = torch.rand(shape)
    canvas = tile_images(images, ncol=4)
    assert canvas.shape == (8, 4 * 9 - 1)
    assert torch.equal(canvas[:, 9:17], images[1].reshape(8, 8))


def test_values_are_clamped_and_bad_shapes_refused() -> None:
    canvas = tile_images(torch.tensor([[[-1.0, 2.0], [0.5, 0.5]]]), ncol=1)
    assert torch.equal(canvas, torch.tensor([[0.0, 1.0], [0.5, 0.5]]))
    with pytest.raises(ValueError, match="square images"):
        tile_images(torch.rand(3, 10), ncol=2)
    with pytest.raises(ValueError, match="square images"):
        tile_images(torch.rand(0, 64), ncol=2)
    with pytest.raises(ValueError, match="ncol"):
        tile_images(torch.rand(3, 64), ncol=0)


def test_show_images_draws_the_canvas() -> None:
    fig, ax = plt.subplots()
    images = torch.rand(5, 64)
    show_images(ax, images, ncol=3, cmap="gray", gap_color="#d0d0d0")
    drawn = ax.get_images()[0].get_array()
    assert drawn.shape == (2 * 9 - 1, 3 * 9 - 1)
    assert ax.get_xticks().size == 0
    plt.close(fig)
