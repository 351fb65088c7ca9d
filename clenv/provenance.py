"""run.json's provenance record (DESIGN.md, "Results folder")."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

from clenv.version import __version__


def provenance(cfg: dict, stream_sha: str) -> dict:
    """run.json: package versions, git commit, machine, threads, device, stream hash."""
    import gymnasium

    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                                cwd=Path(__file__).resolve().parent, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return {
        "clenv": __version__, "python": sys.version.split()[0], "torch": torch.__version__,
        "numpy": np.__version__, "gymnasium": gymnasium.__version__,
        "git_commit": commit or None, "platform": platform.platform(),
        "cpu": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "device": cfg["device"], "stream_sha256": stream_sha, "argv": sys.argv,
    }
