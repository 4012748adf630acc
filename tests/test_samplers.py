from __future__ import annotations

import textwrap

import numpy as np
import pytest
import torch
import yaml
from ignite.engine import Events
from monai.bundle import ConfigParser
from monai.data import DataLoader, Dataset
from monai.engines import SupervisedTrainer
from torch.utils.data import DistributedSampler, RandomSampler

import monai_imbalance.data.samplers as samplers_module
from monai_imbalance.data import (
    BatchBalancedSampler,
    ClassBatchSampler,
    OverSampler,
    SamplerBatchSizeError,
    UnderSampler,
    get_sampler,
)
from monai_imbalance.errors import UserError

COUNTS = (50, 7, 3)


def make_labels(counts=COUNTS, seed=0) -> np.ndarray:
    labels = np.concatenate([np.full(n, c) for c, n in enumerate(counts)])
    return np.random.default_rng(seed).permutation(labels)


def per_batch_counts(sampler, labels) -> np.ndarray:
    """``(num_batches, C)`` class counts of the sampler's current-epoch batches."""
    batches = sampler.index_batches()
    c = sampler.num_classes
    return np.stack([np.bincount(labels[b], minlength=c) for b in batches])


def epoch_indices(sampler, epoch) -> np.ndarray:
    sampler.set_epoch(epoch)
    return np.asarray(list(sampler))


def literal_block(doc: str, marker: str) -> str:
    """The indented ``::`` block that follows ``marker`` in a docstring."""
    lines = doc[doc.index(marker) :].split("\n")
    start = next(i for i, line in enumerate(lines) if line.rstrip().endswith("::")) + 1
    block = []
    for line in lines[start:]:
        if line.strip() and not line.startswith("    "):
            break
        block.append(line)
    return textwrap.dedent("\n".join(block))


# --- batch-balanced sampling -------------------------------------------------------------------------------------
def test_every_batch_holds_every_class_equally():
    labels = make_labels()
    sampler = BatchBalancedSampler(labels.tolist(), batch_size=9, seed=1)
    assert isinstance(sampler, DistributedSampler)
    assert sampler.num_batches == len(labels) // 9 == 6
    for epoch in range(3):
        sampler.set_epoch(epoch)
        np.testing.assert_array_equal(per_batch_counts(sampler, labels), np.full((6, 3), 3))
    assert len(sampler) == 6 * 9 == len(list(sampler))


def test_remainder_is_spread_by_the_documented_cyclic_rule():
    labels = make_labels()
    sampler = BatchBalancedSampler(labels, batch_size=8, seed=2)  # 8 = 2 * 3 + 2
    nb, c, r = sampler.num_batches, 3, 2
    for epoch in range(4):
        sampler.set_epoch(epoch)
        counts = per_batch_counts(sampler, labels)
        expected = np.array([[2 + ((k - (epoch * nb + b) * r) % c < r) for k in range(c)] for b in range(nb)])
        np.testing.assert_array_equal(counts, expected)
    # over several epochs the remainder slots stay balanced to within one sample
    totals = sum(np.bincount(labels[epoch_indices(sampler, e)], minlength=3) for e in range(4))
    assert totals.max() - totals.min() <= 1


