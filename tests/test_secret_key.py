"""The cookie-signing key kept in the data directory: made once, whole, readable only by its owner, never empty."""

from __future__ import annotations

import stat
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from pydantic import SecretStr
from typer.testing import CliRunner

from callcheck.cli import app
from callcheck.config import MIN_SECRET_KEY_CHARS, Settings
from callcheck.runtime import session_secret


def _key_of(data_dir: str) -> str:
    return session_secret(Settings(data_dir=Path(data_dir)))


def test_processes_starting_together_agree_on_one_whole_key(tmp_path: Path) -> None:
    # Four processes race to make the key in each of several fresh directories: every one reads the same full key.
    with ProcessPoolExecutor(max_workers=4) as pool:
        for trial in range(8):
            data_dir = tmp_path / f"trial{trial}"
            keys = list(pool.map(_key_of, [str(data_dir)] * 4))
            assert len(set(keys)) == 1 and len(keys[0]) >= MIN_SECRET_KEY_CHARS, keys
            assert (data_dir / "secret_key").read_text() == keys[0]
            assert sorted(p.name for p in data_dir.iterdir()) == ["secret_key"]  # nothing left aside


def test_a_loosened_key_file_is_made_owner_only_again(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    key = session_secret(settings)
    path = tmp_path / "secret_key"
    path.chmod(0o644)
    assert session_secret(settings) == key
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_an_empty_or_short_key_file_is_refused_not_used(tmp_path: Path) -> None:
    path = tmp_path / "secret_key"
    for content in ("", "short\n"):
        path.write_text(content)
        result = CliRunner().invoke(app, ["serve", "--port", "1"], env={"CALLCHECK_DATA_DIR": str(tmp_path)})
        assert result.exit_code == 2
        assert f"The cookie-signing key in {path} is too short to be safe" in result.output
        assert "Traceback" not in result.output
    # A configured key stands without any file.
    path.unlink()
    configured = Settings(data_dir=tmp_path, secret_key=SecretStr("k" * 40))
    assert session_secret(configured) == "k" * 40 and not path.exists()
