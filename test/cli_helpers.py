"""Running the real ``inspatio-ros`` CLI in a subprocess, as a user would."""
import os
import subprocess
import sys


def run_cli(*args, timeout: float = 600):
    env = dict(os.environ, INSPATIO_NO_PROGRESS="1")
    return subprocess.run([sys.executable, "-m", "inspatio_ros.cli", *args], capture_output=True, text=True,
                          env=env, timeout=timeout)
