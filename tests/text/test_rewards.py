"""The text plugin's REINFORCE pieces (seqae.text.rewards): discounted reward-to-go, the
self-critical advantage, the per-token policy-gradient loss (and a toy policy that learns from
it), and the summary reward's combination of its terms."""

from __future__ import annotations

import pytest
import torch

from seqae.extras import missing_modules

if missing_modules("text"):
    pytest.skip("seqae's text extra is not installed", allow_module_level=True)

from seqae.text.rewards import (  # noqa: E402
    SummaryReward,
    discounted_returns,
    policy_gradient_loss,
    self_critical_advantage,
)


def test_discounted_returns_hand_computed() -> None:
    rewards = torch.tensor([[1.0, 2.0, 3.0, 9.0], [4.0, -1.0, 7.0, 7.0]])
    mask = torch.tensor([[True, True, True, False], [True, True, False, False]])
    g = 0.5
    expected = torch.tensor(
        [
            [1 + g * 2 + g * g * 3, 2 + g * 3, 3.0, 0.0],  # the 9 is padding: ignored
            [4 + g * -1, -1.0, 0.0, 0.0],
        ]
    )
    torch.testing.assert_close(discounted_returns(rewards, mask, g), expected)
    torch.testing.assert_close(
        discounted_returns(rewards, mask, 1.0), torch.tensor([[6.0, 5, 3, 0], [3.0, -1, 0, 0]])
    )
    torch.testing.assert_close(discounted_returns(rewards, mask, 0.0), rewards * mask)
    with pytest.raises(ValueError, match="gamma"):
        discounted_returns(rewards, mask, 1.5)
    with pytest.raises(ValueError, match="same shape"):
        discounted_returns(rewards, mask[:, :3], 0.5)


def test_self_critical_advantage_sign_broadcast_and_mask() -> None:
    sample = torch.tensor([3.0, 1.0], requires_grad=True)
    greedy = torch.tensor([2.0, 2.0])
    adv = self_critical_advantage(sample, greedy)
    torch.testing.assert_close(adv, torch.tensor([1.0, -1.0]))  # better than greedy: positive
    assert not adv.requires_grad
    returns = torch.tensor([[3.0, 2.0, 1.0], [0.5, 0.5, 0.5]])
    mask = torch.tensor([[True, True, False], [True, True, True]])
    adv = self_critical_advantage(returns, greedy, mask=mask)
    torch.testing.assert_close(adv, torch.tensor([[1.0, 0.0, 0.0], [-1.5, -1.5, -1.5]]))
    with pytest.raises(ValueError, match="does not fit"):
        self_critical_advantage(returns, torch.zeros(3))


def test_policy_gradient_loss_matches_formula_and_masks() -> None:
    torch.manual_seed(0)
    logits = torch.randn(3, 4, 5, requires_grad=True)
    log_pi = torch.log_softmax(logits, -1)
    actions = torch.randint(5, (3, 4))
    token_lp = log_pi.gather(-1, actions.unsqueeze(-1)).squeeze(-1)
    entropy = -(log_pi.exp() * log_pi).sum(-1)
    adv = torch.randn(3, 4)
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0], [1, 0, 0, 0]], dtype=torch.bool)
    loss = policy_gradient_loss(token_lp, adv, mask, entropy=entropy, entropy_weight=0.1)
    expected = -((adv * token_lp + 0.1 * entropy) * mask).sum() / 3
    torch.testing.assert_close(loss, expected)
    (grad,) = torch.autograd.grad(loss, logits)
    assert torch.all(grad[~mask] == 0)  # padded positions get no gradient
    assert torch.all(grad[mask].abs().sum(-1) > 0)
    # the advantage is a constant: no gradient flows into it
    adv_param = adv.clone().requires_grad_(True)
    policy_gradient_loss(token_lp.detach().requires_grad_(True), adv_param, mask).backward()
    assert adv_param.grad is None
    with pytest.raises(ValueError, match="differ in shape"):
        policy_gradient_loss(token_lp, adv[:, :3], mask)


