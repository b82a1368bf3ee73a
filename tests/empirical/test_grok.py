"""The main job end to end on a few hundred steps of the real MNIST files (skipped without them)."""
import json

import pytest

import ncgrok
from ncgrok.empirical.data import resolve_data_dir
from ncgrok.empirical.grok import GROK_SNAPSHOTS, GROK_WEIGHT_DECAYS, grok_config


def test_grok_setting_is_the_papers_protocol_reduced():
    config = grok_config()
    assert config.train_size == 1000 and config.depth == 4 and config.optimizer == "adamw"
    assert config.lrs == (1e-3,) and config.batch_size == 100 and config.loss_reduction == "sum"
    assert config.init_scale is None  # the architecture default, 8 for the MLP
    assert config.weight_decays == GROK_WEIGHT_DECAYS and config.snapshot_steps == GROK_SNAPSHOTS
    assert grok_config(steps=1000).snapshot_steps == ()  # snapshots beyond the horizon are dropped


@pytest.mark.realdata
def test_grok_runs_end_to_end_on_real_mnist(tmp_path, capsys):
    data_dir = resolve_data_dir()
    if not (data_dir / "mnist").is_dir():
        pytest.skip("real MNIST files not present; run `ncgrok data fetch mnist` to enable this test")
    out = tmp_path / "grok"
    status = ncgrok.main(["grok", "--out", str(out), "--steps", "150", "--json", "--device", "cpu"])
    assert status == 0
    payload = json.loads(capsys.readouterr().out)
    assert len(payload["runs"]) == len(GROK_WEIGHT_DECAYS) * 2
    # 150 steps is before the fit (near step 6000): every run is reported, none silently dropped
    assert {run["status"] for run in payload["runs"]} == {"never_fit"}
    assert any(path.endswith("fig3_dynamics.png") for path in payload["figures"])
    # running again reuses the finished sweep instead of failing on the existing directory
    assert ncgrok.main(["grok", "--out", str(out), "--steps", "150", "--json", "--device", "cpu"]) == 0
