"""A base built on the previous one: the in-container helper's plan over a site-packages
folder made of plain files, and the host's reading of labels and reports."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from builder.errors import UsageError
from builder.images import increment, site_packages
from builder.images.checksum import BaseInputs

MARKER = "builder-report-0123456789abcdef"


class Site:
    """A site-packages folder and the install step's staging folder."""

    def __init__(self, root: Path) -> None:
        self.site = root / "site-packages"
        self.site.mkdir()
        self.folder = root / "staging"
        (self.folder / "requirements").mkdir(parents=True)
        (self.folder / "marker").write_text(MARKER)

    def install(self, name: str, version: str, size: int = 100) -> None:
        """A distribution as an installer leaves it: its module and its .dist-info."""
        module = name.replace("-", "_")
        (self.site / module).mkdir()
        (self.site / module / "__init__.py").write_text(f"VERSION = {version!r}\n")
        info = self.site / f"{module}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\n"
                                       f"Version: {version}\n\nA description.\n")
        (info / "RECORD").write_text(f"{module}/__init__.py,sha256=x,{size}\n"
                                     f"{info.name}/METADATA,sha256=y,0\n{info.name}/RECORD,,\n")

    def uninstall(self, name: str) -> None:
        module = name.replace("-", "_")
        for path in sorted(self.site.glob(f"{module}*"), reverse=True):
            for item in sorted(path.rglob("*"), reverse=True):
                item.rmdir() if item.is_dir() else item.unlink()
            path.rmdir()

    def previous(self, installed: list[str], size: int, hidden: int = 0) -> None:
        (self.folder / "previous.json").write_text(json.dumps(
            {"installed": installed, "size": size, "hidden": hidden}))

    def requirements(self, *lines: str) -> None:
        (self.folder / "requirements" / "requirements.txt").write_text(
            "".join(f"{line}\n" for line in lines))

    def read(self, name: str) -> str:
        return (self.folder / name).read_text()

    def run(self, command: str) -> int:
        try:
            return site_packages.main([command, str(self.folder)])
        except SystemExit as exc:
            return int(exc.code or 0)


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Site:
    made = Site(tmp_path)
    monkeypatch.setattr(site_packages, "site_dir", lambda: str(made.site))
    return made


def reported(capsys: pytest.CaptureFixture[str]) -> dict[str, object]:
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith(MARKER)]
    assert len(lines) == 1
    return dict(json.loads(lines[0][len(MARKER) + 1:]))


def test_a_fresh_install_reports_what_it_added_to_the_parents(site, capsys):
    site.install("pip", "24.0")
    assert site.run("snapshot") == 0
    site.install("six", "1.16.0", size=300)
    site.install("Markdown_It.Py", "3.0.0", size=200)
    assert site.run("report") == 0
    assert reported(capsys) == {"installed": ["markdown-it-py==3.0.0", "six==1.16.0"],
                                "size": 500, "hidden": 0}


def test_a_fresh_install_that_replaced_a_parents_package_cannot_be_built_on(site, capsys):
    site.install("pip", "24.0")
    site.run("snapshot")
    site.uninstall("pip")
    site.install("pip", "25.0")
    assert site.run("report") == 0  # never fails the fresh build
    assert "the install replaced the parent's pip==24.0" in str(reported(capsys)["reason"])


def test_one_changed_pin_removes_nothing_and_installs_that_one(site, capsys):
    site.install("pip", "24.0")
    for name, version in (("six", "1.16.0"), ("idna", "3.7"), ("attrs", "24.2.0")):
        site.install(name, version, size=1000)
    site.previous(["attrs==24.2.0", "idna==3.7", "six==1.16.0"], size=3000)
    site.requirements("six==1.16.0", "idna==3.6", "attrs==24.2")  # 24.2 is 24.2.0
    assert site.run("plan") == 0
    assert site.read("remove.txt") == ""
    assert site.read("install.txt") == "idna==3.6\n"
    site.uninstall("idna")  # what uv does with install.txt
    site.install("idna", "3.6", size=900)
    assert site.run("finish") == 0
    assert reported(capsys) == {"installed": ["attrs==24.2.0", "idna==3.6", "six==1.16.0"],
                                "size": 2900, "hidden": 1000}
    assert (site.site / "idna" / "__pycache__").is_dir()  # compiled, as --compile-bytecode does
    assert not (site.site / "six" / "__pycache__").exists()  # untouched


def test_a_dropped_line_is_removed_and_options_reach_the_install(site):
    for name in ("six", "idna"):
        site.install(name, "1.0")
    site.previous(["idna==1.0", "six==1.0"], size=200)
    site.requirements("--extra-index-url https://example.invalid/simple", "six==2.0")
    assert site.run("plan") == 0
    assert site.read("remove.txt") == "idna\n"
    assert site.read("install.txt") == "--extra-index-url https://example.invalid/simple\n" \
                                       "six==2.0\n"


