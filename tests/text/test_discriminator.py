"""The text plugin's prefix discriminator (seqae.text.discriminator): it learns real word order
against shuffled order, each logit sees only its prefix, extended (copied) ids read as <unk>,
per-token rewards, and the saved-model round trip."""

from __future__ import annotations

import pytest
import torch

from seqae.extras import missing_modules

if missing_modules("text"):
    pytest.skip("seqae's text extra is not installed", allow_module_level=True)

from seqae.core.classifier import OneHotClassifier  # noqa: E402
from seqae.core.saving import SavedModelError  # noqa: E402
from seqae.text.discriminator import PrefixDiscriminator  # noqa: E402

VOCAB = 24  # 0..3 special, then words
DETS, ADJS, NOUNS, VERBS = [4, 5], [6, 7, 8, 9], [10, 11, 12, 13, 14, 15], [16, 17, 18, 19]


def _sentences(n: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Real sentences ``det adj noun verb det noun`` (length 6, padded to 8 sometimes with a
    final ``det noun``) from a toy grammar."""
    ids = torch.zeros(n, 8, dtype=torch.long)
    lengths = torch.empty(n, dtype=torch.long)
    for i in range(n):
        pattern = [DETS, ADJS, NOUNS, VERBS, DETS, NOUNS]
        if torch.rand((), generator=gen) < 0.5:
            pattern += [DETS, NOUNS]
        words = [c[int(torch.randint(len(c), (), generator=gen))] for c in pattern]
        ids[i, : len(words)] = torch.tensor(words)
        lengths[i] = len(words)
    return ids, lengths


def _shuffled(ids: torch.Tensor, lengths: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """The same words in a random order (only the valid positions move)."""
    out = ids.clone()
    for i, n in enumerate(lengths.tolist()):
        out[i, :n] = ids[i, :n][torch.randperm(n, generator=gen)]
    return out


def test_learns_real_word_order_against_shuffled_above_chance_on_held_out() -> None:
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    disc = PrefixDiscriminator(vocab_size=VOCAB, embedding_dim=16, hidden_size=32)
    test_ids, test_lens = _sentences(200, gen)
    test_fake = _shuffled(test_ids, test_lens, gen)
    before = disc.accuracy(test_ids, test_lens, test_fake, test_lens, last_only=True)
    opt = torch.optim.Adam(disc.parameters(), lr=1e-2)
    for _ in range(40):
        ids, lens = _sentences(32, gen)
        loss = disc.loss(ids, lens, _shuffled(ids, lens, gen), lens)
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = disc.accuracy(test_ids, test_lens, test_fake, test_lens, last_only=True)
    assert before < 0.7
    assert after > 0.9, (before, after)
    # every prefix: the first word alone often cannot tell, but most prefixes can
    assert disc.accuracy(test_ids, test_lens, test_fake, test_lens) > 0.75
    # the rewards follow: real sentences earn more than their shuffled versions
    mask = torch.arange(8) < test_lens[:, None]
    real_r = disc.token_rewards(test_ids, test_lens)[mask].mean()
    fake_r = disc.token_rewards(test_fake, test_lens)[mask].mean()
    assert real_r > 0.2 and fake_r < -0.1


def test_logit_at_t_sees_only_the_prefix() -> None:
    torch.manual_seed(1)
    disc = PrefixDiscriminator(vocab_size=VOCAB, embedding_dim=8, hidden_size=16, num_layers=2)
    disc.eval()
    ids = torch.randint(4, VOCAB, (3, 7))
    lengths = torch.tensor([7, 7, 5])
    base = disc(ids, lengths)
    for t in range(6):
        changed = ids.clone()
        changed[:, t + 1] = (changed[:, t + 1] - 4 + 1) % (VOCAB - 4) + 4
        out = disc(changed, lengths)
        torch.testing.assert_close(out[:, : t + 1], base[:, : t + 1])
        assert not torch.allclose(out[0, t + 1], base[0, t + 1])
    # padded positions are 0, and what lies beyond a row's length does not matter
    assert torch.all(base[2, 5:] == 0)
    changed = ids.clone()
    changed[2, 5:] = 0
    torch.testing.assert_close(disc(changed, lengths), base)


def test_extended_ids_read_as_unk_and_bad_input_refused() -> None:
    torch.manual_seed(2)
    disc = PrefixDiscriminator(vocab_size=VOCAB, embedding_dim=8, hidden_size=16, unk_id=1)
    ids = torch.tensor([[5, VOCAB, 7, VOCAB + 3], [6, 7, 8, 9]])
    as_unk = torch.tensor([[5, 1, 7, 1], [6, 7, 8, 9]])
    lengths = torch.tensor([4, 3])
    torch.testing.assert_close(disc(ids, lengths), disc(as_unk, lengths))
    torch.testing.assert_close(
        disc.token_rewards(ids, lengths), disc.token_rewards(as_unk, lengths)
    )
    assert disc.loss(ids, lengths, as_unk, lengths).isfinite()
    with pytest.raises(ValueError, match="ids must be >= 0"):
        disc(torch.tensor([[5, -1]]), torch.tensor([2]))
    with pytest.raises(ValueError, match="lengths must lie in"):
        disc(ids, torch.tensor([4, 5]))
    with pytest.raises(ValueError, match="lengths must be"):
        disc(ids, torch.tensor([4]))
    with pytest.raises(ValueError, match="unk_id"):
        PrefixDiscriminator(vocab_size=10, unk_id=10)


def test_token_rewards_forms_no_gradient_eval_mode_and_zero_padding() -> None:
    torch.manual_seed(3)
    disc = PrefixDiscriminator(vocab_size=VOCAB, embedding_dim=8, hidden_size=16, dropout=0.5)
    disc.train()
    ids = torch.randint(4, VOCAB, (4, 6))
    lengths = torch.tensor([6, 3, 1, 0])
    centered = disc.token_rewards(ids, lengths)
    assert disc.training  # restored
    assert not centered.requires_grad
    torch.testing.assert_close(centered, disc.token_rewards(ids, lengths))  # no dropout
    mask = torch.arange(6) < lengths[:, None]
    assert torch.all(centered[~mask] == 0)
    disc.eval()
    logits = disc(ids, lengths)
    torch.testing.assert_close(centered[mask], torch.sigmoid(logits[mask]) - 0.5)
    log = disc.token_rewards(ids, lengths, form="log")
    torch.testing.assert_close(log[mask], torch.log(torch.sigmoid(logits[mask])))
    assert torch.all(log[mask] < 0) and torch.all(log[~mask] == 0)
    with pytest.raises(ValueError, match="reward form"):
        disc.token_rewards(ids, lengths, form="odds")  # type: ignore[arg-type]


def test_loss_is_bce_over_valid_positions() -> None:
    torch.manual_seed(4)
    disc = PrefixDiscriminator(vocab_size=VOCAB, embedding_dim=8, hidden_size=16)
    real, fake = torch.randint(4, VOCAB, (2, 5)), torch.randint(4, VOCAB, (3, 4))
    rl, fl = torch.tensor([5, 2]), torch.tensor([4, 1, 3])
    rm, fm = torch.arange(5) < rl[:, None], torch.arange(4) < fl[:, None]
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    r, f = disc(real, rl)[rm], disc(fake, fl)[fm]
    expected = bce(r, torch.ones_like(r)) + bce(f, torch.zeros_like(f))
    torch.testing.assert_close(disc.loss(real, rl, fake, fl), expected)


def test_save_load_round_trip(tmp_path) -> None:
    torch.manual_seed(5)
    disc = PrefixDiscriminator(
        vocab_size=VOCAB, embedding_dim=8, hidden_size=16, num_layers=2, dropout=0.1, unk_id=2
    )
    disc.save_pretrained(tmp_path / "d")
    same = PrefixDiscriminator.from_pretrained(tmp_path / "d", map_location="cpu")
    assert same.config == disc.config
    ids, lengths = torch.tensor([[5, 6, VOCAB + 1, 8]]), torch.tensor([4])
    disc.eval()
    same.eval()
    torch.testing.assert_close(same(ids, lengths), disc(ids, lengths))
    OneHotClassifier(in_dim=4, hidden=[8], num_categories=2).save_pretrained(tmp_path / "other")
    with pytest.raises(SavedModelError, match="summary_discriminator"):
        PrefixDiscriminator.from_pretrained(tmp_path / "other")
