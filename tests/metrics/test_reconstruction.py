import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from seqae.metrics import iter_batches, reconstruction_error


def test_mse_against_hand_computation():
    x = torch.arange(12, dtype=torch.float32).reshape(3, 4)
    err = reconstruction_error(lambda t: t + 0.5, x)
    assert err.mean == pytest.approx(0.25)
    torch.testing.assert_close(err.per_example, torch.full((3,), 1.0, dtype=torch.float64))
    assert err.num_elements == 4


def test_kinds():
    x = torch.tensor([[0.0, 1.0], [1.0, 0.0]])
    shift = lambda t: (t - 0.3).abs()  # noqa: E731
    assert reconstruction_error(shift, x, kind="mae").mean == pytest.approx(0.3)
    assert reconstruction_error(shift, x, kind="mse").mean == pytest.approx(0.09)
    bce = reconstruction_error(lambda t: torch.full_like(t, 0.5), x, kind="bce")
    assert bce.mean == pytest.approx(torch.log(torch.tensor(2.0)).item())
    with pytest.raises(ValueError, match="unknown kind"):
        reconstruction_error(shift, x, kind="l3")


def test_loader_batches_and_tensor_batches_agree():
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(37, 2, 3, generator=gen)
    fn = lambda t: t.flip(-1)  # noqa: E731
    whole = reconstruction_error(fn, x, batch_size=5)
    loader = DataLoader(TensorDataset(x, torch.zeros(37)), batch_size=8)  # (x, y) batches
    from_loader = reconstruction_error(fn, loader)
    from_dicts = reconstruction_error(fn, [{"x": x[:20]}, {"x": x[20:]}])
    assert whole.mean == pytest.approx(((fn(x) - x) ** 2).mean().item())
    for other in (from_loader, from_dicts):
        assert other.mean == pytest.approx(whole.mean)
        torch.testing.assert_close(other.per_example, whole.per_example)


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.5))

    def reconstruct(self, x):
        return self.net(x)


def test_uses_reconstruct_eval_mode_and_restores_mode():
    model = Tiny().train()
    x = torch.randn(16, 4)
    a = reconstruction_error(model, x)
    b = reconstruction_error(model, x)
    assert a.mean == b.mean  # dropout off in eval mode
    assert model.training
    with torch.no_grad():
        model.eval()
        expected = ((model.net(x) - x) ** 2).mean().item()
    assert a.mean == pytest.approx(expected)


def test_output_object_with_x_hat():
    class Out:
        def __init__(self, x_hat):
            self.x_hat = x_hat

    assert reconstruction_error(lambda t: Out(t), torch.ones(2, 3)).mean == 0.0


def test_errors():
    x = torch.zeros(4, 3)
    with pytest.raises(ValueError, match="shape"):
        reconstruction_error(lambda t: t[:, :2], x)
    with pytest.raises(TypeError, match="must be a tensor"):
        reconstruction_error(lambda t: (t, t), x)
    with pytest.raises(TypeError, match="reconstruct"):
        reconstruction_error(42, x)
    with pytest.raises(ValueError, match="no examples"):
        reconstruction_error(lambda t: t, [])
    with pytest.raises(TypeError, match="batch 0"):
        list(iter_batches(["not a batch"]))
