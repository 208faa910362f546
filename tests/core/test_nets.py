"""Encoder/decoder builders: shapes, layer access, and clear errors."""

from __future__ import annotations

import pytest
import torch

from seqae.core.nets import MLP, Conv1dDecoder, Conv1dEncoder, Conv2dDecoder, Conv2dEncoder


def test_mlp_flattens_input_and_reshapes_output() -> None:
    enc = MLP(in_dim=64, hidden=(32, 16), out_dim=8)
    assert enc(torch.randn(5, 1, 8, 8)).shape == (5, 8)
    dec = MLP(in_dim=8, hidden=(16,), out_dim=64, out_shape=(1, 8, 8), out_activation="sigmoid")
    y = dec(torch.randn(5, 8))
    assert y.shape == (5, 1, 8, 8) and (y > 0).all() and (y < 1).all()
    # one addressable block per affine map, for layer-wise pretraining
    assert len(enc.layers) == 3 and enc.layers[0][0].in_features == 64


@pytest.mark.parametrize("norm", [None, "batch", "layer"])
def test_mlp_norm_and_dropout(norm: str | None) -> None:
    m = MLP(in_dim=10, hidden=(12,), out_dim=3, norm=norm, dropout=0.5)
    m.eval()
    x = torch.randn(4, 10)
    assert torch.equal(m(x), m(x))


@pytest.mark.parametrize("norm", [None, "batch", "layer"])
@pytest.mark.parametrize("dropout", [0.0, 0.3])
def test_mlp_blocks_keep_their_layout_and_state_dict_keys(norm: str | None, dropout: float) -> None:
    # absent options sit in the blocks as nn.Identity placeholders (skipped when called), so
    # positions and state-dict keys do not depend on the options: saved models keep loading
    torch.manual_seed(0)
    m = MLP(in_dim=6, hidden=(5,), out_dim=3, norm=norm, dropout=dropout).eval()
    assert all(isinstance(block, torch.nn.Sequential) for block in m.layers)
    assert [len(block) for block in m.layers] == [4, 2]
    keys = {"layers.0.0.weight", "layers.0.0.bias", "layers.1.0.weight", "layers.1.0.bias"}
    if norm == "batch":
        keys |= {f"layers.0.1.{k}" for k in ("weight", "bias", "running_mean", "running_var")}
        keys |= {"layers.0.1.num_batches_tracked"}
    elif norm == "layer":
        keys |= {"layers.0.1.weight", "layers.0.1.bias"}
    assert set(m.state_dict()) == keys
    x = torch.randn(7, 6)
    reference = x
    for block in m.layers:  # every module called in order, as nn.Sequential would
        for module in block:
            reference = module(reference)
    assert torch.equal(m(x), reference)


def test_mlp_bad_input_is_named() -> None:
    with pytest.raises(ValueError, match=r"expects input of shape \(B, 64\).*got \(5, 63\)"):
        MLP(in_dim=64, out_dim=2)(torch.randn(5, 63))
    with pytest.raises(ValueError, match="unknown activation 'relux'"):
        MLP(in_dim=4, out_dim=2, hidden=(3,), activation="relux")
    with pytest.raises(ValueError, match="out_shape"):
        MLP(in_dim=4, out_dim=6, out_shape=(2, 2))


@pytest.mark.parametrize("strides", [(1, 1), (2, 1), (2, 2), (3,)])
def test_conv1d_roundtrip_lengths(strides: tuple[int, ...]) -> None:
    channels = (16,) * len(strides)
    enc = Conv1dEncoder(
        in_channels=10, out_channels=4, channels=channels, strides=strides, norm="instance"
    )
    dec = Conv1dDecoder(in_channels=4, out_channels=10, channels=channels, strides=strides[::-1])
    x = torch.randn(2, 10, 24)
    h = enc(x)
    assert h.shape == (2, 4, 24 // enc.downsample)
    assert dec(h).shape == x.shape


def test_conv1d_bad_input() -> None:
    with pytest.raises(ValueError, match=r"expects \(B, 10, T\)"):
        Conv1dEncoder(in_channels=10, out_channels=4)(torch.randn(2, 9, 20))


def test_conv2d_vector_and_map_codes() -> None:
    x = torch.randn(3, 1, 32, 32)
    enc = Conv2dEncoder(image_size=32, channels=(8, 16), out_dim=6)
    dec = Conv2dDecoder(image_size=32, channels=(16, 8), in_dim=6)
    assert dec(enc(x)).shape == x.shape
    enc_map = Conv2dEncoder(image_size=32, channels=(8, 16), out_channels=5)
    dec_map = Conv2dDecoder(image_size=32, channels=(16, 8), in_channels=5)
    h = enc_map(x)
    assert h.shape == (3, 5, 8, 8)
    assert dec_map(h).shape == x.shape
    with pytest.raises(ValueError, match="exactly one of out_dim"):
        Conv2dEncoder(image_size=32, out_dim=3, out_channels=3)
    with pytest.raises(ValueError, match=r"expects \(B, 1, 32, 32\)"):
        enc(torch.randn(3, 1, 28, 28))


def test_gradients_flow_through_every_builder() -> None:
    for net, x in [
        (MLP(in_dim=6, hidden=(5,), out_dim=2), torch.randn(3, 6)),
        (
            Conv1dEncoder(in_channels=3, out_channels=2, channels=(4,), strides=(2,)),
            torch.randn(2, 3, 8),
        ),
        (Conv2dEncoder(image_size=8, channels=(4,), out_dim=2), torch.randn(2, 1, 8, 8)),
    ]:
        x.requires_grad_(True)
        net(x).square().sum().backward()
        assert x.grad is not None and x.grad.abs().sum() > 0
        assert all(p.grad is not None for p in net.parameters())