def test_minority_repeats_stratified_and_majority_without_replacement_across_epochs():
    labels = make_labels()
    members = [np.flatnonzero(labels == c) for c in range(3)]
    sampler = BatchBalancedSampler(labels, batch_size=9, seed=3)  # 18 slots per class and epoch
    epochs = [epoch_indices(sampler, e) for e in range(3)]
    for idx in epochs:
        # minority classes (7 and 3 samples): every sample floor/ceil(18 / n) times
        for c, n in ((1, 7), (2, 3)):
            times = np.bincount(idx[labels[idx] == c], minlength=len(labels))[members[c]]
            assert set(times.tolist()) <= {18 // n, -(-18 // n)}
    # majority class (50 samples): no repeat until all 50 are used, also across epochs
    majority = [idx[labels[idx] == 0] for idx in epochs]
    assert len(np.unique(np.concatenate(majority[:2]))) == 36
    assert set(np.concatenate(majority).tolist()) == set(members[0].tolist())


def test_deterministic_per_seed_and_epoch_and_changing_across_epochs():
    labels = make_labels()
    a = BatchBalancedSampler(labels, batch_size=9, seed=5)
    b = BatchBalancedSampler(torch.as_tensor(labels)[:, None], batch_size=9, seed=5)  # tensor (N, 1) labels
    assert epoch_indices(a, 4).tolist() == epoch_indices(b, 4).tolist()
    assert epoch_indices(a, 4).tolist() == epoch_indices(a, 4).tolist()
    assert epoch_indices(a, 4).tolist() != epoch_indices(a, 5).tolist()
    other_seed = BatchBalancedSampler(labels, batch_size=9, seed=6)
    assert epoch_indices(a, 4).tolist() != epoch_indices(other_seed, 4).tolist()


@pytest.mark.parametrize("cls", [BatchBalancedSampler, UnderSampler])
def test_epochs_do_not_depend_on_the_order_they_are_visited(cls):
    labels = make_labels()  # the majority class spans several epochs: its cached pass must not leak
    forward = cls(labels, batch_size=9, seed=2)
    in_order = [epoch_indices(forward, e).tolist() for e in range(6)]
    backward = cls(labels, batch_size=9, seed=2)
    assert [epoch_indices(backward, e).tolist() for e in reversed(range(6))] == in_order[::-1]


def test_num_batches_sets_the_epoch_length():
    labels = make_labels()
    sampler = BatchBalancedSampler(labels, batch_size=6, num_batches=25)
    assert len(sampler) == 150
    np.testing.assert_array_equal(per_batch_counts(sampler, labels), np.full((25, 3), 2))
    tiny = BatchBalancedSampler([0, 1, 1], batch_size=4)  # fewer samples than a batch: still one batch
    assert len(tiny) == 4


@pytest.mark.parametrize("cls", [BatchBalancedSampler, OverSampler, UnderSampler])
def test_two_replicas_take_disjoint_whole_batches_whose_union_is_the_single_replica_epoch(cls):
    labels = make_labels()
    single = cls(labels, batch_size=6, num_batches=10, seed=4, num_replicas=1, rank=0)
    ranks = [cls(labels, batch_size=6, num_batches=10, seed=4, num_replicas=2, rank=r) for r in range(2)]
    for epoch in (0, 3):
        for s in (single, *ranks):
            s.set_epoch(epoch)
        full = single.index_batches()
        shards = [s.index_batches() for s in ranks]
        assert [len(s) for s in ranks] == [30, 30]
        np.testing.assert_array_equal(shards[0], full[0::2])
        np.testing.assert_array_equal(shards[1], full[1::2])


def test_odd_batch_count_is_rounded_up_to_a_multiple_of_the_replicas():
    labels = make_labels()
    ranks = [BatchBalancedSampler(labels, batch_size=6, num_batches=5, num_replicas=2, rank=r) for r in range(2)]
    assert [s.num_batches for s in ranks] == [6, 6]
    assert [len(s) for s in ranks] == [18, 18]
    single = BatchBalancedSampler(labels, batch_size=6, num_batches=6)
    union = np.stack([ranks[0].index_batches(), ranks[1].index_batches()], axis=1).reshape(6, 6)
    np.testing.assert_array_equal(union, single.index_batches())


def test_replicas_default_to_the_process_group(monkeypatch):
    labels = make_labels()
    assert (BatchBalancedSampler(labels, 6).num_replicas, BatchBalancedSampler(labels, 6).rank) == (1, 0)
    monkeypatch.setattr(samplers_module.dist, "is_initialized", lambda: True)
    monkeypatch.setattr(samplers_module.dist, "get_world_size", lambda: 2)
    monkeypatch.setattr(samplers_module.dist, "get_rank", lambda: 1)
    sampler = BatchBalancedSampler(labels, 6, num_batches=10)
    assert (sampler.num_replicas, sampler.rank, len(sampler)) == (2, 1, 30)


# --- over- and under-sampling ------------------------------------------------------------------------------------
def test_over_sampler_repeats_every_class_to_the_majority_count():
    labels = make_labels()
    sampler = OverSampler(labels, batch_size=10, seed=1)  # 3 * 50 = 150 = 15 batches, no padding
    assert len(sampler) == 150
    first = epoch_indices(sampler, 0)
    for idx in (first, epoch_indices(sampler, 1)):
        np.testing.assert_array_equal(np.bincount(labels[idx]), [50, 50, 50])
        majority = idx[labels[idx] == 0]
        assert sorted(majority.tolist()) == np.flatnonzero(labels == 0).tolist()  # each once
        times = np.bincount(idx[labels[idx] == 1], minlength=len(labels))[labels == 1]
        assert set(times.tolist()) <= {7, 8}  # 50 / 7
    assert first.tolist() != epoch_indices(sampler, 1).tolist()  # reshuffled


def test_under_sampler_drops_every_class_to_the_minority_count():
    labels = make_labels()
    sampler = UnderSampler(labels, batch_size=3, seed=1)  # 3 * 3 = 9 = 3 batches
    seen = []
    for epoch in range(5):
        idx = epoch_indices(sampler, epoch)
        np.testing.assert_array_equal(np.bincount(labels[idx]), [3, 3, 3])
        assert len(set(idx.tolist())) == 9  # without replacement
        seen.append(idx[labels[idx] == 1])
    # the larger classes continue across epochs: class 1 (7 samples) is exhausted before any repeat
    assert len(set(np.concatenate(seen[:2]).tolist())) == 6
    assert epoch_indices(sampler, 0).tolist() != epoch_indices(sampler, 1).tolist()


def test_resampler_padding_to_whole_batches_stays_class_balanced():
    labels = make_labels()
    sampler = OverSampler(labels, batch_size=16)  # 150 -> 10 batches = 160 slots
    assert sampler.num_batches == 10
    counts = np.bincount(labels[epoch_indices(sampler, 0)])
    assert counts.sum() == 160 and counts.max() - counts.min() <= 1 and counts.min() >= 53


# --- MONAI integration -------------------------------------------------------------------------------------------
def test_monai_data_loader_with_two_workers_yields_the_sampler_batches():
    labels = make_labels()
    data = [{"index": i, "label": int(y)} for i, y in enumerate(labels)]
    sampler = BatchBalancedSampler([d["label"] for d in data], batch_size=9, seed=7)
    sampler.set_epoch(2)
    loader = DataLoader(Dataset(data), sampler=sampler, batch_size=9, shuffle=False, num_workers=2)
    batches = [batch["index"].tolist() for batch in loader]
    assert batches == sampler.index_batches().tolist()
    for batch in loader:
        assert torch.bincount(batch["label"], minlength=3).tolist() == [3, 3, 3]


class _Collect:
    def __init__(self):
        self.epochs: dict[int, list[list[int]]] = {}

    def attach(self, engine):
        engine.add_event_handler(Events.ITERATION_COMPLETED, self)

    def __call__(self, engine):
        # the trainer decollates: state.batch is a list of per-item dicts
        self.epochs.setdefault(engine.state.epoch, []).append([int(d["index"]) for d in engine.state.batch])


def _two_epoch_trainer(loader: DataLoader) -> tuple[SupervisedTrainer, _Collect]:
    """A 2-epoch ``SupervisedTrainer`` on ``loader`` and the handler that collects its batches."""
    network = torch.nn.Linear(2, 3)
    collect = _Collect()
    trainer = SupervisedTrainer(
        device=torch.device("cpu"),
        max_epochs=2,
        train_data_loader=loader,
        network=network,
        optimizer=torch.optim.SGD(network.parameters(), lr=0.1),
        loss_function=torch.nn.CrossEntropyLoss(),
        train_handlers=[collect],
    )
    return trainer, collect


def test_supervised_trainer_calls_set_epoch_every_epoch():
    labels = make_labels()
    data = [{"image": torch.zeros(2), "index": i, "label": int(y)} for i, y in enumerate(labels)]
    sampler = BatchBalancedSampler(labels, batch_size=9, seed=8)
    loader = DataLoader(Dataset(data), sampler=sampler, batch_size=9, shuffle=False)
    trainer, collect = _two_epoch_trainer(loader)
    trainer.run()
    reference = BatchBalancedSampler(labels, batch_size=9, seed=8)
    for epoch in (1, 2):
        reference.set_epoch(epoch)
        assert sorted(map(sorted, collect.epochs[epoch])) == sorted(map(sorted, reference.index_batches().tolist()))
    assert collect.epochs[1] != collect.epochs[2]


@pytest.mark.parametrize("name", ["batch_balanced", "over", "under", "none"])
def test_documented_bundle_config_instantiates_train_dataloader_sampler(name):
    snippet = yaml.safe_load(literal_block(samplers_module.__doc__, "In a bundle config"))
    labels = make_labels()
    config = {
        **snippet,
        "sampler_name": name,
        "batch_size": 6,
        "seed": 3,
        "train_datalist": [{"index": i, "label": int(y)} for i, y in enumerate(labels)],
    }
    config["train"]["dataset"] = {"_target_": "Dataset", "data": "@train_datalist"}
    parser = ConfigParser(config)
    loader = parser.get_parsed_content("train#dataloader")
    sampler = parser.get_parsed_content("train#sampler")
    if name == "none":
        assert sampler is None and isinstance(loader.sampler, RandomSampler) and loader.batch_size == 6
        return
    expected = {"batch_balanced": BatchBalancedSampler, "over": OverSampler, "under": UnderSampler}[name]
    assert type(sampler) is expected and loader.batch_sampler is sampler.batch_sampler and sampler.seed == 3
    assert [b["index"].tolist() for b in loader] == sampler.index_batches().tolist()


def test_sampler_from_a_target_component_in_a_bundle_config():
    labels = make_labels()
    parser = ConfigParser(
        {
            "train_datalist": [{"label": int(y)} for y in labels],
            "train": {
                "dataloader": {
                    "_target_": "DataLoader",
                    "dataset": {"_target_": "Dataset", "data": "@train_datalist"},
                    "sampler": {
                        "_target_": "monai_imbalance.data.BatchBalancedSampler",
                        "labels": "$[d['label'] for d in @train_datalist]",
                        "batch_size": 6,
                    },
                    "batch_size": 6,
                    "shuffle": False,
                }
            },
        }
    )
    loader = parser.get_parsed_content("train#dataloader")
    assert isinstance(loader.sampler, BatchBalancedSampler)
    assert all(torch.bincount(b["label"], minlength=3).tolist() == [2, 2, 2] for b in loader)


def test_documented_segmentation_crops_instantiate_and_balance_patches():
    transforms = yaml.safe_load(literal_block(samplers_module.__doc__, "instead of a sampler"))
    assert [t["_target_"] for t in transforms] == ["RandCropByPosNegLabeld", "RandCropByLabelClassesd"]
    label = torch.zeros(1, 96, 96)
    label[0, 10:20, 10:20] = 1  # small foreground (binary) / class 1
    multiclass = label.clone()
    multiclass[0, 70:80, 70:80] = 2
    for spec, lab in zip(transforms, (label, multiclass), strict=True):
        crop = ConfigParser({"t": spec}).get_parsed_content("t")
        crop.set_random_state(0)
        patches = crop({"image": torch.rand(1, 96, 96), "label": lab})
        assert len(patches) == spec["num_samples"]
        assert all(tuple(p["image"].shape) == (1, 48, 48) for p in patches)
        assert sum(bool((p["label"] > 0).any()) for p in patches) >= 1  # rare foreground is reached


# --- get_sampler and errors --------------------------------------------------------------------------------------
def test_get_sampler_names():
    labels = make_labels()
    assert get_sampler("none", labels, 6) is None
    assert type(get_sampler("batch_balanced", labels, 6, seed=2)) is BatchBalancedSampler
    assert type(get_sampler("over", labels, 6, num_batches=3)) is OverSampler
    under = get_sampler("under", labels, 6, num_replicas=2, rank=1)
    assert type(under) is UnderSampler and under.rank == 1
    with pytest.raises(ValueError, match="unknown sampler 'balanced'"):
        get_sampler("balanced", labels, 6)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"batch_size": 8}, ValueError, "smaller than the number of classes 9"),
        ({"labels": [0, 0, 2, 2]}, ValueError, r"class\(es\) 1 of 3 have no samples"),
        ({"labels": [0, 1, 2], "num_classes": 4}, ValueError, r"class\(es\) 3 of 4 have no samples"),
        ({"labels": [0, 1.9, 2]}, TypeError, "integer class indices"),
        ({"labels": [0, 1, 5], "num_classes": 3}, ValueError, r"must lie in \[0, 3\)"),
        ({"labels": [0, -1, 2]}, ValueError, "found -1"),
        ({"labels": [0.0, 1.0, 2.0]}, TypeError, "integer class indices"),
        ({"labels": [[1, 0], [0, 1]]}, ValueError, "one-hot"),
        ({"labels": []}, ValueError, "empty"),
        ({"batch_size": 0}, ValueError, "batch_size must be >= 1"),
        ({"batch_size": 9.0}, TypeError, "batch_size must be an int"),
        ({"num_batches": 0}, ValueError, "num_batches must be >= 1"),
        ({"seed": -1}, ValueError, "seed must be >= 0"),
        ({"num_replicas": 2, "rank": 2}, ValueError, r"rank must lie in \[0, num_replicas=2\)"),
    ],
)
def test_bad_input_raises_a_clear_error(kwargs, error, match):
    args = {"labels": list(range(9)) * 2, "batch_size": 9, **kwargs}
    if "labels" in kwargs and "batch_size" not in kwargs:
        args["batch_size"] = 3 if kwargs["labels"] else 9
    with pytest.raises(error, match=match):
        BatchBalancedSampler(**args)


