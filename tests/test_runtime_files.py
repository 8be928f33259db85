"""aetool.runtime.files: inputs from files, folders and globs; output plans; atomic writes."""

from __future__ import annotations

import errno
import io
import os
import signal
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import save
from PIL import Image

from aetool.errors import AetoolError, DataError
from aetool.runtime import files, signals


@pytest.fixture
def tree(tmp_path, monkeypatch) -> Path:
    """digits/{a.png, b.jpg, notes.txt, a.denoised.png, sub/c.png}, with the working folder at tmp_path."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "digits" / "sub").mkdir(parents=True)
    for name in ("a.png", "b.jpg", "a.denoised.png", "sub/c.png"):
        save(tmp_path / "digits" / name, np.zeros((4, 4), np.uint8))
    (tmp_path / "digits" / "notes.txt").write_text("not an image")
    return tmp_path


def labels(inputs):
    return sorted(Path(i.label).as_posix() for i in inputs)


def test_folder_without_and_with_recursion(tree):
    found, failures = files.collect(["digits"], skip=".denoised")
    assert labels(found) == ["digits/a.png", "digits/b.jpg"] and not failures
    found, _ = files.collect(["digits"], recursive=True, skip=".denoised")
    assert labels(found) == ["digits/a.png", "digits/b.jpg", "digits/sub/c.png"]


def test_a_recursive_scan_follows_links_to_folders_once_each_and_never_loops(tree):
    elsewhere = tree / "elsewhere"
    elsewhere.mkdir()
    save(elsewhere / "d.png", np.zeros((4, 4), np.uint8))
    (tree / "digits" / "linked").symlink_to(elsewhere)  # data/cats -> /mnt/disk/cats
    (tree / "digits" / "linked again").symlink_to(elsewhere)
    (tree / "digits" / "sub" / "up").symlink_to(tree / "digits")  # a loop
    found, failures = files.collect(["digits"], recursive=True, skip=".denoised")
    assert labels(found) == ["digits/a.png", "digits/b.jpg", "digits/linked/d.png", "digits/sub/c.png"]
    assert not failures
    found, _ = files.collect(["digits"])
    assert labels(found) == ["digits/a.png", "digits/b.jpg"]


def test_a_symbolic_link_to_nothing_in_a_folder_is_named_not_passed_over(tree):
    """It was left out in silence (named alone, it is "no such file")."""
    (tree / "digits" / "sub" / "gone.png").symlink_to(tree / "nothere.png")
    (tree / "digits" / "sub" / "l1.png").symlink_to("l2.png")  # a loop: said as one, not as a missing target
    (tree / "digits" / "sub" / "l2.png").symlink_to("l1.png")
    found, failures = files.collect(["digits"], recursive=True, skip=".denoised")
    assert labels(found) == ["digits/a.png", "digits/b.jpg", "digits/sub/c.png"]
    assert [(Path(f.label).name, f.error) for f in failures] == [
        ("gone.png", f"is a symbolic link to {tree / 'nothere.png'}, which does not exist"),
        ("l1.png", "is a loop of symbolic links"),
        ("l2.png", "is a loop of symbolic links"),
    ]


def test_macos_appledouble_files_are_left_out_quietly_as_ds_store_is(tree):
    """A folder copied from a Mac holds ``._a.png`` beside ``a.png``: each was a "not an image" line."""
    (tree / "digits" / "._a.png").write_bytes(files.APPLE_DOUBLE + b"\x00\x02" + bytes(80))
    save(tree / "digits" / "._real.png", np.zeros((4, 4), np.uint8))  # a real image of such a name stays
    found, failures = files.collect(["digits"], skip=".denoised")
    assert labels(found) == ["digits/._real.png", "digits/a.png", "digits/b.jpg"] and not failures


def test_a_recursive_glob_never_follows_a_loop_so_each_image_comes_once(tree):
    """``glob.glob`` followed ``loop -> ..`` until paths were 40 links deep: a trial's 172 images came 6,973 times,
    in training and validation alike."""
    (tree / "digits" / "sub" / "up").symlink_to(tree / "digits")  # one: two made glob.glob walk 2^40 paths
    found, failures = files.collect(["digits/**/*.png"], skip=".denoised")
    assert labels(found) == ["digits/a.png", "digits/sub/c.png"] and not failures
    found, _ = files.collect([str(tree / "digits" / "**" / "c.png")])
    assert [Path(i.label) for i in found] == [tree / "digits" / "sub" / "c.png"]


def test_a_subfolder_that_cannot_be_read_is_named_not_passed_over(tree, monkeypatch):
    save(tree / "digits" / "locked" / "d.png", np.zeros((4, 4), np.uint8))
    real_scandir = os.scandir

    def scandir(path="."):  # root reads every folder; a user meets a disk's lost+found, mode 700
        if str(path).endswith("locked"):
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    found, failures = files.collect(["digits"], recursive=True, skip=".denoised")
    assert labels(found) == ["digits/a.png", "digits/b.jpg", "digits/sub/c.png"]
    assert failures == [files.Failure("digits/locked", "cannot read this folder: Permission denied")]
    with pytest.warns(UserWarning, match=r"^--data: digits/locked: cannot read this folder: Permission denied; its"):
        assert len(files.collect_set("digits", named="--data")) == 3
    with pytest.raises(DataError, match=r"^--data: cannot read this folder: Permission denied$"):
        files.collect_set("digits/locked", named="--data")


def test_folder_scans_skip_what_aetool_writes_and_globs_what_the_command_writes(tree):
    save(tree / "digits" / "b.noisy.png", np.zeros((4, 4), np.uint8))
    save(tree / "digits" / "c.raw.heatmap.png", np.zeros((4, 4), np.uint8))
    said = r"^digits: skipped 2 images named like aetool's outputs \(b.noisy.png, c.raw.heatmap.png\), as folder "
    globs = r"globs take them: 'digits/\*.noisy.\*' 'digits/\*.heatmap.\*'$"  # not the first one's alone
    with pytest.warns(UserWarning, match=said + r"scans do; " + globs):
        found, _ = files.collect(["digits"], skip=".denoised")  # its own a.denoised.png skipped without a word
    assert labels(found) == [
        "digits/a.png",
        "digits/b.jpg",
    ]  # no command's output is an input of the next one on the folder
    save(tree / "noisy" / "a.noisy.png", np.zeros((4, 4), np.uint8))  # add-noise → denoise of one folder (trial 71)
    found, failures = files.collect(["noisy"], skip=".denoised")
    assert not found and failures == [
        files.Failure(
            "noisy",
            "no images found in this folder; skipped 1 image named like aetool's outputs (a.noisy.png), as folder "
            "scans do; a glob takes them: 'noisy/*.noisy.*'",
        )
    ]
    found, _ = files.collect(["digits/*.png"], skip=".denoised")
    assert labels(found) == ["digits/a.png", "digits/b.noisy.png", "digits/c.raw.heatmap.png"]
    found, _ = files.collect(["digits/a.denoised.png"])  # named: taken as it is
    assert labels(found) == ["digits/a.denoised.png"]


def test_globs_files_and_duplicates(tree):
    found, failures = files.collect(["digits/*.png", "digits/a.png", "digits/notes.txt"], skip=".denoised")
    assert labels(found) == ["digits/a.png", "digits/notes.txt"] and not failures


def test_missing_things_are_failures_not_crashes(tree):
    (tree / "empty").mkdir()
    found, failures = files.collect(["nope.png", "empty", "*.gif"])
    assert [f.label for f in failures] == ["empty", "*.gif"]
    assert "no images found" in failures[0].error and "matched no images" in failures[1].error
    assert labels(found) == ["nope.png"]  # named explicitly: reading it will say "no such file"


def test_folder_with_only_subfolders_suggests_recursion(tree):
    found, failures = files.collect(["digits/.."])
    assert not found and "use -r" in failures[0].error


def test_default_outputs_go_beside_the_inputs(tree):
    found, _ = files.collect(["digits"], skip=".denoised")
    jobs, failures = files.plan(found, output=None, suffix=".denoised")
    assert not failures
    assert sorted(j.target.as_posix() for j in jobs) == ["digits/a.denoised.png", "digits/b.denoised.png"]
    assert {j.fmt for j in jobs} == {"PNG"}


def test_one_file_to_a_named_file_takes_its_format(tree):
    jobs, _ = files.plan(files.collect(["digits/a.png"])[0], output="out/x.jpg", suffix=".denoised")
    assert jobs[0].target == Path("out/x.jpg") and jobs[0].fmt == "JPEG"
    with pytest.raises(AetoolError, match="contradicts"):
        files.plan(files.collect(["digits/a.png"])[0], output="out/x.jpg", suffix=".denoised", fmt="png")


def test_a_folder_output_mirrors_the_input_folders(tree):
    found, _ = files.collect(["digits"], recursive=True, skip=".denoised")
    jobs, _ = files.plan(found, output="out", suffix=".denoised", fmt="webp")
    assert sorted(j.target.as_posix() for j in jobs) == ["out/a.webp", "out/b.webp", "out/sub/c.webp"]


def test_a_name_without_suffix_is_a_folder(tree):
    jobs, _ = files.plan(files.collect(["digits/a.png"])[0], output="result", suffix=".denoised")
    assert jobs[0].target == Path("result/a.png")


def test_inputs_are_never_overwritten_without_force(tree):
    found, _ = files.collect(["digits/a.png"])
    jobs, failures = files.plan(found, output="digits/a.png", suffix=".denoised")
    assert not jobs and failures[0].error == "refusing to overwrite input digits/a.png (use --force, or another -o)"
    _jobs, failures = files.plan(
        files.collect(["digits/a.png", "digits/a.denoised.png"])[0], output=None, suffix=".denoised"
    )
    assert failures[0].error == "refusing to overwrite input digits/a.denoised.png (use --force, or -o)"
    jobs, failures = files.plan(found, output="digits/a.png", suffix=".denoised", force=True)
    assert jobs[0].target == Path("digits/a.png") and not failures


def test_one_input_output_cannot_overwrite_another_input(tree):
    found, _ = files.collect(["digits/a.png", "digits/a.denoised.png"])
    _jobs, failures = files.plan(found, output=None, suffix=".denoised")
    assert [f.label for f in failures] == ["digits/a.png"]


def test_two_inputs_writing_one_output_fail_the_second(tree):
    save(tree / "digits/sub/a.png", np.zeros((4, 4), np.uint8))
    found, _ = files.collect(["digits/a.png", "digits/sub/a.png"])
    jobs, failures = files.plan(found, output="out", suffix=".denoised")
    assert len(jobs) == 1 and "already the output of digits/a.png" in failures[0].error


def test_an_input_that_does_not_open_leaves_its_output_name_to_the_next(tree):
    (tree / "digits" / "x.png").write_text("not an image")  # x.png and x.jpg both want out/x.png
    save(tree / "digits" / "x.jpg", np.zeros((4, 4), np.uint8))
    found, _ = files.collect(["digits/x.png", "digits/x.jpg"])
    jobs, failures = files.plan(found, output="out", suffix=".denoised")
    assert not failures and [job.target for job in jobs] == [Path("out/x.png")] * 2  # the .jpg failed, unwritten
    later = files.collect(["digits/x.jpg", "digits/x.png"])[0]  # the broken one second: its own reason, not a clash
    jobs, failures = files.plan(later, output="out", suffix=".denoised")
    assert not failures and [job.target for job in jobs] == [Path("out/x.png")] * 2
    (tree / "digits" / "x.png").unlink()
    save(tree / "digits" / "x.png", np.zeros((4, 4), np.uint8))  # both readable: the second fails, as before
    jobs, failures = files.plan(found, output="out", suffix=".denoised")
    assert len(jobs) == 1 and failures[0].error == "out/x.png is already the output of digits/x.png"


def test_an_input_whose_pixels_are_cut_short_leaves_its_output_name_to_the_next(tree):
    """A JPEG whose header is whole but whose data ends halfway claimed x.png's output name, so the good image was
    refused for a file nothing wrote (trial 86)."""
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64), np.uint8)).save(buffer, "JPEG")
    (tree / "digits" / "x.jpg").write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    save(tree / "digits" / "x.png", np.zeros((4, 4), np.uint8))
    found, _ = files.collect(["digits/x.jpg", "digits/x.png"])
    jobs, failures = files.plan(found, output="out", suffix=".denoised")
    assert not failures and [job.label for job in jobs] == ["digits/x.jpg", "digits/x.png"]


def test_stdin_goes_to_stdout_unless_told_otherwise(tree):
    stdin = [files.Input("-", b"...")]
    assert files.plan(stdin, output=None, suffix=".denoised")[0][0].target is None
    assert files.plan(stdin, output="-", suffix=".denoised")[0][0].target is None
    assert files.plan(stdin, output="x.bmp", suffix=".denoised")[0][0].target == Path("x.bmp")


def test_stdout_takes_one_input(tree):
    found, _ = files.collect(["digits"])
    with pytest.raises(AetoolError, match="exactly one input"):
        files.plan(found, output="-", suffix=".denoised")


def test_atomic_write_replaces_whole_files(tmp_path):
    target = tmp_path / "deep" / "out.png"
    files.atomic_write(target, b"first")
    files.atomic_write(target, b"second")
    assert target.read_bytes() == b"second"
    assert os.listdir(target.parent) == ["out.png"]
    assert target.stat().st_mode & 0o777 == 0o666 & ~_umask()


def test_atomic_write_leaves_nothing_when_it_fails(tmp_path, monkeypatch):
    def broken_replace(src, dst):
        raise OSError(28, "No space left on device", str(src))

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(AetoolError, match=rf"^cannot write {tmp_path / 'out.png'}: No space left on device$"):
        files.atomic_write(tmp_path / "out.png", b"data")
    assert os.listdir(tmp_path) == []


def test_a_set_of_files_is_written_whole_or_not_at_all(tmp_path):
    def broken(path):
        raise OSError(5, "Input/output error")

    (tmp_path / "b.onnx").write_bytes(b"old")
    with pytest.raises(AetoolError, match=rf"cannot write {tmp_path / 'c.onnx'}: Input/output error"):
        files.write_files({tmp_path / "a.onnx": b"new", tmp_path / "b.onnx": b"new", tmp_path / "c.onnx": broken})
    assert sorted(os.listdir(tmp_path)) == ["b.onnx"] and (tmp_path / "b.onnx").read_bytes() == b"old"
    files.write_files({tmp_path / "a.onnx": b"new", tmp_path / "b.onnx": lambda path: path.write_bytes(b"new")})
    assert (tmp_path / "a.onnx").read_bytes() == (tmp_path / "b.onnx").read_bytes() == b"new"


def test_files_a_new_set_replaces_go_only_when_it_is_written(tmp_path):
    def broken(path):
        raise OSError(28, "No space left on device")

    (tmp_path / "old.onnx").write_bytes(b"old export")
    with pytest.raises(AetoolError, match="No space left on device"):
        files.write_files({tmp_path / "new.pt": broken}, replacing=[tmp_path / "old.onnx"])
    assert os.listdir(tmp_path) == ["old.onnx"]
    files.write_files({tmp_path / "new.pt": b"new"}, replacing=[tmp_path / "old.onnx", tmp_path / "absent.onnx"])
    assert os.listdir(tmp_path) == ["new.pt"]
    (tmp_path / "stuck").mkdir()  # a file that cannot be removed (unlink refuses a folder)
    with pytest.raises(AetoolError, match=rf"^cannot remove {tmp_path / 'stuck'}, which the new files replace: "):
        files.write_files({tmp_path / "newer.pt": b"newer"}, replacing=[tmp_path / "stuck"])
    assert sorted(os.listdir(tmp_path)) == ["new.pt", "stuck"]


def test_folders_made_for_a_set_that_fails_are_removed_again(tmp_path):
    def broken(path):
        raise OSError(27, "File too large")

    (tmp_path / "site").mkdir()
    with pytest.raises(AetoolError, match="File too large"):
        files.write_files({tmp_path / "site" / "a" / "b" / "x.bin": b"x", tmp_path / "site" / "c" / "y.bin": broken})
    assert os.listdir(tmp_path) == ["site"] and os.listdir(tmp_path / "site") == []
    files.write_files({tmp_path / "new" / "x.bin": b"x"})
    assert (tmp_path / "new" / "x.bin").read_bytes() == b"x"


def test_a_file_name_of_the_longest_length_allowed_is_written(tmp_path):
    """Its temporary's name is cut to the same limit (".NAME.XXXXXXXX.part" adds 15 bytes)."""
    longest = tmp_path / ("é" * 125 + ".png")  # 254 bytes in UTF-8
    files.atomic_write(longest, b"data")
    assert longest.read_bytes() == b"data" and os.listdir(tmp_path) == [longest.name]