@pytest.mark.parametrize("lines", [("six>=1.0",), ("six==1.0", "-c 0123abcd.txt"),
                                   ("six[socks]==1.0",), ("six==1.0; python_version<'4'",)])
def test_lines_that_are_not_all_pins_ask_for_uvs_resolution(site, lines):
    site.install("six", "1.0")
    site.previous(["six==1.0"], size=100)
    site.requirements(*lines)
    assert site.run("plan") == site_packages.RESOLVE
    # the resolution gives the new set: here it adds a dependency the lines do not name
    (site.folder / "resolved.txt").write_text("six==1.0\nidna==3.7\n")
    assert site.run("plan") == 0
    assert site.read("install.txt") == "idna==3.7\n" and site.read("remove.txt") == ""


def test_a_second_plan_starts_from_what_the_first_one_left(site, capsys):
    """The pins needed more (uv pip check failed after the first plan was applied): the
    second plan, from uv's resolution, puts back what the first one removed."""
    for name in ("markdown-it-py", "mdurl", "six"):
        site.install(name, "1.0", size=100)
    site.previous(["markdown-it-py==1.0", "mdurl==1.0", "six==1.0"], size=300)
    site.requirements("markdown-it-py==1.0", "six==2.0")
    assert site.run("plan") == 0 and site.read("remove.txt") == "mdurl\n"
    site.uninstall("mdurl")
    site.uninstall("six")
    site.install("six", "2.0")
    (site.folder / "resolved.txt").write_text("markdown-it-py==1.0\nmdurl==1.0\nsix==2.0\n")
    assert site.run("plan") == 0
    assert site.read("install.txt") == "mdurl==1.0\n" and site.read("remove.txt") == ""
    site.install("mdurl", "1.0")
    assert site.run("finish") == 0
    report = reported(capsys)
    assert report["installed"] == ["markdown-it-py==1.0", "mdurl==1.0", "six==2.0"]
    assert report["hidden"] == 200  # the previous base's mdurl and six lie below


@pytest.mark.parametrize(("lines", "previous", "reason"), [
    (("pip==25.0",), ["six==1.0"], "the parent image's Python has pip too"),
    (("six==1.0 --hash=sha256:00",), ["six==1.0"], "hash-checking mode"),
    (("-e ./local",), ["six==1.0"], "the requirement option -e"),
    (("six==2.0",), ["six==1.0", "idna==3.7"], "the previous base does not hold idna==3.7"),
])
def test_doubts_decline(site, capsys, lines, previous, reason):
    site.install("pip", "24.0")
    site.install("six", "1.0")
    site.previous(previous, size=100)
    site.requirements(*lines)
    assert site.run("plan") == site_packages.DECLINE
    assert f"cannot build on the previous base: {reason}" in capsys.readouterr().err


def test_a_resolution_with_a_direct_url_declines_and_never_shows_the_url(site, capsys):
    url = "https://user:s3cret@example.invalid/six-1.0-py3-none-any.whl"
    site.install("six", "1.0")
    site.previous(["six==1.0"], size=100)
    site.requirements(f"six @ {url}")
    assert site.run("plan") == site_packages.RESOLVE
    (site.folder / "resolved.txt").write_text(f"six @ {url}\n")
    assert site.run("plan") == site_packages.DECLINE
    err = capsys.readouterr().err
    assert "cannot build on the previous base: not a single pin: six" in err
    assert "s3cret" not in err and "example.invalid" not in err


def test_too_much_hidden_under_the_layers_declines(site, capsys, monkeypatch):
    monkeypatch.setattr(site_packages, "HIDDEN_BYTES", 1200)  # 64 MiB, scaled down
    site.install("big", "1.0", size=3000)
    site.install("small", "1.0", size=1000)
    site.previous(["big==1.0", "small==1.0"], size=4000, hidden=100)
    site.requirements("big==1.0", "small==2.0")
    assert site.run("plan") == 0  # 100 + 1000: over a quarter of 4000, not over the bytes
    site.requirements("big==2.0", "small==1.0")
    (site.folder / "state.json").unlink()
    assert site.run("plan") == site_packages.DECLINE  # 100 + 3000: over both
    assert "would lie hidden in the layers below" in capsys.readouterr().err


def test_finish_refuses_a_result_that_differs_from_a_fresh_install(site, capsys):
    site.install("six", "1.0")
    site.previous(["six==1.0"], size=100)
    site.requirements("six==2.0")
    assert site.run("plan") == 0
    site.install("idna", "3.7")  # the install did more than planned
    assert site.run("finish") == site_packages.DECLINE
    assert "would differ from a fresh install: it has idna==3.7, six==1.0, a fresh install " \
        "six==2.0" in capsys.readouterr().err


