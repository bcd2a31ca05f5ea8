import pytest
import torch
import torch.nn.functional as F

from nbcode.cost import (
    cost_ratio,
    count_parameters,
    counted_macs,
    separable_conv,
    separable_conv_macs,
    separable_conv_params,
    standard_conv,
    standard_conv_macs,
    standard_conv_params,
)
from nbcode.resnet import DepthwiseSeparableConv, DSResNet


def test_paper_parameter_counts_are_exact():
    assert count_parameters(DSResNet()) == 94_372
    assert count_parameters(DSResNet(width_factor=2)) == 334_052


def test_forward_shapes():
    model = DSResNet(num_classes=10)
    assert model(torch.randn(3, 3, 32, 32)).shape == (3, 10)


def batch_norm_eval(x: torch.Tensor, bn: torch.nn.BatchNorm2d) -> torch.Tensor:
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    return (x - bn.running_mean.view(1, -1, 1, 1)) * scale.view(1, -1, 1, 1) + bn.bias.view(1, -1, 1, 1)


@pytest.mark.parametrize("stride", [1, 2])
def test_depthwise_separable_conv_against_a_reference_computation(stride):
    torch.manual_seed(0)
    unit = DepthwiseSeparableConv(4, 6, stride=stride)
    for bn in (unit.bn1, unit.bn2):  # non-trivial BN statistics and affine parameters
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.5, 2)
        bn.weight.data.uniform_(0.5, 1.5)
        bn.bias.data.uniform_(-0.5, 0.5)
    unit.eval()
    x = torch.randn(2, 4, 9, 9)
    # eq. (1): each channel m convolved with its own 3x3 filter K_m, one channel at a time
    depthwise = torch.cat([F.conv2d(x[:, m:m + 1], unit.depthwise.weight[m:m + 1], stride=stride, padding=1)
                           for m in range(4)], dim=1)
    hidden = torch.relu(batch_norm_eval(depthwise, unit.bn1))
    pointwise = torch.einsum("nm,bmhw->bnhw", unit.pointwise.weight[:, :, 0, 0], hidden)
    expected = torch.relu(batch_norm_eval(pointwise, unit.bn2))
    torch.testing.assert_close(unit(x), expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("stride", [1, 2])
def test_only_the_strided_depthwise_conv_leaves_bf16_autocast(stride):
    unit = DepthwiseSeparableConv(4, 6, stride=stride)
    seen = {}
    for name in ("depthwise", "pointwise"):
        getattr(unit, name).register_forward_hook(lambda module, inputs, out, name=name: seen.update({name: out}))
    x = torch.randn(2, 4, 8, 8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        unit(x.to(torch.bfloat16))
    assert seen["pointwise"].dtype == torch.bfloat16
    if stride == 2:  # computed from the fp32 input, exactly as without autocast
        assert seen["depthwise"].dtype == torch.float32
        assert torch.equal(seen["depthwise"], unit.depthwise(x.to(torch.bfloat16).float()))
    else:
        assert seen["depthwise"].dtype == torch.bfloat16


@pytest.mark.parametrize("d_k, m, n, d_f", [(3, 32, 64, 32), (3, 128, 256, 8), (5, 16, 16, 16), (3, 3, 7, 5)])
def test_analytic_costs_match_pytorch_flop_counter_and_parameter_counts(d_k, m, n, d_f):
    assert counted_macs(standard_conv(d_k, m, n), (1, m, d_f, d_f)) == standard_conv_macs(d_k, m, n, d_f)
    assert counted_macs(separable_conv(d_k, m, n), (1, m, d_f, d_f)) == separable_conv_macs(d_k, m, n, d_f)
    assert count_parameters(standard_conv(d_k, m, n)) == standard_conv_params(d_k, m, n)
    assert count_parameters(separable_conv(d_k, m, n)) == separable_conv_params(d_k, m, n)
    ratio = separable_conv_macs(d_k, m, n, d_f) / standard_conv_macs(d_k, m, n, d_f)
    assert ratio == pytest.approx(cost_ratio(d_k, n))
