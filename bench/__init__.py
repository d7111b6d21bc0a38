"""speakcli benchmarks, one module a section (see README.md); bench/run.py runs them."""
