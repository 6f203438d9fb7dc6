"""The executor contract: every executor gives the same result; small files go in batches; detection alone."""

from __future__ import annotations

import pickle
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pytest

from spillguard.detect.flatten import flatten_table
from spillguard.detect.state import DatasetState
from spillguard.keys import Hasher, fingerprint_key
from spillguard.scan.accumulate import DatasetScanner, build_ruleset, detect_table
from spillguard.scan.checkpoint import StateCodec
from spillguard.scan.executors import (
    EXECUTORS,
    MERGE_FANOUT,
    HereTotals,
    InProcessExecutor,
    MergeTree,
    ProcessPoolExecutor,
    Totals,
)
from spillguard.scan.jobs import JobRunner, KeptState, PartitionJob, PartitionResult
from spillguard.scan.options import ScanOptions
from spillguard.scan.run import BATCH_FILES, ScanInterrupted, _Dataset, _run_batches, run_scan
from spillguard.sources import files
from spillguard.sources.base import Partition
from spillguard.sources.files import FileSource


def _json(result) -> dict:
    doc = result.to_json()
    doc.pop("started_at")
    doc.pop("finished_at")
    return doc


class CountingExecutor:
    """A third executor, as a cluster one would be: runs batches in this process and counts them."""

    in_process = False
    workers = 3

    def __init__(self) -> None:
        self.runner = JobRunner()
        self.batches: list[int] = []

    def submit(self, jobs: list[PartitionJob]) -> Future[list[PartitionResult]]:
        self.batches.append(len(jobs))
        fut: Future[list[PartitionResult]] = Future()
        fut.set_result(self.runner.run_batch(jobs))
        return fut

    def totals(self) -> Totals:
        return HereTotals()

    def shutdown(self, *, cancel: bool = False) -> None:
        self.runner.close()


class KeepingExecutor(CountingExecutor):
    """As a cluster keeps results: each partition's state stays in a store of its own (pickled, as between
    processes) and the merge tree's merges run there; only what is fetched comes back."""

    def __init__(self, lose: int | None = None) -> None:
        super().__init__()
        self.store: dict[int, bytes] = {}
        self.next_handle = 0
        self.merges: list[int] = []  # states per merge
        self.fetched = 0
        self.lose = lose  # this many partitions' sum is lost on fetch (a merge failed beyond its retries)

    def _put(self, state: DatasetState) -> int:
        self.next_handle += 1
        self.store[self.next_handle] = pickle.dumps(state)
        return self.next_handle

    def submit(self, jobs: list[PartitionJob]) -> Future[list[PartitionResult]]:
        fut = super().submit(jobs)
        codec = StateCodec(fingerprint_key()) if jobs[0].options.state else None
        for res in fut.result():
            if isinstance(res.state, DatasetState):
                state = res.state
                if codec is not None:  # a checkpointed scan: encoded where it was scanned, kept in stored form
                    res.stored = codec.encode(state, res.malformed)
                    state, res.malformed = codec.decode(*res.stored, state.target)
                res.state = KeptState(state.records, self._put(state))
        return fut

    def totals(self) -> Totals:
        return MergeTree(self._merge, self._fetch)

    def _merge(self, handles: list[Any]) -> int:
        self.merges.append(len(handles))
        total, *others = [pickle.loads(self.store.pop(h)) for h in handles]
        for state in others:
            total.merge(state)
        return self._put(total)

    def _fetch(self, handles: list[Any]) -> list[DatasetState | BaseException]:
        self.fetched += len(handles)
        out: list[DatasetState | BaseException] = [pickle.loads(self.store.pop(h)) for h in handles]
        if self.lose is not None:
            out[0] = RuntimeError("object lost")
        return out


def test_every_executor_gives_the_same_result(demo_data):
    folder, _truth = demo_data
    seed = 12345
    results = []
    for executor in (InProcessExecutor(), ProcessPoolExecutor(2), CountingExecutor()):
        result, _run = run_scan([str(folder)], ScanOptions(seed=seed, show_samples=True), executor=executor)
        executor.shutdown()
        results.append(_json(result))
    assert results[0] == results[1] == results[2]
    assert results[0]["summary"]["complete"] is True
    # Every row of the registry that runs on this machine, chosen by name as --executor does (Ray's row is
    # tested against a Ray cluster in test_ray_executor.py).
    for name in EXECUTORS:
        if name == "ray":
            continue
        by_name, _run = run_scan([str(folder)], ScanOptions(seed=seed, show_samples=True, executor=name, workers=2))
        assert _json(by_name) == results[0], name


