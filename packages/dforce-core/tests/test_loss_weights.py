import pytest
import torch

from dforce_core import apply_padding, fused_snr_weights, min_snr_weights, snr_to_weights


def test_min_snr_by_hand():
    snr = torch.tensor([[0.5, 5.0, 20.0]])
    assert min_snr_weights(snr, "pred_noise", 5.0).tolist()[0] == pytest.approx([1.0, 1.0, 0.25])
    assert min_snr_weights(snr, "pred_x0", 5.0).tolist()[0] == pytest.approx([0.5, 5.0, 5.0])
    assert min_snr_weights(snr, "pred_v", 5.0).tolist()[0] == pytest.approx([0.5 / 1.5, 5 / 6, 5 / 21])


SNR = torch.tensor([[10.0, 1.0, 2.5]])  # ncs = [1, .2, .5]; running mean with gamma .5 = [1, .6, .55]


def test_fused_snr_paper_by_hand():
    # Sbar_{t-1} = [0, 1, .6]; clipped fused = [1, 1, .8]; unclipped fused = [2, 1, .8]
    w = lambda obj: fused_snr_weights(SNR, obj, 5.0, 0.5, "paper").tolist()[0]  # noqa: E731
    assert w("pred_x0") == pytest.approx([5.0, 5.0, 4.0])
    assert w("pred_noise") == pytest.approx([0.5, 1.0, 1.0])
    assert w("pred_v") == pytest.approx([5 / 11, 5 / 6, 4 / 5])


def test_fused_snr_official_has_extra_gamma():
    # gamma * Sbar_{t-1} = [0, .5, .3]; clipped fused = [1, .6, .65]
    w = fused_snr_weights(SNR, "pred_x0", 5.0, 0.5, "official").tolist()[0]
    assert w == pytest.approx([5.0, 3.0, 3.25])


def test_fused_reduces_to_min_snr_for_first_token_and_zero_memory():
    snr = torch.tensor([[0.3, 7.0, 2.0]])
    for obj in ("pred_noise", "pred_x0", "pred_v"):
        fused = fused_snr_weights(snr, obj, 5.0, 0.9)
        assert fused[0, 0].item() == pytest.approx(min_snr_weights(snr, obj, 5.0)[0, 0].item())
    # decay 1 keeps Sbar at the first token's value; with a first token at zero SNR memory is empty
    snr0 = torch.tensor([[0.0, 7.0, 2.0]])
    assert torch.allclose(fused_snr_weights(snr0, "pred_x0", 5.0, 1.0), min_snr_weights(snr0, "pred_x0", 5.0))


def test_weight_dispatch_and_errors():
    snr = torch.tensor([[1.0, 2.0]])
    assert snr_to_weights(snr, "constant", "pred_x0", constant=2.5).tolist()[0] == [2.5, 2.5]
    with pytest.raises(ValueError, match="unknown loss weighting"):
        snr_to_weights(snr, "p2", "pred_x0")
    with pytest.raises(ValueError, match="variant"):
        fused_snr_weights(snr, "pred_x0", variant="mine")  # type: ignore[arg-type]


def test_apply_padding():
    lv = torch.tensor([[3, 4, 5]])
    w = torch.tensor([[1.0, 2.0, 4.0]])
    valid = torch.tensor([[True, True, False]])
    lv2, w2 = apply_padding(lv, w, valid, num_steps=10)
    assert lv2.tolist() == [[3, 4, 9]] and w2.tolist()[0] == pytest.approx([1.0, 2.0, 0.2])
    with pytest.raises(ValueError, match="shape"):
        apply_padding(lv, w, valid[:, :2], 10)
