"""Each audit test writes its external checkpoints to a file of its own.

The database is rolled back after every test; a file outside it is not, so a shared sink would hold the
checkpoints of trails that no longer exist, which verification rightly reports as a truncated trail.
"""

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def checkpoint_file(settings, tmp_path: Path) -> Path:
    path = tmp_path / "audit-checkpoints.jsonl"
    settings.AUDIT_CHECKPOINT_SINK = f"file:{path}"
    return path
