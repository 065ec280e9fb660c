"""Reference documents: a preview changes nothing, an import is versioned, a bad file changes nothing."""

import pytest

from kit.documents import DocumentError, DocumentKind, ImportReport, current_documents, import_document


def word_importer(conn, data, filename, config, progress):
    """A tiny importer in the shape every feature's has: one word per line into a table."""
    conn.execute("CREATE TABLE IF NOT EXISTS test_words (word TEXT PRIMARY KEY)")
    report = ImportReport()
    existing = {r[0] for r in conn.execute("SELECT word FROM test_words")}
    conn.execute("DELETE FROM test_words")
    for n, line in enumerate(data.decode("utf-8").splitlines(), 1):
        word = line.strip()
        if not word.isalpha():
            report.skipped.append((n, f"{word!r} is not a word"))
            continue
        conn.execute("INSERT OR IGNORE INTO test_words VALUES (?)", (word,))
        if word in existing:
            report.unchanged += 1
        else:
            report.imported += 1
    if not report.imported and not report.unchanged:
        raise DocumentError(f"{filename}: no words at all")
    return report


KINDS = {"test.words": DocumentKind("test.words", "Words", word_importer)}


def words(db):
    if not db.scalar("SELECT 1 FROM sqlite_master WHERE name='test_words'"):
        return set()
    return {r[0] for r in db.query("SELECT word FROM test_words")}


def test_preview_then_import_then_newer_version(config, db):
    _, preview = import_document(config, db, "test.words", b"apple\npear\n42\n", "w.txt", dry_run=True, kinds=KINDS)
    assert preview.imported == 2 and preview.skipped == [(3, "'42' is not a word")]
    assert words(db) == set()  # the preview changed nothing
    record, report = import_document(config, db, "test.words", b"apple\npear\n", "w.txt", kinds=KINDS)
    assert record.version == 1 and words(db) == {"apple", "pear"}
    record, report = import_document(config, db, "test.words", b"apple\nplum\n", "w2.txt", source="hq", kinds=KINDS)
    assert record.version == 2 and report.unchanged == 1 and report.imported == 1
    assert words(db) == {"apple", "plum"}
    current = current_documents(db)
    assert [(d["kind"], d["version"], d["filename"], d["source"]) for d in current] == [("test.words", 2, "w2.txt", "hq")]
    assert (config.data_dir / "documents" / "test.words").is_dir()


def test_a_document_that_fails_changes_nothing(config, db):
    import_document(config, db, "test.words", b"apple\n", "w.txt", kinds=KINDS)
    with pytest.raises(DocumentError, match="no words"):
        import_document(config, db, "test.words", b"1\n2\n", "bad.txt", kinds=KINDS)
    assert words(db) == {"apple"}
    assert [d["version"] for d in current_documents(db)] == [1]


def test_unknown_kind_is_refused(config, db):
    with pytest.raises(DocumentError, match="unknown document kind"):
        import_document(config, db, "nope", b"x", "x", kinds=KINDS)
