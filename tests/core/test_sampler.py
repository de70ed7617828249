import pytest
import torch
from support import SMALL_RECIPE
from torch import Tensor, nn

from transfusion_ad.core.recipes import model_from_recipe
from transfusion_ad.core.sampler import reverse_process, visited_steps
from transfusion_ad.core.schedule import TransparencySchedule


class OracleModel(nn.Module):
    """Knows the truth: returns ε̂ = β_t·M⊙A, n̂ = x0 and logits that binarise to M, and records
    the masks it is fed so the test can check the feedback loop."""

    def __init__(self, schedule, x0: Tensor, mask: Tensor, appearance: Tensor) -> None:
        super().__init__()
        self.schedule, self.x0, self.mask, self.appearance = schedule, x0, mask, appearance
        self.fed_masks: list[Tensor] = []
        self.steps: list[int] = []

    def forward(self, x: Tensor, t: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        self.fed_masks.append(x[:, 3:].clone())
        self.steps.append(int(t[0]))
        logits = 60.0 * (2 * self.mask - 1)
        return logits, self.schedule.beta(t) * self.mask * self.appearance, self.x0


def _scene(batch: int = 2, size: int = 16, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x0 = torch.rand(batch, 3, size, size, generator=g) * 2 - 1
    appearance = torch.rand(batch, 3, size, size, generator=g) * 2 - 1
    mask = torch.zeros(batch, 1, size, size)
    mask[:, :, 3:9, 5:14] = 1
    return x0, mask, appearance


@pytest.mark.parametrize("num_steps", [5, 20])
def test_oracle_leaves_exactly_the_predicted_residual(num_steps):
    schedule = TransparencySchedule(num_steps)
    x0, mask, appearance = _scene()
    opaque = x0 + mask * (appearance - x0)
    oracle = OracleModel(schedule, x0, mask, appearance)
    out = reverse_process(oracle, schedule, opaque)

    expected = x0 + (1 / (num_steps - 1)) * mask * (appearance - x0)
    torch.testing.assert_close(out.reconstruction, expected, atol=1e-5, rtol=0)
    inside = mask.bool()
    torch.testing.assert_close(
        out.mask[inside], torch.full_like(out.mask[inside], (num_steps - 2) / (num_steps - 1))
    )
    assert out.mask[~inside].abs().max() < 1e-6
    assert out.steps is None
    assert oracle.steps == list(range(num_steps - 2, 0, -1))
    assert not oracle.fed_masks[0].any()  # starts from an empty mask
    for fed in oracle.fed_masks[1:]:  # then the binarised prediction
        assert torch.equal(fed, mask)


def test_steps_divisor_averages_over_the_steps_taken():
    schedule = TransparencySchedule(20)
    x0, mask, appearance = _scene()
    oracle = OracleModel(schedule, x0, mask, appearance)
    out = reverse_process(oracle, schedule, x0 + mask * (appearance - x0), mask_divisor="steps")
    torch.testing.assert_close(out.mask, mask)


def test_bad_arguments_are_rejected():
    x0, mask, appearance = _scene()
    schedule = TransparencySchedule(20)
    oracle = OracleModel(schedule, x0, mask, appearance)
    with pytest.raises(ValueError, match="mask_divisor"):
        reverse_process(oracle, schedule, x0, mask_divisor="mean")
    with pytest.raises(ValueError, match="num_steps >= 3"):
        reverse_process(oracle, TransparencySchedule(2), x0)
    with pytest.raises(ValueError, match="B, C, H, W"):
        reverse_process(oracle, schedule, x0[0])


@pytest.fixture(scope="module")
def small_model():
    torch.manual_seed(0)
    model = model_from_recipe(SMALL_RECIPE)
    # Non-trivial BatchNorm statistics so eval mode differs from batch statistics.
    bn = model.mask_head[0]
    bn.running_mean.uniform_(-0.5, 0.5)
    bn.running_var.uniform_(0.5, 2.0)
    return model


def test_batch_of_four_equals_four_single_images(small_model, one_thread):
    schedule = TransparencySchedule(7)  # five steps keep the test fast; T does not matter here
    images = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(7)) * 2 - 1
    batched = reverse_process(small_model, schedule, images)
    assert not torch.allclose(batched.reconstruction, images)  # the model did edit something
    for i in range(4):
        single = reverse_process(small_model, schedule, images[i : i + 1])
        torch.testing.assert_close(single.mask, batched.mask[i : i + 1], atol=1e-5, rtol=0)
        torch.testing.assert_close(
            single.reconstruction, batched.reconstruction[i : i + 1], atol=1e-5, rtol=0
        )


@pytest.mark.parametrize("training", [True, False])
def test_sampling_uses_eval_mode_and_restores_the_previous_mode(small_model, training, one_thread):
    small_model.train(training)
    small_model.mask_head[1].train(not training)  # a mixed state must come back as it was
    before = [m.training for m in small_model.modules()]
    bn = small_model.mask_head[0]
    running_mean = bn.running_mean.clone()
    images = torch.rand(2, 3, 32, 32) * 2 - 1
    reverse_process(small_model, TransparencySchedule(5), images)
    assert [m.training for m in small_model.modules()] == before
    assert torch.equal(bn.running_mean, running_mean)


def test_recorded_steps_replay_the_trajectory(small_model, one_thread):
    schedule = TransparencySchedule(6)
    images = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(3)) * 2 - 1
    out = reverse_process(small_model, schedule, images, return_steps=True)
    assert [r.t for r in out.steps] == [4, 3, 2, 1]
    assert torch.equal(out.steps[0].x_t, images)
    for record in out.steps:
        assert record.x_t.device.type == "cpu"
        assert record.mask.shape == (2, 1, 32, 32)
        assert record.anomaly.shape == record.normal.shape == (2, 3, 32, 32)
    following = [r.x_t for r in out.steps[1:]] + [out.reconstruction]
    for record, nxt in zip(out.steps, following, strict=True):
        t = torch.full((2,), record.t)
        replay = schedule.step(
            record.x_t, t, (record.mask > 0.5).float(), record.anomaly, record.normal
        )
        torch.testing.assert_close(replay, nxt)
    total = sum(r.mask for r in out.steps)
    torch.testing.assert_close(out.mask, total / 5)


