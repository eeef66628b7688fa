"""The project's own places, importable without the settings machinery (DAG files read them at parse)."""

from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_VAR_DIR = PROJECT_ROOT / "var"
CONFIG_DIR = PROJECT_ROOT / "include" / "config"
DEFAULT_INSTRUCTIONS_DIR = CONFIG_DIR / "instructions"
DEFAULT_DATAMAPS_DIR = CONFIG_DIR / "datamaps"
DEFAULT_RECIPIENTS_FILE = CONFIG_DIR / "recipients.yaml"