def test_a_file_name_longer_than_allowed_is_named_whole_in_the_error(tmp_path):
    """The temporary's cut name stood in for it ("…: File name too long: …/LLLL", a third name)."""
    target = tmp_path / ("L" * 256 + ".png")
    with pytest.raises(AetoolError) as refused:
        files.atomic_write(target, b"data")
    assert str(refused.value) == f"cannot write {target}: File name too long" and os.listdir(tmp_path) == []


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_an_image_file_name_for_many_inputs_is_a_usage_error(tree):
    found, _ = files.collect(["digits"])
    with pytest.raises(AetoolError, match="names one image file"):
        files.plan(found, output="out.png", suffix=".denoised")


def test_stale_temporaries_of_a_killed_writer_go_with_the_next_write_into_their_folder(tmp_path):
    stale = [tmp_path / ".a.png.abcd1234.part", tmp_path / ".model.onnx.x_9z8y7w.part"]
    fresh = tmp_path / ".b.png.0123abcd.part"  # a writer at work beside us
    theirs = [tmp_path / "notes.part", tmp_path / ".hidden.part", tmp_path / ".c.png.ABCDEFGH.part"]
    hour_ago = time.time() - 3600
    for path in [*stale, fresh, *theirs]:
        path.write_bytes(b"")
        if path is not fresh:
            os.utime(path, (hour_ago, hour_ago))
    files.atomic_write(tmp_path / "out.png", b"data")
    assert not any(path.exists() for path in stale)
    assert fresh.exists() and all(path.exists() for path in theirs)


