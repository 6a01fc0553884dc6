import pytest
import torch

from captcha.models import OneGo, Sequential, build_model, form_name, strip_prior
from captcha.spec import CaptchaSpec

SPEC = CaptchaSpec(alphabet="0123456789abcdef", length=4, height=32, width=64)


@pytest.mark.parametrize("form", ["one_go", "sequential"])
def test_forward_shapes(form):
    model = build_model(form, SPEC, arch="resnet18").eval()
    with torch.no_grad():
        logits = model(torch.randn(3, 3, 32, 64))
    assert tuple(logits.shape) == (3, 4, 16)


def test_sequential_maps_are_per_position_distributions():
    model = Sequential(SPEC, arch="resnet18").eval()
    with torch.no_grad():
        logits, maps = model.forward_with_maps(torch.randn(2, 3, 32, 64))
    assert maps.shape[:2] == (2, 4) and maps.shape[2] * 16 == 32 and maps.shape[3] * 16 == 64  # stride 16
    assert torch.allclose(maps.sum((2, 3)), torch.ones(2, 4), atol=1e-5)
    assert len(model.classifiers) == 4  # one classifier per position, one trunk


def test_strip_prior_puts_position_k_in_strip_k():
    prior = strip_prior(5, 2, 15)
    assert [int(prior[k, 1].argmax()) for k in range(5)] == [1, 4, 7, 10, 13]


def test_one_go_has_one_head_over_the_spatial_map():
    model = OneGo(SPEC, arch="resnet18")
    assert model.head[-1].out_features == 4 * 16


def test_form_names():
    assert form_name("one-go") == form_name("one_go") == "one_go"
    with pytest.raises(ValueError):
        form_name("both")


def test_joint_shares_one_trunk_and_splits_into_ordinary_forms():
    model = build_model("joint", SPEC, arch="resnet18").eval()
    assert model.one_go.trunk is model.sequential.trunk
    trunk_params = sum(p.numel() for p in model.trunk.parameters())
    heads = sum(p.numel() for p in model.parameters()) - trunk_params
    assert heads < trunk_params  # counted once: parameters() de-duplicates the shared trunk
    x = torch.randn(2, 3, 32, 64)
    with torch.no_grad():
        both = model(x)
        assert tuple(both.shape) == (2, 8, 16)
        assert torch.allclose(both[:, :4], model.one_go(x), atol=1e-5)
        assert torch.allclose(both[:, 4:], model.sequential(x), atol=1e-5)
    # each part rebuilds from its own config, as a weights file would
    again = build_model("one_go", SPEC, arch="resnet18", **model.one_go.config)
    again.load_state_dict(model.one_go.state_dict())


@pytest.mark.parametrize("form", ["one_go", "sequential"])
def test_weights_carry_over_to_another_input_size(form):
    """A model trained at one input size starts another (train.py --init): the spatial head
    weights are resampled, so a map that is the same everywhere gives the same logits."""
    small = build_model(form, SPEC, arch="resnet18").eval()
    big_spec = CaptchaSpec(SPEC.alphabet, SPEC.length, height=64, width=128)
    big = build_model(form, big_spec, arch="resnet18", **small.config).eval()
    with torch.no_grad():  # something other than the initial prior, so that copying is visible
        for p in small.parameters():
            p.add_(torch.randn_like(p) * 0.01)
    assert big.grid == (2 * small.grid[0], 2 * small.grid[1])
    big.load_resized(small.state_dict(), grid=small.grid)
    assert big.state_dict()["trunk.conv1.weight"].equal(small.state_dict()["trunk.conv1.weight"])
    vector = torch.randn(1, 512, 1, 1)
    read = (lambda m, f: m.read(f)) if form == "one_go" else (lambda m, f: m.read_with_maps(f)[0])
    with torch.no_grad():
        before = read(small, vector.expand(1, 512, *small.grid))
        after = read(big, vector.expand(1, 512, *big.grid))
    assert after.shape == before.shape
    assert torch.allclose(after, before, rtol=1e-3, atol=1e-3), (after - before).abs().max()
    # the same grid is a plain copy: identical outputs on any input
    same = build_model(form, SPEC, arch="resnet18", **small.config).eval()
    same.load_resized(small.state_dict(), grid=small.grid)
    x = torch.randn(2, 3, 32, 64)
    with torch.no_grad():
        assert torch.equal(same(x), small(x))
