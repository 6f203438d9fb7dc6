"""The scan pillar, in layers (each imports only those above it):

    options      ScanOptions: what to scan for and how
    accumulate   detect_table (rule hits per leaf, no counting) and DatasetScanner (hits -> DatasetState)
    jobs         PartitionJob / PartitionResult, scan_partition (retries), JobRunner (runs a job anywhere)
    names        how dataset and field names are stored (masked + keyed hash) and shown
    checkpoint   the state file: finished partitions without pickle, resume refuses changed inputs
    inventory    merged states -> findings, per-category totals, the ScanResult, affected people
    executors    the Executor contract: in-process, process pool (a cluster executor is one more class)
    run          run_scan / scan_target: targets -> datasets -> partitions -> executor -> result
    output       table, JSON, NDJSON, the affected-people file
    cli          `spillguard scan`, `demo`, `rules`; exit codes

`spillguard.scan` is the public scan() function (spillguard/__init__.py defines it after loading this package), so
import the modules here by their full names: `from spillguard.scan.run import run_scan`.
"""
