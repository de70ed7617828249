import math

import pytest
import torch
from torch import nn

from transfusion_ad.core.unet import AttentionBlock, Stage, TransFusionUNet

TINY = {"base_width": 32, "channel_mults": (1, 2), "num_res_blocks": 1, "attention_levels": (0, 1)}


def _inputs(batch: int = 2, size: int = 16, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    image = torch.rand(batch, 3, size, size, generator=g) * 2 - 1
    mask = (torch.rand(batch, 1, size, size, generator=g) > 0.5).float()
    t = torch.randint(1, 20, (batch,), generator=g)
    return torch.cat((image, mask), dim=1), t


def test_paper_configuration_has_54_56_million_parameters():
    model = TransFusionUNet()
    count = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert abs(count - 54.56e6) / 54.56e6 < 0.005, count


def test_paper_configuration_structure():
    model = TransFusionUNet()
    # attention: 2 + 2 encoder blocks at levels 2-3, 1 in the middle, 3 + 3 decoder blocks.
    assert sum(isinstance(m, AttentionBlock) for m in model.modules()) == 11
    decoder_blocks = [m for m in model.up if isinstance(m, Stage)]
    assert len(decoder_blocks) == 12  # one per saved skip
    assert model.stem.in_channels == 5  # image, mask, positional channel
    assert model.time_embedding.linear_1.in_features == 64
    assert model.time_embedding.linear_2.out_features == 256
    upsamplers = [m for m in model.up if isinstance(m, nn.ConvTranspose2d)]
    assert [u.kernel_size for u in upsamplers] == [(4, 4)] * 3


def test_heads_are_as_specified():
    model = TransFusionUNet(**TINY)
    assert isinstance(model.mask_head[0], nn.BatchNorm2d)
    assert model.mask_head[2].out_channels == 1
    assert isinstance(model.anomaly_head[0], nn.GroupNorm)
    assert model.anomaly_head[0].num_groups == 8
    assert isinstance(model.normal_head, nn.Conv2d)  # straight from the decoder features
    assert model.normal_head.out_channels == 3


def test_forward_shapes_and_finite_outputs():
    torch.manual_seed(0)
    model = TransFusionUNet(**TINY)
    x, t = _inputs()
    mask_logits, anomaly, normal = model(x, t)
    assert mask_logits.shape == (2, 1, 16, 16)
    assert anomaly.shape == (2, 3, 16, 16)
    assert normal.shape == (2, 3, 16, 16)
    for out in (mask_logits, anomaly, normal):
        assert torch.isfinite(out).all()


def test_sdpa_and_naive_attention_agree_on_the_same_weights():
    torch.manual_seed(0)
    sdpa = TransFusionUNet(**TINY, attention="sdpa").eval()
    naive = TransFusionUNet(**TINY, attention="naive").eval()
    naive.load_state_dict(sdpa.state_dict())
    x, t = _inputs()
    with torch.no_grad():
        for a, b in zip(sdpa(x, t), naive(x, t), strict=True):
            torch.testing.assert_close(a, b, atol=1e-5, rtol=0)


def test_channels_last_gives_the_same_result():
    torch.manual_seed(0)
    model = TransFusionUNet(**TINY).eval()
    x, t = _inputs()
    with torch.no_grad():
        reference = model(x, t)
        model_cl = model.to(memory_format=torch.channels_last)
        result = model_cl(x.contiguous(memory_format=torch.channels_last), t)
    for a, b in zip(reference, result, strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=0)


def test_step_and_positional_channel_change_the_output():
    torch.manual_seed(0)
    model = TransFusionUNet(**TINY).eval()
    x, _ = _inputs(batch=1)
    with torch.no_grad():
        out_a = model(x, torch.tensor([1]))
        out_b = model(x, torch.tensor([15]))
        assert not torch.allclose(out_a[1], out_b[1])
        # A vertically uniform input still yields row-dependent features via sin(row).
        flat = torch.zeros(1, 4, 16, 16)
        normal = model(flat, torch.tensor([5]))[2]
        assert not torch.allclose(normal[..., 0, :], normal[..., 3, :])


def test_row_encoding_is_sin_of_the_row_index():
    from transfusion_ad.core.unet import _row_encoding

    pe = _row_encoding(torch.zeros(2, 4, 8, 5))
    assert pe.shape == (2, 1, 8, 5)
    for row in range(8):
        torch.testing.assert_close(pe[:, :, row, :], torch.full((2, 1, 5), math.sin(row)))


def test_config_rebuilds_an_identical_model():
    torch.manual_seed(0)
    model = TransFusionUNet(**TINY, attention="naive").eval()
    clone = TransFusionUNet(**model.config).eval()
    clone.load_state_dict(model.state_dict())
    assert clone.config == model.config
    x, t = _inputs()
    with torch.no_grad():
        torch.testing.assert_close(model(x, t)[1], clone(x, t)[1])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"base_width": 48}, "base_width"),
        ({"channel_mults": ()}, "channel_mults"),
        ({"channel_mults": (1, 0)}, "channel_mults"),
        ({"num_res_blocks": 0}, "num_res_blocks"),
        ({"attention_levels": (4,)}, "attention_levels"),
        ({"attention": "flash"}, "attention"),
        ({"in_channels": 0}, "in_channels"),
    ],
)
def test_invalid_configuration_is_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TransFusionUNet(**{**TINY, **kwargs})


def test_invalid_inputs_are_rejected():
    model = TransFusionUNet(**TINY)
    x, t = _inputs()
    with pytest.raises(ValueError, match="concat"):
        model(x[:, :3], t)
    with pytest.raises(ValueError, match="divisible by 2"):
        model(x[..., :15, :15], t)
    with pytest.raises(ValueError, match="steps t"):
        model(x, t[:1])


def test_recompute_is_off_until_enabled_and_switches_every_residual_block():
    model = TransFusionUNet(
        base_width=32, channel_mults=(1, 2), num_res_blocks=1, attention_levels=(1,)
    )
    blocks = [m for m in model.modules() if hasattr(m, "recompute")]
    assert blocks and not any(block.recompute for block in blocks)
    assert model.enable_recompute() is model
    assert all(block.recompute for block in blocks)
    model.enable_recompute(False)
    assert not any(block.recompute for block in blocks)
