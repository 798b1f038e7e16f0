"""Policy reload: new files are picked up, broken ones rejected, the last good one kept."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from extproc.metrics import Metrics
from extproc.policy_store import PolicyStore
from mesh.policy import PolicyError

GOOD = "trustDomain: cluster.local\ndefaultAction: deny\n"
OTHER = "trustDomain: cluster.local\ndefaultAction: allow\n"


def store_with(tmp_path: Path, text: str) -> tuple[PolicyStore, Metrics, Path]:
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    metrics = Metrics()
    store = PolicyStore(path, metrics)
    store.load_initial()
    return store, metrics, path


def replace_atomically(path: Path, text: str) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def sample(metrics: Metrics, result: str) -> float:
    value = metrics.registry.get_sample_value("weir_policy_reloads_total", {"result": result})
    return value or 0.0


def test_an_invalid_initial_policy_is_fatal(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text("defaultAction: maybe\n")
    with pytest.raises(PolicyError):
        PolicyStore(path, Metrics()).load_initial()


def test_a_file_replaced_by_rename_is_noticed_and_loaded(tmp_path: Path) -> None:
    store, metrics, path = store_with(tmp_path, GOOD)
    assert not store.changed_on_disk()
    replace_atomically(path, OTHER)
    assert store.changed_on_disk()
    assert store.reload() is True
    assert store.current.default_action == "allow"
    assert sample(metrics, "ok") == 2


def test_an_invalid_new_file_keeps_the_last_good_policy_and_is_counted(tmp_path: Path) -> None:
    store, metrics, path = store_with(tmp_path, GOOD)
    digest = store.current.digest
    replace_atomically(path, GOOD + "unknownKey: 1\n")
    assert store.reload() is False
    assert store.current.digest == digest
    assert store.last_error is not None and "unknownKey" in str(store.last_error)
    assert sample(metrics, "invalid") == 1


def test_a_deleted_file_keeps_the_last_good_policy(tmp_path: Path) -> None:
    store, metrics, path = store_with(tmp_path, GOOD)
    path.unlink()
    assert store.changed_on_disk()
    assert store.reload() is False
    assert store.current.default_action == "deny"
    assert sample(metrics, "invalid") == 1


def test_rewriting_identical_content_is_not_a_new_policy(tmp_path: Path) -> None:
    store, _, path = store_with(tmp_path, GOOD)
    replace_atomically(path, GOOD)
    assert store.reload() is False


def test_the_policy_info_metric_names_only_the_policy_in_force(tmp_path: Path) -> None:
    store, metrics, path = store_with(tmp_path, GOOD)
    first = store.current.digest
    replace_atomically(path, OTHER)
    store.reload()
    text = metrics.render().decode()
    assert store.current.digest in text
    assert first not in text
