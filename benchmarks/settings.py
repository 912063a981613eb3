"""Tocsin's own settings, with the benchmark URLs (which add the baseline endpoint)."""

from tocsin.settings import *  # noqa: F403

ROOT_URLCONF = "benchmarks.urls"
