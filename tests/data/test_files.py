import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from seqae.data import ImageFolderDataset, NpzDataset, validate_array

# --------------------------------------------------------------------------------------------
# validate_array
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("make", [np.zeros, torch.zeros])
def test_validate_array_accepts_and_returns_input(make):
    x = make((4, 3))
    assert validate_array(x, expected_ndim=2, expected_shape=(None, 3)) is x
    assert validate_array(x, expected_ndim=(1, 2)) is x


@pytest.mark.parametrize("make", [np.array, torch.tensor])
def test_validate_array_counts_non_finite(make):
    x = make([[1.0, float("nan")], [float("inf"), -float("inf")]])
    with pytest.raises(ValueError, match="images: contains 3 non-finite"):
        validate_array(x, name="images")
    assert validate_array(x, require_finite=False) is x


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"expected_ndim": 3}, r"expected 3 dimensions, got 2"),
        ({"expected_ndim": (1, 3)}, r"expected 1 or 3 dimensions"),
        ({"expected_shape": (None, 4)}, r"expected shape \(\*, 4\), got \(2, 3\)"),
        ({"expected_shape": (2, 3, 1)}, r"expected shape"),
    ],
)
def test_validate_array_shape_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        validate_array(np.zeros((2, 3)), **kwargs)


def test_validate_array_empty_and_dtype_and_type():
    with pytest.raises(ValueError, match="batch: is empty"):
        validate_array(np.zeros((0, 3)), name="batch")
    validate_array(np.zeros((0, 3)), allow_empty=True)
    with pytest.raises(TypeError, match="numeric"):
        validate_array(np.array(["a", "b"]))
    with pytest.raises(TypeError, match="numeric"):
        validate_array(torch.zeros(2, dtype=torch.complex64))
    with pytest.raises(TypeError, match="numpy array or torch tensor"):
        validate_array([1, 2, 3])
    validate_array(np.array([True, False]))  # bool is fine
    validate_array(np.arange(3))  # ints are never non-finite


# --------------------------------------------------------------------------------------------
# NpzDataset
# --------------------------------------------------------------------------------------------


def test_npz_dataset_with_and_without_labels(tmp_path):
    path = tmp_path / "data.npz"
    x = np.random.default_rng(0).random((5, 2, 3)).astype(np.float64)
    np.savez(path, x=x, y=np.arange(5), other=np.zeros(1))
    plain = NpzDataset(path)
    assert len(plain) == 5
    (item,) = plain[2]
    assert item.dtype == torch.float32 and item.shape == (2, 3)
    torch.testing.assert_close(item, torch.from_numpy(x[2]).float())
    labelled = NpzDataset(str(path), label_key="y")
    xb, yb = next(iter(DataLoader(labelled, batch_size=5)))
    assert xb.shape == (5, 2, 3) and yb.tolist() == [0, 1, 2, 3, 4] and yb.dtype == torch.int64


@pytest.mark.parametrize("label_key", [None, "y"])
def test_npz_get_batch_equals_item_reads(tmp_path, label_key):
    path = tmp_path / "data.npz"
    np.savez(path, x=np.random.default_rng(1).random((7, 2, 3)), y=np.arange(7) % 3)
    ds = NpzDataset(path, label_key=label_key)
    indices = [6, 0, 3, 0]
    batch = ds.get_batch(torch.tensor(indices))
    items = [ds[i] for i in indices]
    assert len(batch) == (1 if label_key is None else 2)
    for got, parts in zip(batch, zip(*items, strict=True), strict=True):
        assert torch.equal(got, torch.stack(parts))
    assert all(torch.equal(a, b) for a, b in zip(ds.get_batch(indices), batch, strict=True))


def test_npz_compressed_and_custom_key(tmp_path):
    path = tmp_path / "c.npz"
    np.savez_compressed(path, images=np.ones((3, 4), dtype=np.uint8))
    ds = NpzDataset(path, key="images", dtype=torch.float64)
    assert ds[0][0].dtype == torch.float64


def test_npz_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.npz"):
        NpzDataset(tmp_path / "nope.npz")


def test_npz_empty_file(tmp_path):
    path = tmp_path / "empty.npz"
    path.write_bytes(b"")
    with pytest.raises(ValueError, match=r"empty\.npz is empty"):
        NpzDataset(path)


@pytest.mark.parametrize(
    "payload", [b"this is not a zip archive at all", b"PK\x03\x04garbage-after-zip-magic"]
)
def test_npz_corrupt_file(tmp_path, payload):
    path = tmp_path / "broken.npz"
    path.write_bytes(payload)
    with pytest.raises(ValueError, match=r"broken\.npz"):
        NpzDataset(path)


def test_npz_truncated_archive(tmp_path):
    path = tmp_path / "cut.npz"
    np.savez(path, x=np.zeros((100, 100)))
    path.write_bytes(path.read_bytes()[:2000])
    with pytest.raises(ValueError, match=r"cut\.npz"):
        NpzDataset(path)


