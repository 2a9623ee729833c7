"""Offline stand-in for get-pip.py, used by ansible-test to seed pip into its sanity venvs."""
import subprocess
import sys

ARGS = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
subprocess.run([sys.executable, "-m", "ensurepip", "--upgrade", "--default-pip"], stdout=subprocess.DEVNULL, check=True)
subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--upgrade"] + ARGS, check=True)
