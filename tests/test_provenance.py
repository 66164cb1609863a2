import re
import subprocess

from asr import __version__
from asr.provenance import code_version


def git(root, *args):
    subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True)


def checkout(tmp_path, files):
    root = tmp_path / "repo"
    root.mkdir()
    for name in files:
        (root / name).write_text("1\n")
    git(root, "init", "-q")
    git(root, "add", ".")
    git(root, "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-q", "-m", "first")
    return root


def test_a_checkout_is_named_by_its_commit_and_its_uncommitted_changes(tmp_path):
    root = checkout(tmp_path, ["a.py", "b.py", "c.py", "d.py", "e.py"])
    clean = code_version(root)
    assert re.fullmatch(rf"asr {re.escape(__version__)}, git [0-9a-f]{{12}}", clean)
    (root / "b.py").write_text("2\n")
    (root / "untracked.py").write_text("not part of the code\n")
    assert code_version(root) == f"{clean} with uncommitted changes to b.py"
    for name in ("a.py", "c.py", "d.py", "e.py"):
        (root / name).write_text("2\n")
    assert code_version(root) == f"{clean} with uncommitted changes to a.py, b.py, c.py and 2 more"


def test_a_package_folder_inside_someone_elses_repository_is_named_by_its_version_alone(tmp_path):
    root = checkout(tmp_path, ["a.py"])
    site_packages = root / "venv" / "site-packages"  # a virtual environment inside a user's project
    site_packages.mkdir(parents=True)
    assert code_version(site_packages) == f"asr {__version__}"
    assert code_version(tmp_path) == f"asr {__version__}"  # no repository at all