def test_npy_instead_of_npz(tmp_path):
    path = tmp_path / "single.npy"
    np.save(path, np.zeros(3))
    with pytest.raises(ValueError, match=r"single\.npy holds a single \.npy array"):
        NpzDataset(path)


def test_npz_missing_key_lists_available(tmp_path):
    path = tmp_path / "k.npz"
    np.savez(path, images=np.zeros((2, 2)), labels=np.zeros(2))
    with pytest.raises(KeyError, match=r"no array 'x'; available keys: images, labels"):
        NpzDataset(path)
    with pytest.raises(KeyError, match="'targets'"):
        NpzDataset(path, key="images", label_key="targets")


def test_npz_non_finite_names_file_and_count(tmp_path):
    path = tmp_path / "nan.npz"
    x = np.zeros((4, 3))
    x[0, 0] = np.nan
    x[2, 1] = np.inf
    np.savez(path, x=x)
    with pytest.raises(ValueError, match=r"nan\.npz.*contains 2 non-finite"):
        NpzDataset(path)


def test_npz_non_numeric(tmp_path):
    path = tmp_path / "str.npz"
    np.savez(path, x=np.array(["a", "b"]))
    with pytest.raises(TypeError, match=r"str\.npz.*numeric"):
        NpzDataset(path)


def test_npz_bad_labels(tmp_path):
    path = tmp_path / "l.npz"
    np.savez(path, x=np.zeros((3, 2)), short=np.zeros(2), frac=np.array([0.5, 1, 2]))
    with pytest.raises(ValueError, match="2 labels for 3 examples"):
        NpzDataset(path, label_key="short")
    with pytest.raises(TypeError, match="integers"):
        NpzDataset(path, label_key="frac")


# --------------------------------------------------------------------------------------------
# ImageFolderDataset
# --------------------------------------------------------------------------------------------


def _save_image(path, value, size=(6, 4), mode="L"):
    path.parent.mkdir(parents=True, exist_ok=True)
    array = np.full((size[1], size[0]) + ((3,) if mode == "RGB" else ()), value, dtype=np.uint8)
    Image.fromarray(array, mode=mode).save(path)


def test_image_folder_flat(tmp_path):
    _save_image(tmp_path / "b.png", 255)
    _save_image(tmp_path / "a.jpg", 0)
    (tmp_path / "notes.txt").write_text("not an image")
    ds = ImageFolderDataset(tmp_path)
    assert len(ds) == 2 and ds.classes == [] and ds.labels is None
    (x,) = ds[0]  # sorted: a.jpg first
    assert x.shape == (1, 4, 6) and x.dtype == torch.float32
    assert x.max() < 0.05
    assert torch.allclose(ds[1][0], torch.ones(1, 4, 6))


def test_image_folder_classes_resize_and_rgb(tmp_path):
    _save_image(tmp_path / "cat" / "1.png", 10, mode="RGB")
    _save_image(tmp_path / "cat" / "2.PNG", 20, size=(9, 9), mode="RGB")
    _save_image(tmp_path / "dog" / "1.jpeg", 30, mode="RGB")
    (tmp_path / "empty_class").mkdir()
    ds = ImageFolderDataset(tmp_path, size=8, grayscale=False)
    assert ds.classes == ["cat", "dog"]
    assert ds.labels.tolist() == [0, 0, 1]
    xb, yb = next(iter(DataLoader(ds, batch_size=3)))
    assert xb.shape == (3, 3, 8, 8) and yb.tolist() == [0, 0, 1]
    gray = ImageFolderDataset(tmp_path, size=(5, 7))
    assert gray[2][0].shape == (1, 5, 7)


def test_image_folder_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such folder"):
        ImageFolderDataset(tmp_path / "missing")
    (tmp_path / "sub").mkdir()
    (tmp_path / "readme.md").write_text("x")
    with pytest.raises(ValueError, match="no images"):
        ImageFolderDataset(tmp_path)
    _save_image(tmp_path / "sub" / "a.png", 1)
    _save_image(tmp_path / "top.png", 1)
    with pytest.raises(ValueError, match="both at the top level and in subfolders"):
        ImageFolderDataset(tmp_path)
    with pytest.raises(ValueError, match="size"):
        ImageFolderDataset(tmp_path / "sub", size=0)


def test_image_folder_unreadable_image_named(tmp_path):
    _save_image(tmp_path / "good.png", 5)
    (tmp_path / "bad.png").write_bytes(b"\x89PNG but not really")
    ds = ImageFolderDataset(tmp_path)
    with pytest.raises(ValueError, match=r"cannot read image .*bad\.png"):
        ds[0]  # sorted: bad.png first
    with pytest.raises(ValueError, match=r"bad\.png"):
        ImageFolderDataset(tmp_path, verify=True)
