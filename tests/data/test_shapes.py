import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from seqae.data import FACTOR_NAMES, ShapesDataset, factor_values, render_shapes

SIZES = (3, 6, 40, 32, 32)


def _centroid(img: torch.Tensor) -> tuple[float, float]:
    img = img.reshape(img.shape[-2:]).double()
    rows, cols = torch.meshgrid(
        torch.arange(img.shape[0]).double(), torch.arange(img.shape[1]).double(), indexing="ij"
    )
    mass = img.sum()
    return float((img * cols).sum() / mass), float((img * rows).sum() / mass)


def test_full_product_is_lazy_and_indexable():
    ds = ShapesDataset()
    assert len(ds) == 3 * 6 * 40 * 32 * 32 == 737_280
    assert not ds.cache  # 720 MiB of cache is too much to allocate by default
    x, f = ds[123_456]
    assert x.shape == (1, 32, 32) and x.dtype == torch.float32
    assert f.dtype == torch.int64
    np.testing.assert_array_equal(f.numpy(), np.unravel_index(123_456, SIZES))
    assert set(torch.unique(x).tolist()) <= {0.0, 1.0}
    assert ds.factor_names == FACTOR_NAMES and ds.factor_sizes == SIZES


def test_factors_and_latents_values():
    ds = ShapesDataset(n=50, seed=1)
    assert ds.factors.shape == (50, 5) and ds.factors.dtype == np.int64
    assert (ds.factors >= 0).all() and (ds.factors < np.array(SIZES)).all()
    values = ds.latents_values
    assert values.shape == (50, 5)
    assert set(values[:, 0]) <= {1.0, 2.0, 3.0}
    assert values[:, 1].min() >= 0.5 and values[:, 1].max() <= 1.0
    assert values[:, 2].min() >= 0 and values[:, 2].max() < 2 * np.pi
    tables = factor_values(SIZES)
    np.testing.assert_allclose(values[:, 3], tables[3][ds.factors[:, 3]])
    for i in range(5):
        _, f = ds[i]
        np.testing.assert_array_equal(f.numpy(), ds.factors[i])


def test_subsample_is_seeded_and_distinct():
    a, b, c = (
        ShapesDataset(n=200, seed=5),
        ShapesDataset(n=200, seed=5),
        ShapesDataset(n=200, seed=6),
    )
    np.testing.assert_array_equal(a.flat_indices(), b.flat_indices())
    assert len(set(a.flat_indices().tolist())) == 200
    assert not np.array_equal(a.flat_indices(), c.flat_indices())


def test_indices_as_flat_or_rows():
    rows = np.array([[0, 1, 2, 3, 4], [2, 5, 39, 31, 0]])
    by_rows = ShapesDataset(indices=rows)
    by_flat = ShapesDataset(indices=np.ravel_multi_index(tuple(rows.T), SIZES))
    np.testing.assert_array_equal(by_rows.factors, rows)
    torch.testing.assert_close(by_rows.images(), by_flat.images())


@pytest.mark.parametrize("factor", range(1, 5))
def test_each_factor_change_changes_the_image_antialiased(factor):
    # With coverage rendering every adjacent step of every factor is visible.
    ds = ShapesDataset(antialias=4)
    base = ds.sample_factors(200, rng=factor)
    base = base[base[:, factor] < SIZES[factor] - 1]
    step = base.copy()
    step[:, factor] += 1
    a, b = ds.images_from_factors(base), ds.images_from_factors(step)
    assert (a != b).flatten(1).any(dim=1).all()


def test_each_factor_change_changes_the_image_binary():
    # Binary 32x32: changes of a few steps are always visible (adjacent ones may not be, see docs).
    ds = ShapesDataset()
    base = ds.sample_factors(200, rng=0)
    base[:, 0] = 2  # the heart has no rotational symmetry
    base[:, 1] = np.minimum(base[:, 1], 3)
    base[:, 2] = np.minimum(base[:, 2], 36)
    base[:, 3:] = np.minimum(base[:, 3:], 28)
    ref = ds.images_from_factors(base)
    for factor, delta in ((1, 2), (2, 3), (3, 3), (4, 3)):
        moved = base.copy()
        moved[:, factor] += delta
        changed = (ds.images_from_factors(moved) != ref).flatten(1).any(dim=1)
        assert changed.all(), FACTOR_NAMES[factor]
    for shape in (0, 1):  # and changing the shape
        other = base.copy()
        other[:, 0] = shape
        assert (ds.images_from_factors(other) != ref).flatten(1).any(dim=1).all()


@pytest.mark.parametrize("antialias", [1, 4])
def test_scale_monotonically_increases_pixel_count(antialias):
    ds = ShapesDataset(antialias=antialias)
    base = ds.sample_factors(100, rng=1)
    counts = []
    for k in range(SIZES[1]):
        rows = base.copy()
        rows[:, 1] = k
        counts.append(ds.images_from_factors(rows).sum(dim=(1, 2, 3)))
    steps = torch.stack(counts, dim=1).diff(dim=1)  # (100, 5)
    if antialias > 1:
        assert (steps > 0).all()
    else:  # binary: an axis-aligned square can keep its pixel count for one step
        assert (steps >= 0).all() and (steps.sum(dim=1) > 0).all()
        assert (steps > 0).float().mean() > 0.95


