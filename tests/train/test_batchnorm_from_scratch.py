"""A random TimeDistributed backbone learns its BatchNorm statistics; learnt weights keep theirs (zamba)."""

import pytest
import torch

from kifaru.config import TrainConfig, VideoLoaderConfig
from kifaru.models.checkpoint import read_checkpoint
from kifaru.models.time_distributed import TimeDistributedEfficientNet
from kifaru.train.runner import train_model
from kifaru.train.synthetic import write_training_set

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning")

FRAMES = 4


def _running_means(network: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: buffer.clone() for name, buffer in network.state_dict().items() if name.endswith("running_mean")}


@pytest.mark.parametrize("frozen", [True, False])
def test_a_training_forward_updates_batchnorm_statistics_only_when_they_are_not_frozen(frozen):
    torch.manual_seed(0)
    network = TimeDistributedEfficientNet(3, num_frames=FRAMES, backbone_name="test_efficientnet").train()
    network.frozen_batchnorm = frozen
    before = _running_means(network)
    network(torch.randn(2, FRAMES, 3, 32, 32) + 1.0)
    after = _running_means(network)
    changed = [name for name in before if not torch.equal(before[name], after[name])]
    assert (not changed) if frozen else len(changed) == len(before)


def test_new_networks_keep_zambas_frozen_batchnorm_by_default():
    assert TimeDistributedEfficientNet(3, num_frames=FRAMES, backbone_name="test_efficientnet").frozen_batchnorm


def test_training_a_random_backbone_learns_its_batchnorm_statistics(tmp_path):
    folder = tmp_path / "clips"
    labels = write_training_set(folder, clips_per_class=4, n_frames=FRAMES)
    loader = VideoLoaderConfig(fps=4, total_frames=FRAMES, ensure_total_frames=True, model_input_height=48,
                               model_input_width=64, cache_dir=tmp_path / "frames")  # fmt: skip
    config = TrainConfig(
        labels=labels, data_dir=folder, from_scratch=True, backbone="test_efficientnet", backbone_pretrained=False,
        max_epochs=1, batch_size=4, num_workers=0, save_dir=tmp_path / "out", seed=1, early_stopping_config=None,
    )  # fmt: skip
    report = train_model(config, loader)
    trained = read_checkpoint(report.checkpoint).state_dict
    means = {name: value for name, value in trained.items() if name.startswith("base.module.") and name.endswith("running_mean")}
    assert means
    # Initialised at zero; frozen (zamba's rule for learnt weights) they would still be.
    assert all(value.abs().sum() > 0 for value in means.values())