def test_states_kept_where_computed_are_added_up_by_a_merge_tree(demo_data, monkeypatch):
    """A cluster's results merged by its own merges, bottom up: the same JSON as merging each here; every kept
    state merged or fetched exactly once; one state per dataset comes back."""
    folder, truth = demo_data
    monkeypatch.setattr(files, "PART_BYTES", 32 << 10)  # the users file as ~100 byte ranges
    here, _ = run_scan([str(folder)], ScanOptions(seed=7, show_samples=True, workers=1))
    executor = KeepingExecutor()
    kept, _ = run_scan([str(folder)], ScanOptions(seed=7, show_samples=True), executor=executor)
    assert _json(kept) == _json(here)
    assert kept.subjects_affected == truth.users and kept.complete
    assert not executor.store  # nothing left behind, nothing added twice
    assert len(executor.merges) >= 25 and max(executor.merges) <= MERGE_FANOUT
    multi = [d for d in kept.datasets if d["records_scanned"] > 0]
    assert executor.fetched <= len(multi)


def test_a_merge_tree_with_state_and_resume_equals_an_uninterrupted_scan(demo_data, monkeypatch, tmp_path):
    folder, _truth = demo_data
    monkeypatch.setattr(files, "PART_BYTES", 32 << 10)
    target = str(folder / "users.jsonl")
    uninterrupted, _ = run_scan([target], ScanOptions(seed=7, workers=1))
    seen: list[int] = []

    def ctrl_c_after_seven(_n: int) -> None:
        seen.append(1)
        if len(seen) == 7:
            raise KeyboardInterrupt

    state = tmp_path / "scan.state"
    with pytest.raises(ScanInterrupted) as stop:
        run_scan([target], ScanOptions(state=state), progress=ctrl_c_after_seven, executor=KeepingExecutor())
    assert stop.value.saved == 7  # each partition written by the scanning process as it came
    executor = KeepingExecutor()
    resumed, _ = run_scan([target], ScanOptions(state=state, resume=True), executor=executor)
    assert _json(resumed) == _json(uninterrupted)
    assert executor.merges and not executor.store  # the rest merged by the tree, the saved seven here


def test_a_sum_lost_in_the_tree_is_reported_as_not_scanned(demo_data, monkeypatch):
    folder, _truth = demo_data
    monkeypatch.setattr(files, "PART_BYTES", 32 << 10)
    result, _ = run_scan([str(folder / "users.jsonl")], ScanOptions(seed=7), executor=KeepingExecutor(lose=1))
    assert not result.complete
    errors = [e.message for e in result.errors if e.kind == "error"]
    assert len(errors) == 1 and "partitions not scanned" in errors[0] and "lost while being added up" in errors[0]


def _small_files(folder: Path, n: int) -> None:
    for i in range(n):
        sub = folder / f"p{i // 500}"
        sub.mkdir(parents=True, exist_ok=True)
        (sub / f"r{i}.jsonl").write_text(orjson.dumps({"user_id": i, "email": f"u{i}@example.com"}).decode() + "\n")


def test_small_files_are_scanned_in_batches_with_exact_counts(tmp_path):
    n = BATCH_FILES * 2 + 300
    _small_files(tmp_path / "lake", n)
    executor = CountingExecutor()
    result, _run = run_scan([str(tmp_path / "lake")], ScanOptions(seed=1), executor=executor)
    assert executor.batches == [BATCH_FILES, BATCH_FILES, 300]
    assert result.records_scanned == n and len(result.datasets) == n
    assert result.categories["email"].subjects == n and result.subjects_affected == n
    assert all(d["records_scanned"] == 1 and d["subjects_scanned"] == 1 for d in result.datasets)
    # Batched or one by one, the same counts.
    alone, _ = run_scan([str(tmp_path / "lake" / "p0")], ScanOptions(seed=1, workers=1))
    batched = {f.dataset: f for f in result.findings if f.dataset.startswith("p0/")}
    assert {f.dataset: (f.rule, f.records_matched, f.subjects_matched) for f in alone.findings} == {
        name.removeprefix("p0/"): (f.rule, f.records_matched, f.subjects_matched) for name, f in batched.items()
    }


