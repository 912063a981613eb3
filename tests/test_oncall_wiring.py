"""The on-call app's receivers are connected by the app itself, not by whichever module a
test happens to import: a fresh process records rotation history and override notices."""

import os
import subprocess
import sys

from django.conf import settings

CHECK = """
import django
django.setup()
from django.db.models.signals import post_delete, post_save, pre_save
from oncall.models import Override, Rotation
assert pre_save.has_listeners(Rotation), "rotation history is not recorded"
assert pre_save.has_listeners(Override) and post_save.has_listeners(Override)
assert post_delete.has_listeners(Override), "override notices are not sent"
print("wired")
"""


def test_a_fresh_process_records_rotation_history_and_override_notices():
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tocsin.settings",
           "SECRET_KEY": "a-key-for-this-check-only-" + "x" * 40}
    done = subprocess.run([sys.executable, "-c", CHECK], cwd=settings.BASE_DIR, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "wired", done.stderr[-2000:]