@pytest.mark.parametrize("sampler_class", [BatchBalancedSampler, OverSampler, UnderSampler])
def test_label_far_beyond_the_classes_is_refused_without_allocating(sampler_class):
    # issue 12.9: [0, 10**9] * 5 made a bincount of 10**9 + 1 int64 counters (8 GB, 21 GB with the copies) and was
    # killed; the label is refused before any counter is allocated
    labels = [0, 10**9] * 5
    with pytest.raises(ValueError, match=r"found 1000000000 at position 1, which would make 1000000001 classes"):
        sampler_class(labels, batch_size=4)
    with pytest.raises(ValueError, match=r"must lie in \[0, 2\) for num_classes=2, found 1000000000"):
        sampler_class(labels, batch_size=4, num_classes=2)


def test_many_empty_classes_are_listed_briefly():
    with pytest.raises(ValueError) as info:
        BatchBalancedSampler([0, 5000] * 5, batch_size=4)
    message = str(info.value)
    assert "class(es) 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, ... (4999 in all) of 5001 have no samples" in message
    assert len(message) < 400


def test_resamplers_accept_any_batch_size_but_check_labels():
    assert len(OverSampler([0, 1, 1, 2], batch_size=1)) == 6
    with pytest.raises(ValueError, match="no samples"):
        UnderSampler([0, 2], batch_size=2)