def test_a_worker_lists_a_folder_once_however_many_jobs(tmp_path, monkeypatch):
    """The cost that made 20,000 files quadratic: finding each job's file by listing the folder again."""
    _small_files(tmp_path / "lake", 600)
    listings = []
    original = FileSource.datasets

    def counted(self):
        listings.append(1)
        return original(self)

    monkeypatch.setattr(FileSource, "datasets", counted)
    options = ScanOptions(seed=1)
    target = str(tmp_path / "lake")
    names = [reader.name for reader in original(FileSource(target))]
    jobs = [PartitionJob(target, name, {"path": str(tmp_path / "lake" / name)}, None, options, None, "x") for name in names]
    runner = JobRunner()  # as in a fresh worker process: nothing adopted
    results = runner.run_batch(jobs[:300]) + runner.run_batch(jobs[300:])
    runner.close()
    assert len(listings) <= 1  # a file source finds a file by its name without listing at all
    assert [r.dataset for r in results] == names and all(r.state is not None and r.state.records == 1 for r in results)


def test_detection_without_counting():
    """What a safe copy needs: which values of which leaf each rule hits, with nothing counted."""
    options = ScanOptions(seed=1)
    ruleset = build_ruleset(options)
    table = pa.table({"email": ["a@example.com", None, "not mail", "B@Example.COM"], "n": [1, 2, 3, 4]})
    found = {(h.leaf.path, ruleset.rules[rid].category): idx.tolist() for h in detect_table(ruleset, flatten_table(table)) for rid, idx in h.hits.by_rule.items()}
    assert found == {("email", "email"): [0, 3]}
    scanner = DatasetScanner(ruleset, Hasher(1), options, fingerprint_key())
    state = scanner.new_state("t", "d", None)
    scanner.process(table, state, "p")
    assert state.findings[("email", "email")].records_matched == 2


class PendingExecutor:
    """Workers that have not started the jobs handed to them yet: each batch's future stays pending until
    the test finishes it (as a process pool's queue would)."""

    in_process = False
    workers = 2

    def __init__(self) -> None:
        self.submitted: list[Future[list[PartitionResult]]] = []
        self.jobs: list[list[PartitionJob]] = []

    def submit(self, jobs: list[PartitionJob]) -> Future[list[PartitionResult]]:
        fut: Future[list[PartitionResult]] = Future()
        if not self.submitted:  # the first batch's worker finds the target dead and gives it up
            fut.set_result([PartitionResult(j.key, j.dataset, None, error="redis://h: failed for 30 s", target_down=True) for j in jobs])
        self.submitted.append(fut)
        self.jobs.append(jobs)
        return fut

    def shutdown(self, *, cancel: bool = False) -> None:
        return None


def test_a_target_given_up_in_a_worker_hands_out_no_more_of_its_batches():
    options = ScanOptions()
    plan = _Dataset(reader=None, state=None, partitions=[Partition("user:*", {"n": i}) for i in range(20)])  # type: ignore[arg-type]
    batches = [[(plan, PartitionJob("redis://h", "user:*", p.spec, None, options))] for p in plan.partitions]
    executor = PendingExecutor()
    absorbed: list[PartitionResult] = []
    down: list[str] = []

    def absorb(_plan: _Dataset, _job: PartitionJob, res: PartitionResult) -> None:
        absorbed.append(res)
        if res.target_down:
            down.append(res.error or "")

    left = _run_batches(executor, batches, absorb, lambda: down[0] if down else None)
    # The window holds 2 x 2 batches: the first failed while the others waited; those were withdrawn.
    assert len(executor.submitted) == 2 * executor.workers
    assert all(f.cancelled() for f in executor.submitted[1:])
    assert len(absorbed) == 1 and absorbed[0].target_down
    # Every batch but the one that ran is handed back, to be reported as not scanned: none is lost.
    keys = sorted(job.key for batch in left for _plan, job in batch)
    assert keys == sorted(p.key for p in plan.partitions[1:])
