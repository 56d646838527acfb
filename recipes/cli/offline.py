"""The offline rule: no `currimix` command touches the network, whatever the caller's environment.

`datasets` and `huggingface_hub` read their offline switches once, when first imported, so the
environment variables alone do not hold when a caller set them to 0 or imported those libraries
before calling the CLI in-process (tests, notebooks). `enforce_offline` therefore forces the
variables to 1 (overriding the caller's values) and sets the already-imported libraries' switches.
It runs when `recipes.cli` is imported and again at the start of every command.
"""

from __future__ import annotations

import os
import sys

OFFLINE_VARIABLES = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE")


def enforce_offline() -> None:
    """Make every Hugging Face library treat the network as unavailable, from now on."""
    for key in OFFLINE_VARIABLES:
        os.environ[key] = "1"
    # Never report downloads (datasets sends one request per load_dataset when it may).
    os.environ["HF_UPDATE_DOWNLOAD_COUNTS"] = "0"
    hub = sys.modules.get("huggingface_hub.constants")
    if hub is not None:
        hub.HF_HUB_OFFLINE = True
    ds = sys.modules.get("datasets.config")
    if ds is not None:
        ds.HF_HUB_OFFLINE = True
        ds.HF_DATASETS_OFFLINE = True
        ds.HF_UPDATE_DOWNLOAD_COUNTS = False