@pytest.mark.parametrize(("factor", "axis"), [(3, 0), (4, 1)])
def test_position_moves_the_centroid(factor, axis):
    ds = ShapesDataset()
    for row in ds.sample_factors(10, rng=2):
        rows = np.repeat(row[None], SIZES[factor], axis=0)
        rows[:, factor] = np.arange(SIZES[factor])
        centroids = np.array([_centroid(img) for img in ds.images_from_factors(rows)])
        moving, still = centroids[:, axis], centroids[:, 1 - axis]
        assert moving[-1] - moving[0] > 0.5 * 32  # pos 0 -> 1 spans 0.6 of the image
        assert np.all(np.diff(moving) >= -0.3)  # pixel rounding aside, monotone
        assert np.ptp(still) < 0.5


def test_shapes_are_distinguishable():
    ds = ShapesDataset(resolution=32)
    for scale in range(SIZES[1]):
        for orient in range(0, SIZES[2], 3):
            rows = np.array([[s, scale, orient, 16, 16] for s in range(3)])
            imgs = ds.images_from_factors(rows).flatten(1)
            for i in range(3):
                for j in range(i + 1, 3):
                    assert (imgs[i] != imgs[j]).sum() >= 2


def test_shapes_stay_inside_the_frame():
    corners = [(px, py) for px in (0, 31) for py in (0, 31)]
    rows = np.array([[s, 5, o, px, py] for s in range(3) for o in range(40) for px, py in corners])
    for res, aa in ((32, 1), (32, 4), (64, 2)):
        imgs = render_shapes(rows, resolution=res, antialias=aa)[:, 0]
        border = torch.cat([imgs[:, 0], imgs[:, -1], imgs[:, :, 0], imgs[:, :, -1]], dim=1)
        assert border.max() == 0
        assert (imgs.sum(dim=(1, 2)) > 0).all()


def test_rendering_is_deterministic_and_batch_independent():
    ds = ShapesDataset(n=64, seed=3, antialias=2, cache=False)
    whole = ds.images()
    one_by_one = torch.stack([ds[i][0] for i in range(len(ds))])
    assert torch.equal(whole, one_by_one)
    assert torch.equal(whole, ShapesDataset(n=64, seed=3, antialias=2).images())
    assert torch.equal(whole, ds.images_from_factors(ds.factors))
    levels = torch.unique(whole * 4)  # multiples of 1 / antialias^2
    torch.testing.assert_close(levels, levels.round())


def test_cache_gives_the_same_images():
    ds = ShapesDataset(n=32, seed=0, cache=True)
    first = ds.images([3, 1, 3])
    assert ds._rendered is not None and int(ds._rendered.sum()) == 2
    assert torch.equal(first, ds.images([3, 1, 3]))
    assert torch.equal(first, ShapesDataset(n=32, seed=0, cache=False).images([3, 1, 3]))


def test_dataloader_batches():
    ds = ShapesDataset(n=40, seed=0, resolution=16)
    x, f = next(iter(DataLoader(ds, batch_size=16, shuffle=True)))
    assert x.shape == (16, 1, 16, 16) and f.shape == (16, 5)
    for img, row in zip(x, f, strict=True):
        assert torch.equal(img, ds.images_from_factors(row.numpy()[None])[0])


def test_sample_factors_fixed_and_seeded():
    ds = ShapesDataset(seed=7)
    rows = ds.sample_factors(1000, fixed={"scale": 2, 4: 9})
    assert (rows[:, 1] == 2).all() and (rows[:, 4] == 9).all()
    for i in (0, 2, 3):
        assert len(np.unique(rows[:, i])) == SIZES[i]  # the rest vary over their full range
    # the default generator advances (successive calls differ) but is seeded (runs repeat)
    again = ShapesDataset(seed=7).sample_factors(1000, fixed={"scale": 2, 4: 9})
    np.testing.assert_array_equal(rows, again)
    assert not np.array_equal(ds.sample_factors(10), ds.sample_factors(10))
    np.testing.assert_array_equal(ds.sample_factors(10, rng=1), ds.sample_factors(10, rng=1))
    assert not np.array_equal(ds.sample_factors(10, rng=1), ds.sample_factors(10, rng=2))


def test_custom_factor_sizes_and_resolution():
    ds = ShapesDataset(resolution=64, factor_sizes=(2, 3, 4, 5, 6))
    assert len(ds) == 2 * 3 * 4 * 5 * 6
    assert ds[len(ds) - 1][0].shape == (1, 64, 64)
    assert ds.factors[:, 0].max() == 1


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"factor_sizes": (4, 6, 40, 32, 32)}, ValueError, "at most 3 shapes"),
        ({"factor_sizes": (3, 6, 40, 32)}, ValueError, "5 entries"),
        ({"resolution": 2}, ValueError, "resolution"),
        ({"antialias": 0}, ValueError, "antialias"),
        ({"n": 10, "indices": [1]}, ValueError, "either"),
        ({"n": 0}, ValueError, "n must be"),
        ({"indices": [737_280]}, ValueError, "flat indices"),
        ({"indices": [[0, 6, 0, 0, 0]]}, ValueError, "scale = 6"),
    ],
)
def test_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        ShapesDataset(**kwargs)


def test_bad_factor_rows_and_keys():
    ds = ShapesDataset()
    with pytest.raises(ValueError, match=r"shape \(B, 5\)"):
        ds.images_from_factors(np.zeros((2, 4), dtype=int))
    with pytest.raises(TypeError, match="integer"):
        ds.images_from_factors(np.zeros((2, 5)))
    with pytest.raises(KeyError, match="unknown factor"):
        ds.sample_factors(3, fixed={"colour": 0})
    with pytest.raises(ValueError, match="out of range"):
        ds.sample_factors(3, fixed={"shape": 3})
    with pytest.raises(IndexError):
        ShapesDataset(n=5)[5]
