"""The shared optimiser: AdamW with the fused kernel on CPU, the same rule as the per-parameter loop."""

from __future__ import annotations

import torch

from claim.training import fused_adamw


def test_fused_adamw_is_fused_on_cpu_and_follows_adamw():
    torch.manual_seed(0)
    reference = torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.Tanh(), torch.nn.Linear(5, 2))
    fused = torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.Tanh(), torch.nn.Linear(5, 2))
    fused.load_state_dict(reference.state_dict())
    start = [p.detach().clone() for p in fused.parameters()]
    options = dict(lr=1e-2, weight_decay=1e-3)
    opt_fused = fused_adamw(fused.parameters(), torch.device("cpu"), **options)
    opt_loop = torch.optim.AdamW(reference.parameters(), foreach=False, **options)
    assert opt_fused.defaults["fused"] is True
    x, y = torch.randn(16, 6, generator=torch.Generator().manual_seed(1)), torch.randn(16, 2)
    for _ in range(5):
        for net, opt in ((fused, opt_fused), (reference, opt_loop)):
            opt.zero_grad()
            torch.nn.functional.mse_loss(net(x), y).backward()
            opt.step()
    for a, b in zip(fused.parameters(), reference.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    assert all((a - s).abs().max() > 1e-3 for a, s in zip(fused.parameters(), start, strict=True))  # they moved