# --- the batch_sampler form and the loader's batch size -------------------------------------------------------------
@pytest.mark.parametrize("cls", [BatchBalancedSampler, OverSampler, UnderSampler])
def test_batch_sampler_form_yields_the_same_whole_batches(cls):
    """``DataLoader(batch_sampler=sampler.batch_sampler)``: the batch size is stated once, in the sampler."""
    labels = make_labels()
    data = [{"index": i, "label": int(y)} for i, y in enumerate(labels)]
    sampler = cls(labels, batch_size=9, seed=7)
    view = sampler.batch_sampler
    assert isinstance(view, ClassBatchSampler) and view is sampler.batch_sampler and view.batch_size == 9
    view.set_epoch(2)
    assert sampler.epoch == 2
    loader = DataLoader(Dataset(data), batch_sampler=view, num_workers=2)
    batches = [batch["index"].tolist() for batch in loader]
    assert batches == sampler.index_batches().tolist() and len(loader) == len(view) == len(batches)
    old_form = DataLoader(Dataset(data), sampler=sampler, batch_size=9, shuffle=False)
    assert [batch["index"].tolist() for batch in old_form] == batches
    with pytest.raises(ValueError, match="mutually exclusive"):  # PyTorch refuses a second batch size itself
        DataLoader(Dataset(data), batch_sampler=view, batch_size=8)


