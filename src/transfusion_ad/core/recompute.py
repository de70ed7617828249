"""A speed trick of training, behind ``TransFusionUNet.enable_recompute``: GroupNorm+SiLU+conv
as one autograd function that keeps only its input and recomputes the element-wise part in the
backward pass. It changes memory and speed, never values (tests/benchmarks/test_equivalence.py
guards it); the network reads as the paper without it."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class NormActConv(torch.autograd.Function):
    """conv(SiLU(GroupNorm(x))) that keeps only x for the backward pass.

    Plain autograd keeps the normalised and the activated maps as well (three full-size tensors
    per convolution); here they are recomputed in the backward pass (two cheap element-wise
    passes), and the convolution gradients come from the same ``convolution_backward`` autograd
    would call, so values and gradients are unchanged. Measured once at 256², batch 8, it more
    than halved the activation memory of a training step (benchmarks/README.md).
    """

    @staticmethod
    def forward(ctx, x, norm_weight, norm_bias, conv_weight, conv_bias, groups, eps):
        ctx.save_for_backward(x, norm_weight, norm_bias, conv_weight)
        ctx.groups, ctx.eps = groups, eps
        activated = F.silu(F.group_norm(x, groups, norm_weight, norm_bias, eps))
        return F.conv2d(activated, conv_weight, conv_bias, padding=conv_weight.shape[-1] // 2)

    @staticmethod
    def backward(ctx, grad_out):
        x, norm_weight, norm_bias, conv_weight = ctx.saved_tensors
        with torch.enable_grad():
            inputs = [tensor.detach().requires_grad_() for tensor in (x, norm_weight, norm_bias)]
            activated = F.silu(F.group_norm(inputs[0], ctx.groups, *inputs[1:], ctx.eps))
        grad_activated, grad_weight, grad_bias = _conv_backward(
            grad_out, activated.detach(), conv_weight
        )
        grad_x, grad_norm_weight, grad_norm_bias = torch.autograd.grad(
            activated, inputs, grad_activated
        )
        return grad_x, grad_norm_weight, grad_norm_bias, grad_weight, grad_bias, None, None


def _conv_backward(grad_out: Tensor, inputs: Tensor, weight: Tensor) -> tuple[Tensor, ...]:
    """Gradients (input, weight, bias) of a stride-1 "same" conv2d: what autograd would call.

    On the CPU in channels_last, oneDNN's weight-gradient kernel was measured slower than on
    NCHW copies of the same tensors, while its input gradient is faster in channels_last
    (benchmarks/README.md); so the two are taken separately there. The values are the same up to
    float summation order.
    """
    pad = weight.shape[-1] // 2
    geometry = ([weight.shape[0]], [1, 1], [pad, pad], [1, 1], False, [0, 0], 1)
    backward = torch.ops.aten.convolution_backward
    channels_last = inputs.is_contiguous(memory_format=torch.channels_last)
    if inputs.device.type != "cpu" or not channels_last or inputs.is_contiguous():
        return backward(grad_out, inputs, weight, *geometry, [True, True, True])
    grad_input = backward(grad_out, inputs, weight, *geometry, [True, False, False])[0]
    _, grad_weight, grad_bias = backward(
        grad_out.contiguous(), inputs.contiguous(), weight.contiguous(), *geometry,
        [False, True, True],
    )  # fmt: skip
    return grad_input, grad_weight.contiguous(memory_format=torch.channels_last), grad_bias


def recomputed_norm_act_conv(norm: nn.GroupNorm, conv: nn.Conv2d, x: Tensor) -> Tensor:
    """conv(SiLU(norm(x))) for a stride-1 "same" conv; recomputes the activation in the backward
    pass when gradients are recorded in fp32 eagerly. Under autocast the plain ops run, and under
    torch.compile too (its partitioner recomputes such element-wise ops by itself)."""
    device = x.device.type
    autocast = torch.amp.is_autocast_available(device) and torch.is_autocast_enabled(device)
    if torch.is_grad_enabled() and not autocast and not torch.compiler.is_compiling():
        return NormActConv.apply(
            x, norm.weight, norm.bias, conv.weight, conv.bias, norm.num_groups, norm.eps
        )
    return conv(F.silu(norm(x)))
