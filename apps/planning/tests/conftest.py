import os

import pytest
import torch

from dforce_plan.model import ModelSpec

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("PYGLET_HEADLESS", "1")
os.environ["WANDB_MODE"] = "disabled"


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)
    yield


@pytest.fixture(scope="session")
def small_data():
    """A 6000-step noisy umaze walk in D4RL's schema."""
    from dforce_datasets.maze2d import GenerateConfig, generate, to_d4rl

    return to_d4rl(generate(GenerateConfig("umaze", steps=6000, seed=0, noisy=True)))


def random_model(kind="df", n_tokens=4, seed=0, backbone="transformer", channels="full"):
    """A tiny planning model with random (not adaLN-zero) weights, so its output depends on its input."""
    rnn = dict(z_dim=16, network_size=2, num_mlp_layers=2) if backbone == "rnn" else {}
    spec = ModelSpec(kind=kind, n_tokens=n_tokens, d_model=16, n_layers=2, n_heads=2, backbone=backbone,
                     channels=channels, **rnn)
    model = spec.build()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.2)
    model.eval()
    return model, spec


@pytest.fixture
def make_model():
    """random_model as a fixture."""
    return random_model
