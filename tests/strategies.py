"""Hypothesis strategies shared by the property tests."""

from __future__ import annotations

from hypothesis import strategies as st

dataset_sizes = st.integers(min_value=1, max_value=200)
batch_sizes = st.integers(min_value=1, max_value=40)
seeds = st.integers(min_value=0, max_value=2**63 - 1)
epochs = st.integers(min_value=0, max_value=1000)