def test_reinforce_teaches_a_toy_policy_the_preferred_tokens() -> None:
    """A per-position categorical policy over 8 tokens, rewarded 1 per position where it emits
    that position's preferred token, reaches near-maximal reward from chance (1/8)."""
    torch.manual_seed(0)
    steps, vocab, batch = 6, 8, 32
    preferred = torch.tensor([3, 1, 4, 1, 5, 2])
    logits = torch.zeros(steps, vocab, requires_grad=True)
    opt = torch.optim.Adam([logits], lr=0.1)
    mask = torch.ones(batch, steps, dtype=torch.bool)

    def reward(tokens: torch.Tensor) -> torch.Tensor:
        return (tokens == preferred).float()  # per token, (B, T)

    history = []
    for _ in range(150):
        dist = torch.distributions.Categorical(logits=logits.expand(batch, steps, vocab))
        sample = dist.sample()
        greedy = logits.detach().argmax(-1).expand(1, steps)
        sample_returns = discounted_returns(reward(sample), mask, 0.9)
        greedy_returns = discounted_returns(reward(greedy), mask[:1], 0.9)
        adv = self_critical_advantage(sample_returns, greedy_returns.expand(batch, steps))
        loss = policy_gradient_loss(dist.log_prob(sample), adv, mask)
        opt.zero_grad()
        loss.backward()
        opt.step()
        history.append(float(reward(sample).mean()))
    assert sum(history[:5]) / 5 < 0.3  # about chance (1/8)
    assert sum(history[-10:]) / 10 > 0.9
    assert torch.equal(logits.argmax(-1), preferred)


def test_summary_reward_combines_named_terms() -> None:
    reward = SummaryReward(
        reconstruction_weight=2.0,
        discriminator_weight=0.5,
        gamma=0.5,
        target_length=2,
        length_weight=0.1,
    )
    rec = torch.tensor([-1.0, -3.0])
    disc = torch.tensor([[0.4, -0.2, 0.2, 0.3], [0.1, 0.3, 0.5, 0.5]])
    lengths = torch.tensor([4, 1])
    out = reward(rec, disc, lengths)
    d0 = [0.4 + 0.5 * -0.2 + 0.25 * 0.2 + 0.125 * 0.3, -0.2 + 0.5 * 0.2 + 0.25 * 0.3, 0.2 + 0.15]
    shared0 = 2.0 * -1.0 - 0.1 * 2  # two words beyond the target
    shared1 = 2.0 * -3.0  # within the target: no penalty
    expected = torch.tensor(
        [
            [shared0 + 0.5 * d0[0], shared0 + 0.5 * d0[1], shared0 + 0.5 * d0[2], shared0 + 0.15],
            [shared1 + 0.5 * 0.1, 0.0, 0.0, 0.0],
        ]
    )
    torch.testing.assert_close(out.returns, expected)
    torch.testing.assert_close(out.total, expected[:, 0])
    torch.testing.assert_close(out.terms["reconstruction"], torch.tensor([-2.0, -6.0]))
    torch.testing.assert_close(out.terms["length"], torch.tensor([-0.2, 0.0]))
    torch.testing.assert_close(out.terms["discriminator"], torch.tensor([0.5 * d0[0], 0.05]))
    torch.testing.assert_close(
        out.terms["reconstruction"] + out.terms["discriminator"] + out.terms["length"], out.total
    )
    assert out.mask.tolist() == [[True] * 4, [True, False, False, False]]
    # without a target length there is no length term
    plain = SummaryReward()(rec, disc, lengths)
    torch.testing.assert_close(plain.terms["length"], torch.zeros(2))
    with pytest.raises(ValueError, match="gamma"):
        SummaryReward(gamma=-0.1)


def test_the_distance_length_term_makes_short_summaries_pay_too() -> None:
    lengths = torch.tensor([1, 3, 6])
    rec, disc = torch.zeros(3), torch.zeros(3, 6)
    over = SummaryReward(target_length=3, length_weight=0.5)(rec, disc, lengths)
    distance = SummaryReward(target_length=3, length_weight=0.5, length_mode="distance")(
        rec, disc, lengths
    )
    torch.testing.assert_close(over.terms["length"], torch.tensor([0.0, 0.0, -1.5]))
    torch.testing.assert_close(distance.terms["length"], torch.tensor([-1.0, 0.0, -1.5]))
    with pytest.raises(ValueError, match="length_mode"):
        SummaryReward(length_mode="under")
