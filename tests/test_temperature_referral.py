"""Temperature scaling and referral rules: fitting, storing, reading back, applying (transforms, inferer, handlers)."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
import torch
from ignite.metrics import Accuracy
from monai.data import DataLoader, Dataset
from monai.engines import SupervisedEvaluator
from monai.transforms import Activationsd

from monai_imbalance.errors import UnknownChoiceError, UserError
from monai_imbalance.handlers import PredictionCSVWriter, ReferralSelector, UncertaintyReportHandler
from monai_imbalance.inferers import MCDropoutInferer
from monai_imbalance.metrics import (
    calibration_report,
    expected_calibration_error,
    max_probability_uncertainty,
    negative_log_likelihood,
    predictive_entropy,
    referral_threshold,
    selective_report,
)
from monai_imbalance.transforms import (
    TemperatureScaled,
    fit_temperature,
    read_referral_rule,
    read_temperature,
    refer,
    temperature_scale,
)


def _logits(seed: int = 0, n: int = 300, num_classes: int = 4, scale: float = 3.0):
    g = torch.Generator().manual_seed(seed)
    z = scale * torch.randn(n, num_classes, generator=g, dtype=torch.float64)
    labels = torch.multinomial(torch.softmax(z / 2.0, dim=1), 1, generator=g)[:, 0]  # over-confident by 2
    return z, labels


def _np_nll(z: np.ndarray, y: np.ndarray, t: float) -> float:
    a = z / t
    a = a - a.max(axis=1, keepdims=True)
    return float(-(a[np.arange(len(y)), y] - np.log(np.exp(a).sum(axis=1))).mean())


# ---------------------------------------------------------------------------- temperature


def test_fit_temperature_finds_the_nll_minimum():
    z, labels = _logits()
    t = fit_temperature(z, labels)
    grid = np.exp(np.linspace(math.log(0.5), math.log(8), 4001))
    nll = np.array([_np_nll(z.numpy(), labels.numpy(), g) for g in grid])
    assert t == pytest.approx(grid[nll.argmin()], rel=2e-3)
    assert _np_nll(z.numpy(), labels.numpy(), t) <= nll.min() + 1e-9
    # the softmax output gives the same temperature (softmax is shift invariant); deterministic
    probs = torch.softmax(z, dim=1)
    assert fit_temperature(probs, labels, probabilities=True) == pytest.approx(t, rel=1e-5)
    assert fit_temperature(z, labels) == t


def test_fit_temperature_recovers_the_temperature_of_the_labels():
    z, labels = _logits(seed=1, n=20000)
    assert fit_temperature(z, labels) == pytest.approx(2.0, rel=0.05)


def test_fit_temperature_bad_input_and_bound_warning():
    z, labels = _logits(n=20)
    with pytest.raises(ValueError, match="shape"):
        fit_temperature(z[:, :1], labels)
    with pytest.raises(ValueError, match="samples"):
        fit_temperature(z, labels[:5])
    with pytest.raises(ValueError, match="class indices"):
        fit_temperature(z, labels + 4)
    with pytest.raises(UserError, match="temperature"):
        fit_temperature(z, labels, bounds=(0.0, 1.0))
    perfect = torch.tensor([[5.0, -5.0], [-5.0, 5.0]])
    with pytest.warns(UserWarning, match="bound"):
        assert fit_temperature(perfect, torch.tensor([0, 1])) == pytest.approx(0.01, rel=1e-4)


def test_temperature_scale_equals_scaled_logits():
    z, _ = _logits(n=50)
    probs = torch.softmax(z, dim=1)
    torch.testing.assert_close(temperature_scale(probs, 1.7), torch.softmax(z / 1.7, dim=1))
    torch.testing.assert_close(temperature_scale(temperature_scale(probs, 1.7), 1 / 1.7), probs)
    assert temperature_scale(probs, 1.0) is probs
    # channel-first images: dim 1
    image = torch.softmax(torch.randn(2, 3, 4, 4), dim=1)
    torch.testing.assert_close(temperature_scale(image, 0.5), torch.softmax(image.log() / 0.5, dim=1))


def test_temperature_scaled_transform_and_reading_back(tmp_path):
    z = torch.randn(2, 3)
    out = TemperatureScaled(keys="pred", temperature=2.0)({"pred": z, "label": 1})
    torch.testing.assert_close(out["pred"], z / 2.0)
    assert out["label"] == 1
    assert TemperatureScaled(keys="pred")({"pred": z})["pred"] is z
    with pytest.raises(UserError, match="positive"):
        TemperatureScaled(keys="pred", temperature=0.0)
    path = tmp_path / "metrics.json"
    assert read_temperature(path) == 1.0  # no file: trained without --calibrate temperature
    path.write_text(json.dumps({"validation": {}}))
    assert read_temperature(path) == 1.0
    path.write_text(json.dumps({"temperature": {"temperature": 1.5, "ece_before": 0.1}}))
    assert read_temperature(path) == 1.5
    path.write_text(json.dumps({"temperature": 0.7}))
    assert read_temperature(path) == 0.7
    path.write_text(json.dumps({"temperature": {"temperature": -1}}))
    with pytest.raises(UserError, match="'temperature' of"):
        read_temperature(path)


def test_mc_dropout_applies_the_temperature_to_every_pass():
    net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Dropout(0.5), torch.nn.Linear(8, 3))
    x = torch.randn(5, 4, generator=torch.Generator().manual_seed(0))
    raw = MCDropoutInferer(num_samples=4, activation=None, seed=3, keep_samples=True, reuse_prefix=False)
    scaled = MCDropoutInferer(num_samples=4, seed=3, keep_samples=True, reuse_prefix=False, temperature=2.5)
    passes = raw.predict(x, net)["samples"]
    out = scaled.predict(x, net)
    torch.testing.assert_close(out["samples"], torch.softmax(passes / 2.5, dim=2))
    torch.testing.assert_close(out["mean"], torch.softmax(passes / 2.5, dim=2).mean(dim=0))
    with pytest.raises(UserError, match="temperature"):
        MCDropoutInferer(temperature=float("nan"))


# ---------------------------------------------------------------------------- referral rule


def test_referral_selector_fits_the_rate_exactly_on_validation():
    z, labels = _logits(seed=2, n=200)
    probs = torch.softmax(z, dim=1).float()
    for rate in (0.1, 0.2, 0.35):
        rule = ReferralSelector("unused.json", referral_rate=rate).choose(probs, labels)["referral_rule"]
        u = max_probability_uncertainty(probs)[:, 0]
        assert int(refer(u, rule).sum()) == round(rate * 200)  # no ties: exactly the target
        assert rule["referred_fraction"] == pytest.approx(rate)
        assert rule["threshold"] == referral_threshold(u, rate=rate)
        assert rule["mc_dropout"] is False and rule["temperature"] == 1.0


def test_referral_selector_target_accuracy_and_temperature():
    z, labels = _logits(seed=3, n=300)
    probs = torch.softmax(z, dim=1).float()
    selector = ReferralSelector("unused.json", calibrate="temperature", target_accuracy=0.8, uncertainty="entropy")
    entries = selector.choose(probs, labels)
    t = entries["temperature"]["temperature"]
    assert t == pytest.approx(fit_temperature(probs, labels, probabilities=True))
    assert entries["temperature"]["nll_after"] <= entries["temperature"]["nll_before"]
    scaled = temperature_scale(probs, t)
    assert entries["temperature"]["ece_after"] == pytest.approx(expected_calibration_error(scaled, labels))
    rule = entries["referral_rule"]
    assert rule["score"] == "entropy" and rule["temperature"] == t
    u = predictive_entropy(scaled)[:, 0]  # the score as inference computes it (float32)
    kept = ~refer(u, rule)
    assert (scaled.argmax(dim=1)[kept] == labels[kept]).double().mean() >= 0.8
    assert rule["retained_accuracy"] >= 0.8
    assert negative_log_likelihood(scaled, labels) == pytest.approx(entries["temperature"]["nll_after"])


def test_referral_selector_refuses_contradictions():
    with pytest.raises(UserError, match="deterministic validation pass"):
        ReferralSelector("m.json", referral_rate=0.2, uncertainty="mutual_information")
    with pytest.raises(UserError, match="not both"):
        ReferralSelector("m.json", referral_rate=0.2, target_accuracy=0.9)
    with pytest.raises(UserError, match="threshold_method f1"):
        ReferralSelector("m.json", calibrate="temperature", threshold_method="f1")
    with pytest.raises(UnknownChoiceError):
        ReferralSelector("m.json", calibrate="platt")
    with pytest.raises(UserError, match=r"\[0, 1\)"):
        ReferralSelector("m.json", referral_rate=1.0)
    assert not ReferralSelector("m.json", referral_rate="none").active


class Network(torch.nn.Module):
    """logits = a linear map of the image plus dropout (for MC dropout)."""

    def __init__(self, num_classes: int):
        super().__init__()
        self.linear = torch.nn.Linear(num_classes, num_classes)
        with torch.no_grad():
            self.linear.weight.copy_(torch.eye(num_classes))
            self.linear.bias.zero_()
        self.dropout = torch.nn.Dropout(0.2)

    def forward(self, x):
        return self.dropout(self.linear(x))


def make_evaluator(logits, labels, handlers, inferer=None, temperature=1.0):
    data = [{"image": x.float(), "label": int(y)} for x, y in zip(logits, labels, strict=True)]
    loader = DataLoader(Dataset(data), batch_size=16, shuffle=False)

    def stacked(out):
        return torch.stack([d["pred"] for d in out]), torch.as_tensor([d["label"] for d in out])

    post = [TemperatureScaled(keys="pred", temperature=temperature), Activationsd(keys="pred", softmax=True)]
    kwargs = {"inferer": inferer} if inferer is not None else {}
    return SupervisedEvaluator(
        device=torch.device("cpu"),
        val_data_loader=loader,
        network=Network(logits.shape[1]).eval(),
        postprocessing=(lambda d: d) if inferer is not None else __import__("monai").transforms.Compose(post),
        key_val_metric={"accuracy": Accuracy(output_transform=stacked)},
        val_handlers=handlers,
        **kwargs,
    )


def test_referral_selector_writes_beside_the_decision_rule(tmp_path):
    z, labels = _logits(seed=4, n=64)
    path = tmp_path / "metrics.json"
    path.write_text(json.dumps({"decision_threshold": {"method": "f1", "threshold": 0.4}}))
    selector = ReferralSelector(path, calibrate="temperature", referral_rate=0.25)
    make_evaluator(z, labels, [selector]).run()
    content = json.loads(path.read_text())
    assert content["decision_threshold"]["threshold"] == 0.4  # kept
    assert content["temperature"]["epoch"] == 1 and content["referral_rule"]["epoch"] == 1
    rule = read_referral_rule(path)
    assert rule["threshold"] == selector.result["referral_rule"]["threshold"]
    assert read_temperature(path) == selector.result["temperature"]["temperature"]
    assert read_referral_rule(tmp_path / "missing.json") is None
    path.write_text(json.dumps({"referral_rule": {"score": "max_probability"}}))
    with pytest.raises(UserError, match="threshold"):
        read_referral_rule(path)
    path.write_text(json.dumps({"referral_rule": {"score": "std", "threshold": 0.2}}))
    with pytest.raises(UserError, match="score"):
        read_referral_rule(path)


# ---------------------------------------------------------------------------- evaluation report


class Writer:
    def __init__(self):
        self.figures = []

    def add_figure(self, tag, figure, global_step=0, close=True):
        self.figures.append((tag, global_step))


@pytest.mark.parametrize("mc", [False, True])
def test_uncertainty_report_handler(tmp_path, mc):
    z, labels = _logits(seed=5, n=48, num_classes=3)
    path = tmp_path / "metrics.json"
    path.write_text(json.dumps({"test": {"accuracy": 0.5}, "other": 1}))
    writer = Writer()
    rule = {"score": "max_probability", "threshold": 0.3, "mc_dropout": False}
    handler = UncertaintyReportHandler(
        path, key="test", summary_writer=writer, figure_dir=tmp_path, temperature=2.0, referral_rule=rule
    )
    inferer = MCDropoutInferer(num_samples=3, seed=0, temperature=2.0) if mc else None
    make_evaluator(z, labels, [handler], inferer=inferer, temperature=2.0).run()
    content = json.loads(path.read_text())
    test = content["test"]
    assert test["accuracy"] == 0.5 and content["other"] == 1  # the report's entry is extended, not replaced
    if not mc:  # the probabilities are softmax(z / 2): check every number against the functions
        probs = torch.softmax(z.float() / 2.0, dim=1)
        expected = calibration_report(probs, labels)
        for key in ("ece", "ece_equal_mass", "classwise_ece", "brier", "nll"):
            assert test[key] == pytest.approx(expected[key], abs=1e-6)
        unscaled = calibration_report(torch.softmax(z.float(), dim=1), labels)
        assert test["ece_before_temperature"] == pytest.approx(unscaled["ece"], abs=1e-5)
        u = max_probability_uncertainty(probs)[:, 0]
        selective = selective_report(probs, labels, u)
        assert test["aurc"] == pytest.approx(selective["aurc"], abs=1e-6)
        assert test["referral"]["0.2"]["f1_macro"] == pytest.approx(selective["referral"]["0.2"]["f1_macro"])
        kept = u <= 0.3
        assert test["referral_rule"]["referred_fraction"] == pytest.approx(1 - kept.double().mean().item())
        assert test["referral_rule"]["accuracy"] == pytest.approx(
            (probs.argmax(dim=1)[kept] == labels[kept]).double().mean().item()
        )
        assert set(test["uncertainty_scores"]) == {"max_probability", "entropy"}
    else:
        assert set(test["uncertainty_scores"]) == {"max_probability", "entropy", "mutual_information", "variance"}
        assert "referral_rule" not in test and "ece_before_temperature" not in test
    assert test["mc_dropout"] is mc and test["temperature"] == 2.0 and test["uncertainty_score"] == "max_probability"
    assert [tag for tag, _ in writer.figures] == ["test/reliability_diagram", "test/risk_coverage"]
    assert (tmp_path / "risk_coverage.png").read_bytes()[:4] == b"\x89PNG"


def test_uncertainty_report_with_a_monte_carlo_score(tmp_path):
    z, labels = _logits(seed=6, n=32, num_classes=3)
    handler = UncertaintyReportHandler(tmp_path / "m.json", score="mutual_information")
    make_evaluator(z, labels, [handler], inferer=MCDropoutInferer(num_samples=3, seed=0)).run()
    report = handler.last_report
    assert report["uncertainty_score"] == "mutual_information"
    assert report["aurc"] == report["uncertainty_scores"]["mutual_information"]["aurc"]
    # without MC the score falls back to 1 - max p (recorded)
    plain = UncertaintyReportHandler(tmp_path / "p.json", score="mutual_information")
    make_evaluator(z, labels, [plain]).run()
    assert plain.last_report["uncertainty_score"] == "max_probability"


def test_prediction_csv_refer_column(tmp_path):
    z, labels = _logits(seed=7, n=20, num_classes=3)
    rule = {"score": "max_probability", "threshold": 0.2, "mc_dropout": False, "referred_fraction": 0.25}
    writer = PredictionCSVWriter(tmp_path / "p.csv", referral_rule=rule)
    make_evaluator(z, labels, [writer]).run()
    with open(tmp_path / "p.csv") as f:
        rows = list(csv.DictReader(f))
    probs = torch.softmax(z.float(), dim=1)
    u = max_probability_uncertainty(probs)[:, 0]
    assert [float(r["uncertainty"]) for r in rows] == pytest.approx(u.tolist(), abs=1e-7)
    assert [r["refer"] for r in rows] == ["1" if v > 0.2 else "0" for v in u.tolist()]
    mc_writer = PredictionCSVWriter(tmp_path / "q.csv", referral_rule=rule)
    with pytest.raises(UserError, match="mc_dropout=false"):
        make_evaluator(z, labels, [mc_writer], inferer=MCDropoutInferer(num_samples=2, seed=0)).run()