def test_ctrl_c_while_a_temporary_is_created_leaves_none_and_still_stops(tmp_path, monkeypatch):
    real_open = os.open

    def open_then_interrupt(*args, **kwargs):
        handle = real_open(*args, **kwargs)
        os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C right after the file exists, before aetool records it
        return handle

    monkeypatch.setattr(os, "open", open_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        files.write_files({tmp_path / "a.png": b"a", tmp_path / "b.png": b"b"})
    monkeypatch.undo()
    assert os.listdir(tmp_path) == []


def test_ctrl_c_between_two_renames_finishes_the_set_then_stops(tmp_path, monkeypatch):
    real_replace = os.replace

    def replace_then_interrupt(source, target):
        real_replace(source, target)
        os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(os, "replace", replace_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        files.write_files({tmp_path / "model.onnx": b"m", tmp_path / "model.decoder.onnx": b"d"})
    monkeypatch.undo()
    assert sorted(os.listdir(tmp_path)) == ["model.decoder.onnx", "model.onnx"]


def test_ctrl_c_during_a_batch_stops_it_with_exit_130_never_a_per_image_error(cli, tmp_path, monkeypatch):
    from aetool.runtime import images

    for index in range(6):
        save(tmp_path / "in" / f"{index}.png", np.zeros((28, 28), np.uint8))
    real_encode, calls = images.encode, []

    def encode_then_interrupt(pixels, fmt, **options):
        calls.append(fmt)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real_encode(pixels, fmt, **options)

    monkeypatch.setattr(images, "encode", encode_then_interrupt)
    result = cli("denoise", "in", "-o", "out", "--json")
    assert result.exit_code == 130
    assert result.stderr.strip().splitlines() == ["aetool: error: interrupted after 2 of 6 images (2 written)"]
    assert sorted(os.listdir(tmp_path / "out")) == ["0.png", "1.png"] and len(calls) == 3


def test_a_write_error_names_the_file_a_temporary_stands_for():
    from aetool.errors import os_reason

    err = OSError(30, "Read-only file system", "/mnt/ro/.model.onnx.ab12cd34.part")
    assert os_reason(err) == "Read-only file system: /mnt/ro/model.onnx"
    assert os_reason(OSError(13, "Permission denied", "/home/u/.config")) == "Permission denied: /home/u/.config"


def test_no_usable_temporary_folder_says_to_set_tmpdir():
    import tempfile

    from aetool.errors import os_reason

    try:
        tempfile.tempdir = None
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(tempfile, "_candidate_tempdir_list", lambda: ["/nonexistent"])
            tempfile.gettempdir()
    except FileNotFoundError as err:
        assert os_reason(err).endswith(
            "; set TMPDIR to a folder this user can write (PyTorch and the exporter need one)"
        )
    else:
        pytest.fail("a temporary folder was found where none exists")
    finally:
        tempfile.tempdir = None


def test_a_symbolic_link_to_nothing_in_the_way_of_an_output_folder_is_named_as_such(tmp_path):
    (tmp_path / "out").symlink_to("nowhere")
    with pytest.raises(AetoolError) as refused:
        files.write_files({tmp_path / "out" / "x.png": b"x"})
    assert str(refused.value) == (
        f"cannot write {tmp_path / 'out' / 'x.png'}: a symbolic link to nowhere, which does not exist: {tmp_path / 'out'}"
    )
    assert (tmp_path / "out").is_symlink() and not (tmp_path / "nowhere").exists()


def test_a_file_in_the_way_of_an_output_folder_is_named_as_such(tmp_path):
    (tmp_path / "afile").write_text("mine")
    with pytest.raises(AetoolError, match=r"cannot write .*out\.png: Not a directory: .*afile$"):
        files.write_files({tmp_path / "afile" / "sub" / "out.png": b"x"})
    with pytest.raises(AetoolError, match=r"cannot write into .*afile/sub: .*afile is a file"):
        files.check_folder(tmp_path / "afile" / "sub")
    with pytest.raises(AetoolError, match=r"afile is a file"):
        files.check_folder(tmp_path / "afile")
    files.check_folder(tmp_path / "new" / "folder")  # missing folders are fine: they are made when written
    assert (tmp_path / "afile").read_text() == "mine" and not (tmp_path / "new").exists()


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="tells the probe's descriptor by its /proc path")
def test_a_full_disk_is_found_before_the_work_though_it_still_takes_an_empty_file(tmp_path, monkeypatch):
    """A trial's full tmpfs passed the check (an empty file needs an inode, not a block), then failed all 200
    images one by one."""
    real_write = os.write

    def no_space(handle, data):
        if os.readlink(f"/proc/self/fd/{handle}").startswith(str(tmp_path)):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(handle, data)

    monkeypatch.setattr(os, "write", no_space)
    with pytest.raises(AetoolError, match=r"^-o out/: cannot write into .*out: No space left on device \(in "):
        files.check_folder(tmp_path / "out", named="-o out/")
    assert list(tmp_path.iterdir()) == []  # the probe removed


def test_heatmaps_folder_errors_name_the_heatmaps_option(tmp_path):
    """They named ``-o``, which detect does not have."""
    from aetool.runtime.detect import plan_detection

    save(tmp_path / "a.png", np.zeros((8, 8), np.uint8))
    (tmp_path / "maps").symlink_to(tmp_path / "gone")
    found, _ = files.collect([str(tmp_path / "a.png")])
    with pytest.raises(AetoolError, match=r"^--heatmaps .*maps/: .*maps is a symbolic link to .*gone, which is not"):
        plan_detection(found, heatmaps=str(tmp_path / "maps"))


def test_a_folder_that_cannot_be_written_is_found_before_the_work(tmp_path, monkeypatch):
    locked = tmp_path / "locked"
    locked.mkdir()
    real_open = os.open

    def permission_denied(path, *args, **kwargs):  # a folder without write permission, even for root
        if Path(path).parent == locked:
            raise OSError(errno.EACCES, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", permission_denied)
    with pytest.raises(AetoolError, match=r"cannot write into .*locked/page: Permission denied \(in .*locked\)"):
        files.check_folder(locked / "page")


# ---- trial 84: mutants of files.py the tests above let live, each killed below ----


@pytest.fixture
def plain_tree(tmp_path, monkeypatch) -> Path:
    """digits/{a.png, b.jpg, sub/c.png} and nothing else, with the working folder at tmp_path."""
    monkeypatch.chdir(tmp_path)
    for name in ("a.png", "b.jpg", "sub/c.png"):
        save(tmp_path / "digits" / name, np.zeros((4, 4), np.uint8))
    return tmp_path


def test_a_recursive_scan_of_a_folder_without_images_does_not_suggest_r(plain_tree):
    """With -r already given, "no images found in this folder or its subfolders" must not add "(use -r for
    subfolders)": the user did, and would be told to do what they did."""
    (plain_tree / "empty" / "sub").mkdir(parents=True)
    found, failures = files.collect(["empty"], recursive=True)
    assert not found and failures == [files.Failure("empty", "no images found in this folder or its subfolders")]


def test_a_file_named_twice_keeps_the_label_it_was_first_named_by(plain_tree):
    """digits/a.png named as itself and again as ./digits/a.png is one input, labelled as first named (its
    failures and outputs are reported under that name), not as the last spelling."""
    found, _ = files.collect(["digits/a.png", "./digits/a.png"])
    assert [item.label for item in found] == ["digits/a.png"]


def test_an_appledouble_name_that_cannot_be_read_is_kept_to_fail_with_its_reason(plain_tree, monkeypatch):
    """A ``._x.png`` whose first bytes cannot be read is not known to be macOS's AppleDouble file: it is taken, so
    reading it fails with the reason, rather than being dropped without a word."""
    save(plain_tree / "digits" / "._x.png", np.zeros((4, 4), np.uint8))
    real_open = Path.open

    def failing_open(self, *args, **kwargs):
        if self.name == "._x.png":
            raise PermissionError(13, "Permission denied", str(self))
        return real_open(self, *args, **kwargs)

    monkeypatch.setattr(Path, "open", failing_open)
    found, _ = files.collect(["digits"])
    assert "digits/._x.png" in [Path(item.label).as_posix() for item in found]


def test_one_image_found_in_a_folder_cannot_go_to_one_named_file(plain_tree):
    """``denoise folder/ -o out.png`` with one image in the folder is still a folder: refused with "give a folder"
    (the folder could hold more next time), rather than written as out.png."""
    (plain_tree / "one").mkdir()
    save(plain_tree / "one" / "x.png", np.zeros((4, 4), np.uint8))
    found, _ = files.collect(["one"])
    with pytest.raises(files.AetoolError, match="names one image file, but the inputs are a folder"):
        files.plan(found, output="out.png", suffix=".denoised")


def test_an_output_folder_above_the_scanned_folder_keeps_every_input(plain_tree):
    """``denoise digits/ -r -o .`` (the output folder holds the scanned one) plans every image; only an output
    folder inside the scanned folder leaves out what the scan found in it. All inputs were dropped otherwise."""
    found, _ = files.collect(["digits"], recursive=True)
    jobs, failures = files.plan(found, output=".", suffix=".denoised")
    assert len(found) == 3 and not failures
    assert sorted(job.label for job in jobs) == sorted(item.label for item in found)


def test_a_symbolic_link_named_like_a_stale_temporary_is_left_alone(tmp_path):
    """Only regular files that look like aetool's old temporaries are removed: a symbolic link (or folder) of such
    a name is someone else's and stays."""
    (tmp_path / "elsewhere").write_text("keep")
    link = tmp_path / ".x.png.abcd1234.part"
    link.symlink_to(tmp_path / "elsewhere")
    stale = tmp_path / ".y.png.abcd1234.part"
    stale.write_text("old")
    old = time.time() - 2 * files.STALE_SECONDS
    os.utime(link, (old, old), follow_symlinks=False)
    os.utime(stale, (old, old))
    assert files.remove_stale_temporaries(tmp_path) == [stale]
    assert link.is_symlink() and (tmp_path / "elsewhere").read_text() == "keep"


def test_the_first_of_two_held_signals_is_the_one_raised(monkeypatch):
    """SIGTERM then SIGINT while held: the command stops as the first signal asked (its handler, its exit code),
    not the last."""
    monkeypatch.setattr(signals, "STOPPED_BY", set())  # the process's record of them, which the CLI's exit code reads
    called = []
    previous = {number: signal.getsignal(number) for number in (signal.SIGINT, signal.SIGTERM)}
    try:
        for number in previous:
            signal.signal(number, lambda n, frame: called.append(n))
        with signals.interrupts_held():
            os.kill(os.getpid(), signal.SIGTERM)
            os.kill(os.getpid(), signal.SIGINT)
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
    assert called == [signal.SIGTERM]


def test_the_folder_of_a_path_no_longer_there_is_that_path(tmp_path):
    """A run's training folder since moved away names the folder it was, not its parent (which would hold every
    folder beside it)."""
    assert files.folder_of(str(tmp_path / "moved" / "digits")) == tmp_path / "moved" / "digits"
    save(tmp_path / "here" / "x.png", np.zeros((4, 4), np.uint8))
    assert files.folder_of(str(tmp_path / "here" / "x.png")) == tmp_path / "here"


def test_several_images_of_standard_input_to_standard_output_take_a_format_a_reader_can_split(tmp_path):
    """`cat a.png b.png | aetool denoise - -f tga > out` wrote TGAs one after another, which aetool itself read back
    as one image, exit 0 (trial 86): refused at the first image, before any is written."""
    several = (files.Input(f"-:{n}", b"...") for n in (1, 2))
    jobs, _ = files.plan(several, output=None, fmt="tga", suffix=".denoised")
    with pytest.raises(AetoolError, match=r"^standard input holds several images, whose tga results .* --format png"):
        next(iter(jobs))
    for fmt, output, inputs in (
        ("tga", "-", ["-"]),
        ("ppm", None, ["-:1", "-:2"]),
        ("tga", f"{tmp_path}/out/", ["-:1", "-:2"]),
    ):
        planned = files.plan((files.Input(label, b"...") for label in inputs), output=output, fmt=fmt, suffix="")[0]
        assert len(list(planned)) == len(inputs)  # one image, a format split on reading, or files


def test_a_file_named_by_itself_and_by_its_folder_is_one_input_however_either_is_written(tmp_path, monkeypatch):
    """`detect /abs/good/g02.png good/` scored g02 twice: 15 images for 14 files (trial 89)."""
    monkeypatch.chdir(tmp_path)
    for name in ("a.png", "b.png"):
        save(tmp_path / "good" / name, np.zeros((8, 8), np.uint8))
    for first in (str(tmp_path / "good" / "a.png"), "good/a.png", "./good/a.png", "good/../good/a.png"):
        found, failures = files.collect([first, "good"])
        assert sorted(item.label for item in found) == ["good/a.png", "good/b.png"] and not failures
    # `..` after a link goes where the link leads: lnk/../good/a.png is another file (merged by a lexical key; trial 92)
    save(tmp_path / "elsewhere" / "good" / "a.png", np.ones((8, 8), np.uint8))
    (tmp_path / "elsewhere" / "sub").mkdir()
    (tmp_path / "lnk").symlink_to(tmp_path / "elsewhere" / "sub")
    found, _ = files.collect(["good/a.png", "lnk/../good/a.png"])
    assert [item.label for item in found] == ["good/a.png", "lnk/../good/a.png"]


def test_a_home_folder_of_a_user_that_is_not_there_is_said_as_such():
    """~nosuchuser/x was said to need a HOME that is unset, though HOME was set (trial 103)."""
    from aetool.errors import DataError
    from aetool.runtime.files import expand_home

    with pytest.raises(DataError, match=r"^--data-dir ~nosuchuser/x: no user named nosuchuser here, whose home"):
        expand_home("~nosuchuser/x", named="--data-dir")
