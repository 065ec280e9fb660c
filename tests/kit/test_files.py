"""Durable writes: whole file or the old one, exact permissions for secrets, nothing left behind."""

import os

from kit.files import safe_filename, write_durably


def test_write_replaces_whole_and_leaves_no_temp_file(tmp_path):
    target = tmp_path / "sub" / "doc.csv"
    write_durably(target, b"old")
    write_durably(target, "new text")
    assert target.read_text() == "new text"
    assert sorted(p.name for p in target.parent.iterdir()) == ["doc.csv"]


def test_secret_mode_is_exact_whatever_the_umask(tmp_path):
    old = os.umask(0o077)
    try:
        path = write_durably(tmp_path / "pins.json", "{}", mode=0o600)
    finally:
        os.umask(old)
    assert oct(path.stat().st_mode & 0o777) == "0o600"


def test_large_data_is_written_in_full(tmp_path):
    data = os.urandom(5 * 1024 * 1024)
    assert write_durably(tmp_path / "big.bin", data).read_bytes() == data


def test_names_from_outside_cannot_escape_their_folder():
    assert safe_filename("../../etc/passwd") == "passwd"
    assert safe_filename("Gäste Liste (v2).csv") == "G_ste_Liste_v2_.csv"
    assert safe_filename("///") == "document"
