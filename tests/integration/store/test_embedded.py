"""chDB's limits, made explicit: one open data directory per process, one process per directory."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from consumers.store import StoreError, StoreUrlError, open_store
from consumers.store.queries import count_rows

_OPEN_IN_CHILD = (
    "import sys\n"
    "from consumers.store import StoreError, open_store\n"
    "try:\n"
    "    open_store(sys.argv[1]).close()\n"
    "except StoreError as exc:\n"
    "    print(exc)\n"
    "    sys.exit(3)\n"
)


def _open_in_child(url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", _OPEN_IN_CHILD, url], capture_output=True, text=True,
                          timeout=120, cwd=Path(__file__).parents[3], check=False)


def test_a_second_directory_in_one_process_is_refused_until_the_first_closes(tmp_path: Path) -> None:
    first = open_store(f"chdb://{tmp_path / 'a'}")
    try:
        with pytest.raises(StoreError, match="one open data directory per process"):
            open_store(f"chdb://{tmp_path / 'b'}")
    finally:
        first.close()
    with open_store(f"chdb://{tmp_path / 'b'}") as second:
        assert second.migrate()


@pytest.mark.slow
def test_another_process_cannot_open_a_held_directory(chdb_url: str) -> None:
    with open_store(chdb_url) as store:
        store.migrate()
        held = _open_in_child(chdb_url)
        assert held.returncode == 3, held.stderr
        assert "held by process" in held.stdout
    assert _open_in_child(chdb_url).returncode == 0


def test_readonly_needs_an_existing_store(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="no chDB store"):
        open_store(f"chdb://{tmp_path / 'missing'}", readonly=True)


def test_data_survives_close_and_reopen(chdb_url: str) -> None:
    with open_store(chdb_url) as store:
        store.migrate()
        store.insert("labels", [{"image_id": "img-1", "annotator": "ana"}])
    with open_store(chdb_url, readonly=True) as store:
        assert count_rows(store, "labels") == 1


@pytest.mark.parametrize("url", ["chdb://relative/path", "chdb:relative", "chdb://host/abs"])
def test_embedded_urls_must_be_absolute_paths(url: str) -> None:
    with pytest.raises(StoreUrlError, match="chdb:///absolute/path"):
        open_store(url)
