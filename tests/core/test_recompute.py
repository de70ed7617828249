"""The recompute speed trick (core.recompute): its convolution gradients equal autograd's."""

import pytest
import torch

from transfusion_ad.core.recompute import _conv_backward


@pytest.mark.parametrize("kernel", [1, 3])
def test_conv_backward_in_channels_last_matches_autograd(kernel):
    """On the CPU the input gradient comes from channels_last and the weight gradient from
    NCHW copies; both must equal what autograd gives for the plain convolution."""
    torch.manual_seed(0)
    x = torch.randn(2, 8, 12, 12).contiguous(memory_format=torch.channels_last)
    weight = torch.randn(16, 8, kernel, kernel).contiguous(memory_format=torch.channels_last)
    bias = torch.randn(16)
    upstream = torch.randn(2, 16, 12, 12).contiguous(memory_format=torch.channels_last)
    leaves = [tensor.clone().requires_grad_() for tensor in (x, weight, bias)]
    out = torch.nn.functional.conv2d(*leaves, padding=kernel // 2)
    expected = torch.autograd.grad(out, leaves, upstream)
    got = _conv_backward(upstream, x, weight)
    for mine, reference in zip(got, expected, strict=True):
        torch.testing.assert_close(mine, reference, atol=1e-4, rtol=1e-4)
    assert got[0].is_contiguous(memory_format=torch.channels_last)
    assert got[1].is_contiguous(memory_format=torch.channels_last)
