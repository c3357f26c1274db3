"""sentiment.data.imdb: reading aclImdb archives and folders, and refusing damaged ones."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from sentiment.data.imdb import official_count_differences, read_imdb
from sentiment.errors import DataError
from tests.builders import imdb_files, write_archive, write_tree


def test_archive_gives_every_review_with_its_columns(small_imdb_archive: Path) -> None:
    table = read_imdb(small_imdb_archive)
    assert len(table) == 5 * 12
    assert table.id[0] == "train/pos/0_7"
    assert table.split.count("train") == 24 and table.split.count("unsup") == 12 and table.split.count("test") == 24
    assert table.label_counts() == {"positive": 24, "negative": 24, "unlabeled": 12}
    train_pos = [i for i, review_id in enumerate(table.id) if review_id.startswith("train/pos/")]
    assert set(table.rating[train_pos].tolist()) == {7, 8, 9, 10}
    assert (table.rating[table.label == -1] == 0).all()
    assert table.movie[0] == "tt0000000"
    assert "<br /><br />" in table.text[0]


def test_folder_and_archive_give_the_same_table(small_imdb_archive: Path, small_imdb_folder: Path) -> None:
    from_archive, from_folder = read_imdb(small_imdb_archive), read_imdb(small_imdb_folder)
    assert from_archive.id == from_folder.id
    assert from_archive.text == from_folder.text
    assert np.array_equal(from_archive.label, from_folder.label)
    # The folder holding aclImdb/ is accepted as well as aclImdb/ itself.
    assert read_imdb(small_imdb_folder.parent).id == from_folder.id


def test_reviews_are_in_id_order_whatever_the_file_order(tmp_path: Path) -> None:
    files = imdb_files(per_folder=12)
    shuffled = dict(sorted(files.items(), key=lambda item: item[0][::-1]))
    table = read_imdb(write_archive(shuffled, tmp_path / "a.tar.gz"))
    assert [i.split("/")[-1].split("_")[0] for i in table.id[:12]] == [str(n) for n in range(12)]


def test_official_count_differences_lists_each_folder(small_imdb_archive: Path) -> None:
    differences = official_count_differences(read_imdb(small_imdb_archive))
    assert "train/pos: 12 (official 12,500)" in differences
    assert len(differences) == 5


def damaged(files: dict[str, bytes], **changes: bytes | None) -> dict[str, bytes]:
    """`files` with some paths replaced (bytes) or removed (None); keys use / for path separators."""
    result = dict(files)
    for key, value in changes.items():
        name = key.replace("__", "/")
        if value is None:
            result.pop(name)
        else:
            result[name] = value
    return result


@pytest.mark.parametrize("as_folder", [False, True], ids=["archive", "folder"])
@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"aclImdb__train__pos__3_10.txt": None}, r"train/pos/: 1 review ids missing between 0 and 10 \(first: 3\)"),
        ({"aclImdb__test__neg__0_1.txt": b"caf\xe9 au lait"}, r"test/neg/0_1.txt: line 1: bytes are not UTF-8"),
        ({"aclImdb__train__neg__0_1.txt": b"  \n"}, r"train/neg/0_1.txt: the review is empty"),
        ({"aclImdb__train__pos__12_5.txt": b"Fine."}, r"train/pos/12_5.txt: rating 5 is outside 7-10"),
        ({"aclImdb__train__unsup__12_3.txt": b"Fine."}, r"rating 3 is outside 0-0 for unsup/"),
        ({"aclImdb__train__pos__notes.txt": b"x"}, r"train/pos/notes.txt: unexpected entry in a review folder"),
        ({"aclImdb__train__urls_pos.txt": None}, r"aclImdb/train/urls_pos.txt is missing"),
        (
            {"aclImdb__test__urls_neg.txt": b"http://www.imdb.com/title/tt1/usercomments\n"},
            r"urls_neg.txt has 1 lines for 12 reviews",
        ),
    ],
)
def test_damaged_sources_are_refused_with_what_and_where(
    tmp_path: Path, small_imdb_files: dict[str, bytes], change: dict, message: str, as_folder: bool
) -> None:
    files = damaged(small_imdb_files, **change)
    source = write_tree(files, tmp_path / "x") if as_folder else write_archive(files, tmp_path / "x.tar.gz")
    with pytest.raises(DataError, match=message):
        read_imdb(source)


def test_a_missing_review_folder_is_named(tmp_path: Path, small_imdb_files: dict[str, bytes]) -> None:
    files = {name: data for name, data in small_imdb_files.items() if "/unsup/" not in name}
    with pytest.raises(DataError, match=r"aclImdb/train/unsup/ is missing"):
        read_imdb(write_archive(files, tmp_path / "x.tar.gz"))


def test_a_duplicate_review_id_is_refused(tmp_path: Path, small_imdb_files: dict[str, bytes]) -> None:
    files = small_imdb_files | {"aclImdb/train/pos/0_9.txt": b"Another review with id 0."}
    with pytest.raises(DataError, match=r"review id 0 appears twice"):
        read_imdb(write_archive(files, tmp_path / "x.tar.gz"))


def test_an_archive_of_another_layout_is_refused(tmp_path: Path, small_imdb_files: dict[str, bytes]) -> None:
    files = {name.replace("aclImdb/", "reviews/"): data for name, data in small_imdb_files.items()}
    with pytest.raises(DataError, match=r"x.tar.gz: reviews: lies outside aclImdb/"):
        read_imdb(write_archive(files, tmp_path / "x.tar.gz"))


def test_a_folder_of_another_layout_is_refused(tmp_path: Path) -> None:
    (tmp_path / "something").mkdir()
    with pytest.raises(DataError, match=r"not an aclImdb folder"):
        read_imdb(tmp_path / "something")


def test_a_missing_source_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"no such file or folder"):
        read_imdb(tmp_path / "nothing.tar.gz")


def test_a_truncated_archive_is_refused(tmp_path: Path, small_imdb_archive: Path) -> None:
    data = small_imdb_archive.read_bytes()
    truncated = tmp_path / "truncated.tar.gz"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"truncated.tar.gz: corrupt or truncated archive after member"):
        read_imdb(truncated)


def test_a_corrupt_gzip_stream_is_refused(tmp_path: Path, small_imdb_archive: Path) -> None:
    data = bytearray(small_imdb_archive.read_bytes())
    data[len(data) // 2 : len(data) // 2 + 64] = bytes(64)
    corrupt = tmp_path / "corrupt.tar.gz"
    corrupt.write_bytes(bytes(data))
    with pytest.raises(DataError, match=r"corrupt.tar.gz: corrupt or truncated archive"):
        read_imdb(corrupt)


def test_a_file_that_is_not_gzip_is_refused(tmp_path: Path) -> None:
    (tmp_path / "plain.tar.gz").write_text("just text")
    with pytest.raises(DataError, match=r"plain.tar.gz: corrupt or truncated archive"):
        read_imdb(tmp_path / "plain.tar.gz")


def test_a_gzip_that_is_not_a_tar_is_refused(tmp_path: Path) -> None:
    (tmp_path / "text.tar.gz").write_bytes(gzip.compress(b"not a tar archive at all " * 100))
    with pytest.raises(DataError, match=r"text.tar.gz: corrupt or truncated archive"):
        read_imdb(tmp_path / "text.tar.gz")


def test_a_tar_cut_at_a_member_boundary_is_caught_by_the_layout_checks(
    tmp_path: Path, small_imdb_files: dict[str, bytes]
) -> None:
    # A complete gzip of an incomplete tar: the archive reads, but reviews are missing.
    archive = write_archive(
        small_imdb_files, tmp_path / "x.tar.gz", member_filter=lambda name: "/test/pos/1" not in name
    )
    with pytest.raises(DataError, match=r"test/pos/: .* review ids missing"):
        read_imdb(archive)


def test_a_tar_cut_inside_a_complete_gzip_is_reported_as_truncated(tmp_path: Path, small_imdb_archive: Path) -> None:
    tar = gzip.decompress(small_imdb_archive.read_bytes())
    for cut in (len(tar) // 2, len(tar) // 2 + 100):
        (tmp_path / "cut.tar.gz").write_bytes(gzip.compress(tar[:cut]))
        with pytest.raises(DataError, match=r"cut.tar.gz: corrupt or truncated archive .*end-of-archive marker"):
            read_imdb(tmp_path / "cut.tar.gz")


def test_a_garbled_tar_header_inside_a_complete_gzip_is_refused(tmp_path: Path, small_imdb_archive: Path) -> None:
    tar = bytearray(gzip.decompress(small_imdb_archive.read_bytes()))
    tar[5120 : 5120 + 512] = b"x" * 512
    (tmp_path / "garbled.tar.gz").write_bytes(gzip.compress(bytes(tar)))
    with pytest.raises(DataError, match=r"garbled.tar.gz: corrupt or truncated archive .*garbled header at byte 5,120"):
        read_imdb(tmp_path / "garbled.tar.gz")


def test_the_official_archive_padding_is_accepted(tmp_path: Path, small_imdb_archive: Path) -> None:
    # Any amount of zero padding after the two end blocks (tar pads to its record size) is fine.
    tar = gzip.decompress(small_imdb_archive.read_bytes())
    (tmp_path / "padded.tar.gz").write_bytes(gzip.compress(tar + bytes(200_000)))
    assert len(read_imdb(tmp_path / "padded.tar.gz")) == 60


def test_nested_entries_in_review_folders_are_refused(tmp_path: Path, small_imdb_files: dict[str, bytes]) -> None:
    files = small_imdb_files | {"aclImdb/train/pos/sub/99_9.txt": b"Nested review."}
    with pytest.raises(DataError, match=r"x.tar.gz: aclImdb/train/pos/sub.*unexpected"):
        read_imdb(write_archive(files, tmp_path / "x.tar.gz"))
    with pytest.raises(DataError, match=r"train/pos/sub: unexpected entry in a review folder"):
        read_imdb(write_tree(files, tmp_path / "tree"))


def test_a_dangling_link_in_a_review_folder_is_a_clear_error(tmp_path: Path, small_imdb_folder: Path) -> None:
    (small_imdb_folder / "train" / "pos" / "12_9.txt").symlink_to(tmp_path / "nowhere.txt")
    with pytest.raises(DataError, match=r"train/pos/12_9.txt: unexpected entry"):
        read_imdb(small_imdb_folder)


def test_an_unreadable_review_is_a_clear_error(small_imdb_folder: Path) -> None:
    review = small_imdb_folder / "train" / "neg" / "0_1.txt"
    review.unlink()
    review.mkdir()
    with pytest.raises(DataError, match=r"train/neg/0_1.txt: unexpected entry"):
        read_imdb(small_imdb_folder)
