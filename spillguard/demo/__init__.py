"""Synthetic IoT customer data with ground truth, for the demo, the tests and the benchmarks."""

from spillguard.demo.generator import GroundTruth, generate

__all__ = ["GroundTruth", "generate"]
