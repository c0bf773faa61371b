"""Ablation studies: calibrate positional-bias profiles, run suites into a results database, report.

Heavy dependencies (transformers, matplotlib, Ray) are imported by the modules that need them,
so ``import tokcompress.study`` stays cheap.
"""
