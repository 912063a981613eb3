"""Running one function in many threads at once, each with its own database connection,
as several workers would (PostgreSQL tests of claims and constraints)."""

import threading

from django.db import connections

WORKERS = 8


def in_parallel(function, *args, workers: int = WORKERS) -> list:
    """Call ``function(*args)`` in ``workers`` threads released together; their results."""
    barrier = threading.Barrier(workers)
    results = [None] * workers

    def run(index):
        try:
            barrier.wait()
            results[index] = function(*args)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results