def test_visited_steps_are_evenly_spaced_and_keep_both_ends():
    assert visited_steps(20) == visited_steps(20, 18) == list(range(18, 0, -1))
    for calls in (12, 9, 6, 4, 3, 2):
        steps = visited_steps(20, calls)
        assert len(steps) == calls and steps[0] == 18 and steps[-1] == 1
        assert all(a > b for a, b in zip(steps, steps[1:], strict=False))
    assert visited_steps(20, 6) == [18, 15, 11, 8, 4, 1]
    for bad in (1, 19, 0, True, 2.5):
        with pytest.raises(ValueError, match="inference.num_steps must be null or an integer"):
            visited_steps(20, bad)


@pytest.mark.parametrize("calls", [18, 9, 4, 2])
def test_a_strided_process_with_the_summed_delta_beta_peels_the_same_anomaly(calls):
    # The oracle's ε̂ = β_t·M⊙A: each jump removes Δβ·M⊙(A − x0), the jumps sum to β_{T−2},
    # so any stride ends where the full process ends, and the span-weighted mask keeps its scale.
    schedule = TransparencySchedule(20)
    x0, mask, appearance = _scene()
    opaque = x0 + mask * (appearance - x0)
    full = reverse_process(OracleModel(schedule, x0, mask, appearance), schedule, opaque)
    oracle = OracleModel(schedule, x0, mask, appearance)
    strided = reverse_process(oracle, schedule, opaque, num_steps=calls)
    assert oracle.steps == visited_steps(20, calls)
    torch.testing.assert_close(strided.reconstruction, full.reconstruction, atol=1e-5, rtol=0)
    torch.testing.assert_close(strided.mask, full.mask, atol=1e-6, rtol=0)


def test_the_default_is_bit_identical_to_every_step(small_model, one_thread):
    images = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0)) * 2 - 1
    schedule = TransparencySchedule(20)
    default = reverse_process(small_model, schedule, images)
    explicit = reverse_process(small_model, schedule, images, num_steps=18)
    assert torch.equal(default.mask, explicit.mask)
    assert torch.equal(default.reconstruction, explicit.reconstruction)


class RowOracle(OracleModel):
    """The oracle for any subset of its images: a row is recognised by its corner pixel, which
    lies outside every mask, so the reverse process never changes it."""

    def forward(self, x: Tensor, t: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        self.fed_masks.append(x[:, 3:].clone())
        self.steps.append(int(t[0]))
        rows = [
            int((self.x0[:, :, 0, 0] == corner).all(dim=1).nonzero()) for corner in x[:, :3, 0, 0]
        ]
        mask, appearance = self.mask[rows], self.appearance[rows]
        return 60.0 * (2 * mask - 1), self.schedule.beta(t) * mask * appearance, self.x0[rows]


def test_early_exit_finishes_each_image_on_its_own():
    schedule = TransparencySchedule(20)
    x0, mask, appearance = _scene(batch=2)
    mask[1] = 0  # the second image has nothing to peel: its mask is stable from the first call
    opaque = x0 + mask * (appearance - x0)
    full = reverse_process(RowOracle(schedule, x0, mask, appearance), schedule, opaque)
    oracle = RowOracle(schedule, x0, mask, appearance)
    early = reverse_process(oracle, schedule, opaque, early_exit=1)
    # Call 1 (t = 18): both images; the empty one is done. Call 2 (t = 17): the other one alone,
    # whose mask has not changed since call 1, so it jumps to t = 0.
    assert oracle.steps == [18, 17]
    assert [len(fed) for fed in oracle.fed_masks] == [2, 1]
    torch.testing.assert_close(early.reconstruction, full.reconstruction, atol=1e-5, rtol=0)
    torch.testing.assert_close(early.mask, full.mask, atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match="turn early_exit off"):
        reverse_process(oracle, schedule, opaque, early_exit=1, return_steps=True)
