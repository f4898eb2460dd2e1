"""Compression of learned stages: gradual magnitude pruning (kept through fine-tuning), weight
fake-quantisation (QAT), int8 inference, and the compressed GNN through a run, a bundle and C++."""
import pytest
import pytorch_lightning as pl
import torch
from click.testing import CliRunner
from torch import nn

from trkx.cli import main
from trkx.aot import package_name
from trkx.compression import (Bfloat16Network, FakeQuantWeight, PruningCallback, PruningConfig,
                              add_weight_fake_quant, int8_layer_names, magnitude_masks, quantize_int8,
                              remove_weight_fake_quant, scheduled_sparsity, sparsity)
from trkx.config import ConfigError, parse_config
from trkx.models import InteractionGNN, InteractionGNNConfig
from trkx.stages.edge_classification.gnn import GNNConfig

from conftest import make_pipeline
from test_reco import CPP_TOOL, _run_cpp, _same_track_files, _test_event_csvs


class _Regression(pl.LightningModule):
    """A small MLP fitted to a fixed random target, recording the sparsity after every step."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Linear(8, 32), nn.SiLU(), nn.Linear(32, 32), nn.SiLU(), nn.Linear(32, 1))
        self.x, self.y = torch.randn(256, 8), torch.randn(256, 1)
        self.seen: list[float] = []

    def training_step(self, batch, idx):
        return ((self.net(self.x) - self.y) ** 2).mean()

    def on_train_batch_end(self, outputs, batch, idx):
        self.seen.append(sparsity(self.net)["sparsity"])

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-2)

    def train_dataloader(self):
        return [0] * 20


def _fit(cfg: PruningConfig, epochs=3) -> _Regression:
    module = _Regression()
    # the pruning callback runs before the module's own hook (Lightning calls callbacks first)
    trainer = pl.Trainer(max_epochs=epochs, callbacks=[PruningCallback(cfg)], logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, accelerator="cpu")
    trainer.fit(module)
    return module


@pytest.mark.parametrize("scope", ["global", "layer"])
def test_gradual_pruning_reaches_the_sparsity_and_keeps_it_while_fine_tuning(scope):
    module = _fit(PruningConfig(amount=0.7, scope=scope, start=0.1, end=0.5, every_n_steps=5))
    seen = module.seen                                   # 60 steps: pruning until step 30
    assert seen[3] == 0.0                                # before ``start``
    assert 0.0 < seen[12] < 0.7                          # on the way
    assert all(s == pytest.approx(0.7, abs=0.002) for s in seen[30:])   # fine-tuning: the mask held
    if scope == "layer":
        for m in module.net:
            if isinstance(m, nn.Linear) and m.weight.numel() >= 100:
                assert float((m.weight == 0).float().mean()) == pytest.approx(0.7, abs=0.01)


def test_structured_pruning_removes_whole_rows():
    module = _fit(PruningConfig(amount=0.5, structured=True, start=0.0, end=0.3, every_n_steps=5), epochs=2)
    hidden = [m for m in module.net if isinstance(m, nn.Linear)][:2]
    rows = torch.cat([(m.weight == 0).all(dim=1) for m in hidden] + [(module.net[4].weight == 0).all(dim=1)])
    assert int(rows.sum()) == round(0.5 * rows.numel())
    for m in hidden:
        zero = m.weight == 0
        assert torch.equal(zero, zero.all(dim=1, keepdim=True).expand_as(zero))   # rows, not single weights


def test_schedule_and_masks():
    cfg = PruningConfig(amount=0.8, start=0.2, end=0.6)
    assert scheduled_sparsity(cfg, 0.1) == 0.0 and scheduled_sparsity(cfg, 0.6) == pytest.approx(0.8)
    assert scheduled_sparsity(cfg, 0.4) == pytest.approx(0.8 * (1 - 0.5 ** 3))
    w = [torch.tensor([[0.1, -3.0], [2.0, 0.2]]), torch.tensor([[-0.05, 1.0, 0.3, -4.0]])]
    keep = magnitude_masks(w, 0.5, structured=False, scope="global")
    assert [k.tolist() for k in keep] == [[[False, True], [True, False]], [[False, True, False, True]]]


def test_fake_quantised_weights_sit_on_the_bit_grid():
    layer = nn.Linear(16, 8)
    add_weight_fake_quant(layer, 4)
    w = layer.weight
    scale = w.abs().amax(dim=1, keepdim=True) / 7
    assert torch.allclose(w / scale, torch.round(w / scale), atol=1e-4)     # 4 bits: integers in [-7, 7]
    w.sum().backward()                                                     # straight-through gradient
    assert torch.equal(layer.parametrizations.weight.original.grad, torch.ones(8, 16))
    remove_weight_fake_quant(layer)
    assert not hasattr(layer, "parametrizations") and torch.allclose(layer.weight, w.detach())
    assert isinstance(FakeQuantWeight(8), nn.Module)


def _small_gnn_inputs(tiny_events):
    """A 3,000-edge graph of a tiny event and an untrained GNN (hidden 32, 4 iterations)."""
    from trkx.event import EDGE_FEATURES, edge_features
    from test_dense import with_graph
    event = with_graph(tiny_events[0], 3000)
    torch.manual_seed(1)
    net = InteractionGNN(event.x.shape[1], len(EDGE_FEATURES), InteractionGNNConfig(hidden=32, n_iterations=4)).eval()
    return net, (event.x, event.edge_index, edge_features(event, event.edge_index), event.region)


def test_int8_gnn_scores_agree_with_fp32(tiny_events):
    net, args = _small_gnn_inputs(tiny_events)
    with torch.no_grad():
        ref, q = torch.sigmoid(net(*args)), torch.sigmoid(quantize_int8(net)(*args))
    # stated tolerance: 0.02 in score on every edge, 0.002 on average
    assert (ref - q).abs().max() < 0.02 and (ref - q).abs().mean() < 0.002
    assert not torch.equal(ref, q)                       # it did run in int8
    # the first layer of each MLP stays fp32; the others are int8
    names = int8_layer_names(net)
    assert names and not any(n.endswith(".0") for n in names)
    assert len(names) == sum(isinstance(m, nn.Linear) for m in net.modules()) // 2   # 2-layer MLPs


def test_bf16_gnn_scores_agree_with_fp32_and_keep_fp32_outside(tiny_events):
    net, args = _small_gnn_inputs(tiny_events)
    narrow = Bfloat16Network(net)
    assert all(p.dtype == torch.bfloat16 for p in narrow.parameters())
    assert all(p.dtype == torch.float32 for p in net.parameters())       # the float network untouched
    with torch.no_grad():
        ref, out = net(*args), narrow(*args)
    assert out.dtype == torch.float32 and out.shape == ref.shape
    ref, q = torch.sigmoid(ref), torch.sigmoid(out)
    # stated tolerance: 0.02 in score on every edge, 0.002 on average (8-bit mantissa)
    assert (ref - q).abs().max() < 0.02 and (ref - q).abs().mean() < 0.002
    assert not torch.equal(ref, q)                       # it did run in bf16


def test_a_bf16_package_is_kept_apart_from_the_fp32_one():
    assert package_name("cpu", "abc") != package_name("cpu", "abc", "bf16")
    assert package_name("cpu", "abc") == package_name("cpu", "abc", "none")


def test_compression_config_errors_name_the_key():
    with pytest.raises(ConfigError, match=r"gnn.yaml: compression.pruning: key 'amount'"):
        parse_config(GNNConfig, {"compression": {"pruning": {"amount": 1.5}}}, "gnn.yaml")
    with pytest.raises(ConfigError, match=r"gnn.yaml: compression: key 'qat_bits'"):
        parse_config(GNNConfig, {"compression": {"qat_bits": 12}}, "gnn.yaml")
    with pytest.raises(ConfigError, match="quantize"):
        parse_config(GNNConfig, {"quantize": "int4"}, "gnn.yaml")


def test_pruned_qat_gnn_runs_and_int8_reuses_its_weights(tmp_path):
    """A pruned, 6-bit QAT GNN in the tiny chain: its saved weights are sparse and on the grid;
    ``quantize: int8`` then reuses them (no retraining) and gives nearly the same edges."""
    from trkx.evaluate import evaluate
    from trkx.runner import run_pipeline
    from trkx.storage import safe_load
    gnn = {"compression": {"pruning": {"amount": 0.5, "end": 0.5, "every_n_steps": 2}, "qat_bits": 6},
           "sampling": {"eta_sectors": 2, "phi_sectors": 2}, "epochs": 3}
    chain = dict(stages=["stages/module_map.yaml", "stages/gnn.yaml", "stages/labeling.yaml"],
                 cachedir=str(tmp_path / "cache"))
    path = make_pipeline(tmp_path, {"gnn": gnn, "labeling": {"method": "junction"}}, **chain)
    run_pipeline(path, progress=False)
    weights = list((tmp_path / "cache" / "gnn").glob("weights-*/model.pt"))
    assert len(weights) == 1
    state = safe_load(weights[0], "weights")["state"]
    mats = [v for k, v in state.items() if k.endswith(".weight") and v.dim() == 2]
    zero = sum(int((m == 0).sum()) for m in mats) / sum(m.numel() for m in mats)
    assert zero == pytest.approx(0.5, abs=0.01)
    for m in mats:
        scale = m.abs().amax(dim=1, keepdim=True).clamp_min(1e-12) / 31
        assert torch.allclose(m / scale, torch.round(m / scale), atol=1e-3)
    a = evaluate(*run_pipeline(path, progress=False)[:2])["edge"]["gnn"]["target"]["efficiency"]
    path = make_pipeline(tmp_path, {"gnn": {**gnn, "quantize": "int8"}, "labeling": {"method": "junction"}}, **chain)
    b = evaluate(*run_pipeline(path, progress=False)[:2])["edge"]["gnn"]["target"]["efficiency"]
    path = make_pipeline(tmp_path, {"gnn": {**gnn, "quantize": "bf16"}, "labeling": {"method": "junction"}}, **chain)
    c = evaluate(*run_pipeline(path, progress=False)[:2])["edge"]["gnn"]["target"]["efficiency"]
    assert len(list((tmp_path / "cache" / "gnn").glob("weights-*/model.pt"))) == 1   # not retrained
    assert a > 0.5 and abs(a - b) < 0.02 and abs(a - c) < 0.01


@pytest.mark.skipif(not CPP_TOOL.exists(), reason="the C++ tool is not built (make cpp)")
@pytest.mark.parametrize("mode", ["int8", "bf16"])
def test_quantized_gnn_round_trips_through_the_bundle_to_the_cpp_tool(tmp_path, mode):
    from trkx.runner import run_pipeline
    gnn = {"quantize": mode, "sampling": {"eta_sectors": 2, "phi_sectors": 2}, "epochs": 3}
    path = make_pipeline(tmp_path, {"gnn": gnn, "labeling": {"method": "junction"}},
                         stages=["stages/module_map.yaml", "stages/gnn.yaml", "stages/labeling.yaml"],
                         cachedir=str(tmp_path / "cache"))
    pipe, outputs, _ = run_pipeline(path, progress=False)
    tracks = "".join((pipe.workdir / "tracks").glob("*.csv").__next__().read_text().splitlines()[1:])
    assert tracks.count(",-1") < tracks.count(",")           # the chain found tracks
    assert CliRunner().invoke(main, ["export", str(path), str(tmp_path / "bundle")]).exit_code == 0
    ids = _test_event_csvs(pipe, outputs, tmp_path / "hits")
    _run_cpp(tmp_path / "bundle", tmp_path / "hits", ids, tmp_path / "cpp")
    assert _same_track_files(tmp_path / "cpp", pipe.workdir / "tracks", ids)


@pytest.fixture
def fast_bf16(monkeypatch):
    """Set whether the machine multiplies bf16 fast (``native_bfloat16``), as a function."""
    import trkx.compression
    import trkx.training

    def set_native(native: bool) -> None:
        for module in (trkx.compression, trkx.training):
            monkeypatch.setattr(module, "native_bfloat16", lambda device: native)
    return set_native


def _gnn_stage(quantize: str):
    from trkx.stages.edge_classification.gnn import GNNStage
    return GNNStage(parse_config(GNNConfig, {"hidden": 8, "quantize": quantize}, "gnn.yaml"))


def test_quantize_auto_is_bf16_only_where_bf16_is_fast(fast_bf16):
    from trkx.compression import resolve_quantize
    cpu = torch.device("cpu")
    fast_bf16(True)
    assert resolve_quantize("auto", cpu) == "bf16" and _gnn_stage("auto").numbers == "bf16"
    fast_bf16(False)
    assert resolve_quantize("auto", cpu) == "none" and _gnn_stage("auto").numbers == "none"
    assert [resolve_quantize(m, cpu) for m in ("none", "int8", "bf16")] == ["none", "int8", "bf16"]


def test_quantize_auto_caches_and_bundles_what_it_resolved_to(fast_bf16):
    """The cache key of ``auto`` is the key of the mode it ran (so an fp32 result is never served
    as a bf16 one), and a bundle's copy of the YAML names that mode."""
    from trkx.bundle import _stage_yaml
    from trkx.runner import entry_fingerprint
    keys = {}
    for native, explicit in ((True, "bf16"), (False, "none")):
        fast_bf16(native)
        auto = _gnn_stage("auto")
        keys[native] = entry_fingerprint(auto, "upstream", None)
        assert keys[native] == entry_fingerprint(_gnn_stage(explicit), "upstream", None)
        assert _stage_yaml(auto).get("quantize", "none") == explicit
    assert keys[True] != keys[False]


def test_bf16_without_fast_bf16_warns_once(fast_bf16, capsys):
    fast_bf16(False)
    for _ in range(2):
        stage = _gnn_stage("bf16")
        stage._ensure_model(3)
        stage._prepare_inference()
        assert isinstance(stage.model.net, Bfloat16Network)      # it runs what was asked
    assert capsys.readouterr().err.count("without fast bfloat16 products") == 1
    fast_bf16(True)
    stage = _gnn_stage("auto")
    stage._ensure_model(3)
    stage._prepare_inference()
    assert isinstance(stage.model.net, Bfloat16Network) and capsys.readouterr().err == ""