def test_versions_compare_as_pep_440_releases():
    assert site_packages.version_key("1.0") == site_packages.version_key("1.0.0")
    assert site_packages.version_key("2.9.0.post0") != site_packages.version_key("2.9.0")
    assert site_packages.name_key("Markdown_It.Py") == "markdown-it-py"


# ---- the host's side ---------------------------------------------------------------------

LABELS = {"org.builder.checksum": "c" * 64, increment.FRAME: "f" * 64,
          increment.INSTALLED: "idna==3.7 six==1.16.0", increment.SIZE: "2000",
          increment.HIDDEN: "10", increment.INCREMENT: "2"}


def inspection(labels: dict[str, str], layers: int = 6) -> dict[str, object]:
    return {"Id": "sha256:" + "1" * 64, "Config": {"Labels": labels},
            "RootFS": {"Layers": [f"sha256:{n}" for n in range(layers)]}}


def previous(data: dict[str, object] | None, limit: int = 10):
    return increment.previous_base(data, "demo:base-cccc", frame="f" * 64, checksum="c" * 64,
                                   limit=limit)


def test_the_previous_base_is_read_from_its_labels():
    prior, why = previous(inspection(LABELS))
    assert why == "" and prior is not None
    assert prior.installed == ("idna==3.7", "six==1.16.0") and prior.increment == 2
    assert json.loads(prior.state()) == {"installed": ["idna==3.7", "six==1.16.0"],
                                         "size": 2000, "hidden": 10}


@pytest.mark.parametrize(("labels", "limit", "layers", "why"), [
    ({increment.FRAME: "e" * 64}, 10, 6, "more than the requirement lines changed"),
    ({"org.builder.checksum": "d" * 64}, 10, 6, "is not the recorded base"),
    ({increment.INSTALLED: None}, 10, 6, "does not say what it installed"),
    ({increment.INCREMENT: "x"}, 10, 6, "unreadable labels"),
    ({}, 2, 6, "is 2 steps from a fresh base (BUILDER_BASE_INCREMENTS=2)"),
    ({}, 10, increment.MAX_LAYERS, "has 100 layers"),
])
def test_a_previous_base_that_does_not_qualify_says_why(labels, limit, layers, why):
    merged = {key: value for key, value in {**LABELS, **labels}.items() if value is not None}
    prior, reason = previous(inspection(merged, layers), limit)
    assert prior is None and why in reason
    assert previous(None) == (None, "")


def test_report_labels_take_the_last_report_and_refuse_a_bad_one():
    good = json.dumps({"installed": ["six==1.16.0"], "size": 5, "hidden": 1})
    assert increment.report_labels(["{}", good], 3) == {
        increment.INSTALLED: "six==1.16.0", increment.SIZE: "5", increment.HIDDEN: "1",
        increment.INCREMENT: "3"}
    for bad in ('{"reason": "the install replaced the parent\'s pip==24.0"}', "not json",
                json.dumps({"installed": ["a b"], "size": 1, "hidden": 0}),
                json.dumps({"installed": [], "size": -1, "hidden": 0})):
        assert increment.report_labels([good, bad], 1) == {}
    assert increment.report_labels([], 0) == {}


def test_allowed_increments_from_the_environment():
    assert increment.allowed_increments({}) == increment.DEFAULT_INCREMENTS
    assert increment.allowed_increments({increment.ENV: " 0 "}) == 0
    with pytest.raises(UsageError, match="BUILDER_BASE_INCREMENTS='-1' must be a whole"):
        increment.allowed_increments({increment.ENV: "-1"})


def test_the_frame_is_every_input_but_the_requirement_lines():
    inputs = BaseInputs("sha256:" + "a" * 64, ("six==1.16.0",), (), (), "t", "1", "3.11.2",
                        "linux")
    other_lines = BaseInputs("sha256:" + "a" * 64, ("six==1.15.0",), (), (), "t", "1",
                             "3.11.2", "linux")
    other_apt = BaseInputs("sha256:" + "a" * 64, ("six==1.16.0",), ("git",), (), "t", "1",
                           "3.11.2", "linux")
    assert increment.frame_key(inputs) == increment.frame_key(other_lines)
    assert increment.frame_key(inputs) != increment.frame_key(other_apt)


def test_the_reason_of_a_declined_step_is_found_in_its_error():
    message = ("building demo failed at 'the install step': exit code 75\nlast lines:\n"
               "  | cannot build on the previous base: hash-checking mode")
    assert increment.declined_reason(message) == "hash-checking mode"
    assert increment.declined_reason("building demo failed: no space\nmore") == \
        "building demo failed: no space"
