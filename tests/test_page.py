"""Where a report page may be written, and that it lands whole or not at all."""

from pathlib import Path

import pytest

from aetool.errors import AetoolError
from aetool.report.page import check_page_folder, staged_page


def write_page(folder: Path, text: str) -> None:
    (folder / "figures").mkdir(parents=True)
    (folder / "figures" / f"{text}.png").write_text(text)
    for name in ("index.html", "README.md", "numbers.json"):
        (folder / name).write_text(text)


def test_a_folder_holding_someone_elses_page_files_is_refused_and_others_are_fine(tmp_path):
    check_page_folder(tmp_path / "new", numbers="numbers.json")
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("mine")
    check_page_folder(tmp_path / "notes", numbers="numbers.json")  # nothing a page writes: left alone
    (tmp_path / "project").mkdir()
    (tmp_path / "project" / "README.md").write_text("my project")
    with pytest.raises(
        AetoolError, match=r"holds README\.md of something else \(no numbers\.json of an earlier page\)"
    ):
        check_page_folder(tmp_path / "project", numbers="numbers.json")
    (tmp_path / "a-file").write_text("")
    with pytest.raises(AetoolError, match="it is a file"):
        check_page_folder(tmp_path / "a-file", numbers="numbers.json")


def test_a_page_replaces_an_earlier_one_whole_and_leaves_other_files(tmp_path):
    out = tmp_path / "report"
    write_page(out, "old")
    (out / "anomaly").mkdir()
    with staged_page(out, numbers="numbers.json") as stage:
        write_page(stage, "new")
        assert (out / "index.html").read_text() == "old"  # nothing moves before the block ends
    assert (out / "index.html").read_text() == "new" and (out / "numbers.json").read_text() == "new"
    assert [p.name for p in (out / "figures").iterdir()] == ["new.png"]  # the old figures went with the old page
    assert (out / "anomaly").is_dir() and sorted(p.name for p in tmp_path.iterdir()) == ["report"]


@pytest.mark.parametrize("stop", [KeyboardInterrupt, RuntimeError])
def test_an_interrupted_page_leaves_the_earlier_one_as_it_was_and_no_scratch(tmp_path, stop):
    out = tmp_path / "report"
    write_page(out, "old")
    with pytest.raises(stop), staged_page(out, numbers="numbers.json") as stage:
        (stage / "figures").mkdir()
        (stage / "figures" / "half.png").write_text("half")
        raise stop
    assert (out / "index.html").read_text() == "old" and [p.name for p in (out / "figures").iterdir()] == ["old.png"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report"]
    with pytest.raises(KeyboardInterrupt), staged_page(tmp_path / "fresh", numbers="numbers.json"):
        raise KeyboardInterrupt
    assert not (tmp_path / "fresh").exists()