@pytest.mark.parametrize("drop_last", [False, True])
def test_a_loader_batch_size_that_breaks_the_balance_is_refused(drop_last):
    """BatchBalancedSampler(batch_size=32) in DataLoader(batch_size=16) gave [7, 9], [9, 7], [10, 6] silently."""
    labels = make_labels((60, 40))
    sampler = BatchBalancedSampler(labels, batch_size=32, seed=0)
    loader = DataLoader(Dataset(list(range(100))), sampler=sampler, batch_size=16, drop_last=drop_last)
    with pytest.raises(SamplerBatchSizeError, match=r"batch_size=16 differs from the sampler's batch_size=32"):
        next(iter(loader))
    assert issubclass(SamplerBatchSizeError, UserError) and issubclass(SamplerBatchSizeError, ValueError)
    assert len(list(sampler)) == len(sampler)  # iterated directly (no loader): nothing to check
    over = OverSampler(labels, batch_size=32, seed=0)  # balances the epoch, not each batch: any batch size
    assert sum(len(b) for b in DataLoader(Dataset(list(range(100))), sampler=over, batch_size=16)) == len(over)


def test_two_replicas_batch_samplers_take_their_whole_batches():
    labels = make_labels()
    full = BatchBalancedSampler(labels, batch_size=6, num_batches=4, num_replicas=1, rank=0)
    parts = [BatchBalancedSampler(labels, batch_size=6, num_batches=4, num_replicas=2, rank=r) for r in (0, 1)]
    got = [list(p.batch_sampler) for p in parts]
    assert [len(p.batch_sampler) for p in parts] == [2, 2]
    assert got[0] + got[1] == [full.index_batches().tolist()[i] for i in (0, 2, 1, 3)]


def test_supervised_trainer_sets_the_batch_sampler_epoch_once_attached():
    """MONAI sets the epoch of ``data_loader.sampler`` only; ``attach`` does it for the batch_sampler form, giving
    the batches of the sampler= form epoch by epoch."""
    labels = make_labels()
    data = [{"image": torch.zeros(2), "index": i, "label": int(y)} for i, y in enumerate(labels)]
    sampler = BatchBalancedSampler(labels, batch_size=9, seed=8)
    loader = DataLoader(Dataset(data), batch_sampler=sampler.batch_sampler)
    trainer, collect = _two_epoch_trainer(loader)
    sampler.batch_sampler.attach(trainer)
    sampler.batch_sampler.attach(trainer)  # attaching twice registers once
    trainer.run()
    reference = BatchBalancedSampler(labels, batch_size=9, seed=8)
    for epoch in (1, 2):
        reference.set_epoch(epoch)
        assert collect.epochs[epoch] == reference.index_batches().tolist()
    with pytest.raises(TypeError, match="class sampler"):
        ClassBatchSampler(RandomSampler(data))
