"""The embedded default, when it cannot start, says why and how to use another Postgres."""

from __future__ import annotations

from pathlib import Path

import pytest

from tidebase import Tidebase
from tidebase.errors import DatabaseUnavailable


def test_an_embedded_server_that_cannot_start_explains_the_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the data directory should go")
    monkeypatch.delenv("TIDEBASE_DATABASE_URL", raising=False)
    monkeypatch.setenv("TIDEBASE_HOME", str(blocker))
    tide = Tidebase()
    with pytest.raises(DatabaseUnavailable) as info:
        tide.run("wf", lambda run, input: 1, run_id="r")
    message = str(info.value)
    assert "could not start the embedded PostgreSQL" in message
    assert "TIDEBASE_DATABASE_URL" in message and "TIDEBASE_HOME" in message
