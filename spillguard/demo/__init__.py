"""Synthetic IoT customer data with ground truth, for the demo, the tests and the benchmarks."""

from spillguard.demo.credential_logs import CredentialLogs, credential_log_lines
from spillguard.demo.generator import GroundTruth, generate

__all__ = ["CredentialLogs", "GroundTruth", "credential_log_lines", "generate"]
