"""Contract tests for the loopback git, GitHub and GitLab test servers (tests/infra).

Unmodified PyGithub, python-gitlab, requests and the git client talk to the servers over
127.0.0.1; answers are checked against git itself on the same bare repositories.
"""

from __future__ import annotations

import base64
import io
import os
import subprocess
import sys
import tarfile
import threading
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import github
import gitlab
import pytest
import requests
from github import Auth, Github

from tests.infra.git_server import GitServer
from tests.infra.github_server import GitHubServer
from tests.infra.gitlab_server import GitLabServer
from tests.infra.gitrepos import Executable, RepoHandle, Symlink, git_env, run_git
from tests.infra.httpbase import MAX_DELAY, MAX_FAULT_COUNT, LoopbackServer

ROOT = Path(__file__).resolve().parents[3]

FILES: dict[str, bytes | str | Symlink | Executable] = {
    "README.md": "# demo\n",
    "src/app.py": "print('hi')\n",
    "src/ünïcödé name.txt": "unicode\n",
    "bin/run.sh": Executable("#!/bin/sh\necho run\n"),
    "link-to-app": Symlink("src/app.py"),
    "data/blob.bin": bytes(range(256)) * 4,
}


def git(*args: str, cwd: Path | None = None, check: bool = True,
        token: str | None = None) -> subprocess.CompletedProcess[str]:
    """The git client, with a Bearer token header if ``token`` is given."""
    extra = ["-c", f"http.extraHeader=Authorization: Bearer {token}"] if token else []
    proc = subprocess.run(["git", *extra, *args], cwd=cwd, env=git_env(), capture_output=True,
                          text=True, timeout=60, check=False)
    if check and proc.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed: {proc.stderr}")
    return proc


def populated(server: LoopbackServer, path: str,
              private: bool = True) -> tuple[RepoHandle, list[str]]:
    """A repository with three commits on main and a 'feature' branch off the second."""
    repo = server.create_repo(path, private=private)
    shas = [repo.commit(FILES, "first")]
    shas.append(repo.commit({"src/app.py": "print('v2')\n"}, "second"))
    repo.push()
    shas.append(repo.commit({"feature.txt": "f\n"}, "feature work", branch="feature"))
    repo.push("feature")
    repo.checkout("main")
    shas.append(repo.commit({"README.md": "# demo v3\n"}, "third"))
    repo.push()
    return repo, shas  # [first, second, feature tip, main tip]


def ls_tree_paths(repo: RepoHandle, sha: str) -> set[str]:
    out = run_git(["ls-tree", "-r", "-t", "-z", "--name-only", sha], cwd=repo.bare)
    return {p.decode() for p in out.split(b"\0") if p}


def archive_members(repo: RepoHandle, sha: str, prefix: str, fmt: str = "tar",
                    paths: tuple[str, ...] = ()) -> dict[str, bytes | str]:
    data = run_git(["archive", f"--format={fmt}", f"--prefix={prefix}", sha, "--", *paths],
                   cwd=repo.bare)
    return tar_members(data) if fmt == "tar" else zip_members(data)


def tar_members(data: bytes) -> dict[str, bytes | str]:
    members: dict[str, bytes | str] = {}
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        for m in tar.getmembers():
            if m.issym():
                members[m.name] = f"-> {m.linkname}"
            elif m.isfile():
                f = tar.extractfile(m)
                assert f is not None
                members[m.name] = f.read() + (b" +x" if m.mode & 0o100 else b"")
    return members


def zip_members(data: bytes) -> dict[str, bytes | str]:
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        return {i.filename: z.read(i) for i in z.infolist() if not i.is_dir()}


def gh(server: GitHubServer, token: str | None = "default") -> Github:
    tok = server.token if token == "default" else token
    return Github(base_url=server.url, auth=Auth.Token(tok) if tok else None,
                  seconds_between_requests=0, seconds_between_writes=0, retry=None)


@pytest.fixture
def thread_baseline() -> Iterator[set[threading.Thread]]:
    yield set(threading.enumerate())


# ---------------------------------------------------------------------------- git server


def test_git_clone_fetch_push_ls_remote(git_server: GitServer, tmp_path: Path) -> None:
    repo, shas = populated(git_server, "team/sub/proj")
    token = git_server.token

    out = git("ls-remote", repo.clone_url, token=token).stdout
    assert f"{shas[3]}\trefs/heads/main" in out
    assert f"{shas[2]}\trefs/heads/feature" in out

    clone = tmp_path / "clone"
    git("clone", "--quiet", "--filter=blob:none", repo.clone_url, str(clone), token=token)
    assert git("rev-parse", "HEAD", cwd=clone).stdout.strip() == shas[3]
    assert os.readlink(clone / "link-to-app") == "src/app.py"
    assert os.access(clone / "bin/run.sh", os.X_OK)
    assert (clone / "src/ünïcödé name.txt").read_text() == "unicode\n"
    assert (clone / "data/blob.bin").read_bytes() == bytes(range(256)) * 4

    # An exact, non-tip commit, shallow (what a builder download does).
    shallow = tmp_path / "shallow"
    git("init", "--quiet", str(shallow))
    git("remote", "add", "origin", repo.clone_url, cwd=shallow)
    git("fetch", "--quiet", "--depth", "1", "origin", shas[0], cwd=shallow, token=token)
    assert git("cat-file", "-t", shas[0], cwd=shallow).stdout.strip() == "commit"
    assert git("rev-parse", "FETCH_HEAD", cwd=shallow).stdout.strip() == shas[0]

    # Push a new branch with a body larger than http.postBuffer: chunked request body.
    (clone / "big.bin").write_bytes(os.urandom(1_500_000))
    git("add", "big.bin", cwd=clone)
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "--quiet", "-m", "big",
        cwd=clone)
    git("push", "--quiet", "origin", "HEAD:refs/heads/pushed", cwd=clone, token=token)
    pushed = git("rev-parse", "HEAD", cwd=clone).stdout.strip()
    assert run_git(["rev-parse", "refs/heads/pushed"], cwd=repo.bare).decode().strip() == pushed
    assert git_server.request_encodings.get("chunked", 0) >= 1
    # git probes with a tiny POST before a chunked one.
    assert git_server.count(r"/git-receive-pack$", method="POST") >= 1


def test_git_gzip_request_bodies(git_server: GitServer, tmp_path: Path) -> None:
    repo = git_server.create_repo("gz/proj")
    for i in range(30):  # 30 distinct "want" lines make git gzip its upload-pack request
        repo.commit({"n.txt": f"{i}\n"}, f"c{i}")
        repo.git("branch", f"b{i:02}")
    repo.git("push", "--quiet", "origin", "--all")
    fresh = tmp_path / "fresh"
    git("init", "--quiet", str(fresh))
    git("remote", "add", "origin", repo.clone_url, cwd=fresh)
    git("fetch", "--quiet", "origin", cwd=fresh, token=git_server.token)
    assert git("rev-parse", "origin/b29", cwd=fresh).stdout.strip() == repo.head
    assert git_server.request_encodings.get("gzip", 0) >= 1


def test_git_auth(git_server: GitServer, tmp_path: Path) -> None:
    repo, shas = populated(git_server, "auth/proj")
    refs = f"{repo.clone_url}/info/refs?service=git-upload-pack"

    no_auth = requests.get(refs, timeout=10)
    assert no_auth.status_code == 401
    assert no_auth.headers["WWW-Authenticate"] == 'Basic realm="git"'
    assert requests.get(refs, headers={"Authorization": "Bearer wrong"},
                        timeout=10).status_code == 401
    assert requests.get(refs, auth=("anyone", "wrong"), timeout=10).status_code == 401
    assert requests.get(refs, auth=("anyone", git_server.token), timeout=10).status_code == 200
    ok = requests.get(refs, headers={"Authorization": f"Bearer {git_server.token}"}, timeout=10)
    assert ok.status_code == 200
    assert ok.headers["Content-Type"] == "application/x-git-upload-pack-advertisement"

    failed = git("ls-remote", repo.clone_url, check=False)
    assert failed.returncode != 0
    wrong = git("ls-remote", repo.clone_url, check=False, token="nope")
    assert wrong.returncode != 0
    host = git_server.url.split("://", 1)[1]
    with_user = f"http://user:{git_server.token}@{host}/auth/proj.git"
    assert shas[3] in git("ls-remote", with_user).stdout

    missing = requests.get(f"{git_server.url}/nope/x.git/info/refs?service=git-upload-pack",
                           auth=("u", git_server.token), timeout=10)
    assert missing.status_code == 404

    # Public: fetch without a token, but pushing still needs one.
    pub, pub_shas = populated(git_server, "auth/public", private=False)
    assert pub_shas[3] in git("ls-remote", pub.clone_url).stdout
    push_refs = f"{pub.clone_url}/info/refs?service=git-receive-pack"
    assert requests.get(push_refs, timeout=10).status_code == 401
    assert requests.get(push_refs, auth=("u", git_server.token), timeout=10).status_code == 200


# ---------------------------------------------------------------------------- GitHub


def test_github_pygithub_contract(github_server: GitHubServer) -> None:
    repo, shas = populated(github_server, "octo/proj")
    g = gh(github_server)
    assert g.get_user().login == github_server.user

    r = g.get_repo("octo/proj")
    assert (r.full_name, r.name, r.private, r.default_branch) == ("octo/proj", "proj", True,
                                                                  "main")
    assert r.clone_url == repo.clone_url
    assert r.owner.login == "octo"

    c = r.get_commit(shas[1])
    assert c.sha == shas[1]
    assert c.commit.message == "second"
    assert c.commit.tree.sha == run_git(["rev-parse", f"{shas[1]}^{{tree}}"],
                                        cwd=repo.bare).decode().strip()
    assert [p.sha for p in c.parents] == [shas[0]]
    assert [f.filename for f in c.files] == ["src/app.py"]
    assert c.commit.author.name == "Test Author"
    assert r.get_commit("main").sha == shas[3]
    assert r.get_commit(shas[3][:10]).sha == shas[3]
    with pytest.raises(github.GithubException) as missing:
        r.get_commit("0" * 40)
    assert missing.value.status == 422

    assert {(b.name, b.commit.sha) for b in r.get_branches()} == {("main", shas[3]),
                                                                    ("feature", shas[2])}
    assert r.get_branch("feature").commit.sha == shas[2]

    cmp = r.compare(shas[1], shas[3])
    assert (cmp.status, cmp.ahead_by, cmp.behind_by) == ("ahead", 1, 0)
    assert [x.sha for x in cmp.commits] == [shas[3]]
    assert cmp.merge_base_commit.sha == shas[1]
    assert r.compare(shas[3], shas[1]).status == "behind"
    div = r.compare("main", "feature")
    assert (div.status, div.ahead_by, div.behind_by) == ("diverged", 1, 1)
    assert div.merge_base_commit.sha == shas[1]
    assert r.compare(shas[2], "feature").status == "identical"

    f = r.get_contents("src/app.py", ref=shas[0])
    assert not isinstance(f, list)
    assert f.decoded_content == b"print('hi')\n"
    assert f.sha == run_git(["rev-parse", f"{shas[0]}:src/app.py"], cwd=repo.bare).decode().strip()
    assert (f.type, f.path, f.name, f.encoding, f.size) == ("file", "src/app.py", "app.py",
                                                           "base64", 12)
    assert requests.get(f.download_url, timeout=10).content == b"print('hi')\n"
    uni = r.get_contents("src/ünïcödé name.txt", ref=shas[0])
    assert not isinstance(uni, list) and uni.decoded_content == b"unicode\n"
    root = r.get_contents("", ref=shas[0])
    assert isinstance(root, list)
    assert {(e.path, e.type) for e in root} == {
        ("README.md", "file"), ("src", "dir"), ("bin", "dir"), ("link-to-app", "symlink"),
        ("data", "dir")}

    tree = r.get_git_tree(shas[0], recursive=True)
    assert {e.path for e in tree.tree} == ls_tree_paths(repo, shas[0])
    modes = {e.path: (e.mode, e.type) for e in tree.tree}
    assert modes["bin/run.sh"] == ("100755", "blob")
    assert modes["link-to-app"] == ("120000", "blob")
    assert modes["src"] == ("040000", "tree")
    assert not tree.raw_data["truncated"]

    top = f"octo-proj-{shas[0][:7]}/"
    link = r.get_archive_link("tarball", shas[0])
    # Like codeload.github.com: another origin, so requests drops Authorization on the way.
    assert link.startswith(f"{github_server.codeload_url}/octo/proj/legacy.tar.gz/{shas[0]}?")
    assert github_server.codeload_url != github_server.url
    tar = requests.get(link, timeout=10)  # no Authorization: the link carries a token
    assert tar.status_code == 200
    assert tar_members(tar.content) == archive_members(repo, shas[0], top)
    zipped = requests.get(r.get_archive_link("zipball", shas[0]), timeout=10)
    assert zip_members(zipped.content) == archive_members(repo, shas[0], top, "zip")
    # Without the URL's token a private archive is a 404, whatever header comes along.
    auth = {"Authorization": f"token {github_server.token}"}
    assert requests.get(link.split("?")[0], headers=auth, timeout=10).status_code == 404
    assert github_server.codeload.authorizations == [auth["Authorization"]]
    # The API follows the redirect itself without sending the token to codeload.
    github_server.codeload.authorizations.clear()
    followed = requests.get(f"{github_server.url}/repos/octo/proj/tarball/{shas[0]}",
                            headers=auth, timeout=10)
    assert followed.status_code == 200 and len(followed.history) == 1
    assert github_server.codeload.authorizations == []


def test_github_auth_and_headers(github_server: GitHubServer, tmp_path: Path) -> None:
    _repo, shas = populated(github_server, "octo/private")
    _pub, pub_shas = populated(github_server, "octo/public", private=False)

    with pytest.raises(github.BadCredentialsException):
        _ = gh(github_server, "wrong").get_user().login
    with pytest.raises(github.BadCredentialsException):
        gh(github_server, "wrong").get_repo("octo/public")
    with pytest.raises(github.UnknownObjectException):
        gh(github_server, None).get_repo("octo/private")
    with pytest.raises(github.UnknownObjectException):
        gh(github_server).get_repo("octo/missing")
    anon = gh(github_server, None).get_repo("octo/public")
    assert anon.get_commit("main").sha == pub_shas[3]

    for url, headers in [
        (f"{github_server.url}/repos/octo/private", {}),
        (f"{github_server.url}/repos/octo/private",
         {"Authorization": f"token {github_server.token}"}),
        (f"{github_server.url}/api/v3/repos/octo/private/commits/{shas[0]}",
         {"Authorization": f"Bearer {github_server.token}"}),
    ]:
        resp = requests.get(url, headers=headers, timeout=10)
        for name in ("Limit", "Remaining", "Reset", "Used", "Resource"):
            assert f"X-RateLimit-{name}" in resp.headers
    bad = requests.get(f"{github_server.url}/user", headers={"Authorization": "token nope"},
                       timeout=10)
    assert bad.status_code == 401 and bad.json()["message"] == "Bad credentials"

    # git smart HTTP on the same repositories with the same token.
    clone = tmp_path / "clone"
    basic = base64.b64encode(f"x-access-token:{github_server.token}".encode()).decode()
    proc = subprocess.run(
        ["git", "-c", f"http.extraHeader=Authorization: Basic {basic}", "clone", "--quiet",
         f"{github_server.url}/octo/private.git", str(clone)],
        env=git_env(), capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    assert git("rev-parse", "HEAD", cwd=clone).stdout.strip() == shas[3]
    assert git("ls-remote", f"{github_server.url}/octo/private.git", check=False).returncode


# ---------------------------------------------------------------------------- GitLab


def test_gitlab_python_gitlab_contract(gitlab_server: GitLabServer) -> None:
    repo, shas = populated(gitlab_server, "grp/sub/proj")
    many = repo.commit({f"many/f{i:02}.txt": f"{i}\n" for i in range(30)}, "many files")
    repo.push()
    gl = gitlab.Gitlab(gitlab_server.url, private_token=gitlab_server.token)
    gl.auth()
    assert gl.user is not None and gl.user.username == gitlab_server.user

    p = gl.projects.get("grp/sub/proj")
    assert (p.path, p.path_with_namespace, p.default_branch) == ("proj", "grp/sub/proj", "main")
    assert p.http_url_to_repo == repo.clone_url
    assert p.namespace["full_path"] == "grp/sub"
    assert p.visibility == "private"
    assert gl.projects.get(p.id).path_with_namespace == "grp/sub/proj"

    c = p.commits.get(shas[1])
    assert (c.id, c.title, c.parent_ids) == (shas[1], "second", [shas[0]])
    assert sorted(r["name"] for r in c.refs(type="branch")) == ["feature", "main"]
    assert [r["name"] for r in p.commits.get(shas[2]).refs(type="branch")] == ["feature"]
    assert p.commits.get(shas[2]).refs(type="tag") == []
    with pytest.raises(gitlab.exceptions.GitlabGetError) as missing:
        p.commits.get("0" * 40)
    assert missing.value.response_code == 404

    assert {(b.name, b.commit["id"]) for b in p.branches.list(get_all=True)} == {
        ("main", many), ("feature", shas[2])}

    tree = p.repository_tree(ref=many, recursive=True, get_all=True)
    assert len(tree) > 20  # more than one page of 20
    assert {e["path"] for e in tree} == ls_tree_paths(repo, many)
    assert {e["mode"] for e in tree if e["path"] == "bin/run.sh"} == {"100755"}
    page = requests.get(f"{gitlab_server.url}/api/v4/projects/{p.id}/repository/tree",
                        params={"ref": many, "recursive": "true", "per_page": "10", "page": "2"},
                        headers={"PRIVATE-TOKEN": gitlab_server.token}, timeout=10)
    assert page.headers["X-Page"] == "2" and page.headers["X-Per-Page"] == "10"
    assert page.headers["X-Next-Page"] == "3" and page.headers["X-Prev-Page"] == "1"
    assert page.headers["X-Total"] == str(len(tree))
    assert page.headers["X-Total-Pages"] == str((len(tree) + 9) // 10)
    assert 'rel="next"' in page.headers["Link"] and len(page.json()) == 10
    sub = p.repository_tree(ref=shas[0], path="src", get_all=True)
    assert {e["path"] for e in sub} == {"src/app.py", "src/ünïcödé name.txt"}

    tgz = p.repository_archive(sha=shas[0], format="tar.gz")
    top = f"proj-{shas[0]}-{shas[0]}/"
    assert tar_members(tgz) == archive_members(repo, shas[0], top)
    only_src = p.repository_archive(sha=shas[0], path="src", format="zip")
    assert zip_members(only_src) == archive_members(
        repo, shas[0], f"proj-{shas[0]}-{shas[0]}-src/", "zip", ("src",))
    by_branch = requests.get(f"{gitlab_server.url}/api/v4/projects/{p.id}/repository/archive",
                             headers={"PRIVATE-TOKEN": gitlab_server.token}, timeout=10)
    assert next(iter(tar_members(by_branch.content))).startswith(f"proj-main-{many}/")

    assert p.files.raw("src/ünïcödé name.txt", ref=shas[0]) == b"unicode\n"
    assert p.files.raw("src/app.py", ref=shas[1]) == b"print('v2')\n"
    assert p.files.get("bin/run.sh", ref=shas[0]).execute_filemode is True


def test_gitlab_auth(gitlab_server: GitLabServer, tmp_path: Path) -> None:
    _repo, shas = populated(gitlab_server, "grp/private")
    _pub, pub_shas = populated(gitlab_server, "grp/public", private=False)

    with pytest.raises(gitlab.exceptions.GitlabAuthenticationError):
        gitlab.Gitlab(gitlab_server.url, private_token="wrong").auth()
    with pytest.raises(gitlab.exceptions.GitlabGetError) as not_found:
        gitlab.Gitlab(gitlab_server.url).projects.get("grp/private")
    assert not_found.value.response_code == 404
    anon = gitlab.Gitlab(gitlab_server.url).projects.get("grp/public")
    assert anon.commits.get("main").id == pub_shas[3]
    oauth = gitlab.Gitlab(gitlab_server.url, oauth_token=gitlab_server.token)
    assert oauth.projects.get("grp/private").commits.get("main").id == shas[3]

    host = gitlab_server.url.split("://", 1)[1]
    for user in ("oauth2", "gitlab-ci-token"):
        url = f"http://{user}:{gitlab_server.token}@{host}/grp/private.git"
        assert shas[3] in git("ls-remote", url).stdout
    denied = requests.get(f"{gitlab_server.url}/grp/private.git/info/refs",
                          params={"service": "git-upload-pack"}, timeout=10)
    assert denied.status_code == 401
    assert denied.headers["WWW-Authenticate"] == 'Basic realm="GitLab"'


# ---------------------------------------------------------------------------- faults


def test_fault_server_errors_and_counters(github_server: GitHubServer) -> None:
    populated(github_server, "octo/f")
    url = f"{github_server.url}/repos/octo/f"
    auth = {"Authorization": f"token {github_server.token}"}
    github_server.reset_counts()

    github_server.fail_next(2, status=503)
    assert [requests.get(url, headers=auth, timeout=10).status_code for _ in range(3)] == [
        503, 503, 200]
    assert github_server.request_count == 3
    assert github_server.path_counts == {"/repos/octo/f": 3}
    assert github_server.requests == [("GET", "/repos/octo/f")] * 3
    assert github_server.faults_fired == {"server_error": 2}

    github_server.fail_next(1, match=r"/branches$")
    assert requests.get(url, headers=auth, timeout=10).status_code == 200
    assert requests.get(url + "/branches", headers=auth, timeout=10).status_code == 500
    assert github_server.count(r"/branches$") == 1
    github_server.fail_next(5)
    github_server.clear_faults()
    assert requests.get(url, headers=auth, timeout=10).status_code == 200

    github_server.reset_counts()
    assert github_server.request_count == 0 and github_server.faults_fired == {}
    for bad in (lambda: github_server.fail_next(0), lambda: github_server.fail_next(
            MAX_FAULT_COUNT + 1), lambda: github_server.fail_next(1, status=404),
            lambda: github_server.slow_next(1, delay=MAX_DELAY + 1)):
        with pytest.raises(ValueError):
            bad()


def test_fault_rate_limits(github_server: GitHubServer, gitlab_server: GitLabServer) -> None:
    populated(github_server, "octo/rl")
    github_server.rate_limit_next(1, reset_in=120)
    before = int(time.time())
    with pytest.raises(github.RateLimitExceededException) as exc:
        gh(github_server).get_repo("octo/rl")
    assert exc.value.status == 403
    assert exc.value.headers is not None
    assert exc.value.headers["x-ratelimit-remaining"] == "0"
    assert before + 119 <= int(exc.value.headers["x-ratelimit-reset"]) <= int(time.time()) + 121
    assert exc.value.data["message"].startswith("API rate limit exceeded")
    assert gh(github_server).get_repo("octo/rl").name == "rl"

    # A secondary limit: the message, requests still remaining, no Retry-After unless given.
    github_server.secondary_rate_limit_next(1)
    with pytest.raises(github.GithubException) as exc:
        gh(github_server).get_repo("octo/rl")
    assert exc.value.status == 403 and exc.value.headers is not None
    assert "secondary rate limit" in exc.value.data["message"]
    assert int(exc.value.headers["x-ratelimit-remaining"]) > 0
    assert "retry-after" not in exc.value.headers
    github_server.secondary_rate_limit_next(1, retry_after=9, status=429)
    resp = requests.get(f"{github_server.url}/repos/octo/rl", timeout=10,
                        headers={"Authorization": f"token {github_server.token}"})
    assert resp.status_code == 429 and resp.headers["Retry-After"] == "9"

    github_server.too_many_requests_next(1, retry_after=7)
    resp = requests.get(f"{github_server.url}/user", timeout=10)
    assert resp.status_code == 429 and resp.headers["Retry-After"] == "7"
    assert github_server.faults_fired == {"rate_limit": 1, "secondary_rate_limit": 2,
                                          "too_many_requests": 1}

    populated(gitlab_server, "grp/rl")
    gitlab_server.too_many_requests_next(1, retry_after=3)
    resp = requests.get(f"{gitlab_server.url}/api/v4/projects/grp%2Frl",
                        headers={"PRIVATE-TOKEN": gitlab_server.token}, timeout=10)
    assert resp.status_code == 429 and resp.headers["Retry-After"] == "3"
    assert resp.headers["RateLimit-Remaining"] == "0"
    # python-gitlab obeys Retry-After by itself; a zero wait keeps the test fast.
    gitlab_server.too_many_requests_next(1, retry_after=0)
    gl = gitlab.Gitlab(gitlab_server.url, private_token=gitlab_server.token)
    assert gl.projects.get("grp/rl").path == "rl"
    assert gitlab_server.faults_fired["too_many_requests"] == 2


def test_fault_dropped_and_slow_downloads(gitlab_server: GitLabServer,
                                          git_server: GitServer, tmp_path: Path) -> None:
    _repo, shas = populated(gitlab_server, "grp/dl")
    url = f"{gitlab_server.url}/api/v4/projects/grp%2Fdl/repository/archive.tar.gz"
    auth = {"PRIVATE-TOKEN": gitlab_server.token}
    gitlab_server.drop_next_downloads(1, fraction=0.5)
    with requests.get(url, headers=auth, params={"sha": shas[0]}, stream=True,
                      timeout=10) as resp:
        assert resp.status_code == 200
        expected = int(resp.headers["Content-Length"])
        with pytest.raises(requests.exceptions.ChunkedEncodingError):
            resp.content  # noqa: B018
    full = requests.get(url, headers=auth, params={"sha": shas[0]}, timeout=10)
    assert len(full.content) == expected
    assert gitlab_server.faults_fired == {"drop": 1}

    gitlab_server.slow_next(1, delay=0.4, match=r"/archive")
    start = time.monotonic()
    slow = requests.get(url, headers=auth, params={"sha": shas[0]}, timeout=10)
    assert time.monotonic() - start >= 0.4
    assert slow.content == full.content

    # The drop switch also cuts git's pack download.
    grepo, _shas = populated(git_server, "dl/proj")
    git_server.drop_next_downloads(1)
    failed = git("clone", "--quiet", grepo.clone_url, str(tmp_path / "a"), check=False,
                 token=git_server.token)
    assert failed.returncode != 0
    git("clone", "--quiet", grepo.clone_url, str(tmp_path / "b"), token=git_server.token)
    assert git_server.faults_fired == {"drop": 1}


# ---------------------------------------------------------------------------- lifecycle + CLI


def test_stop_joins_threads_with_open_keepalive(tmp_path: Path,
                                                thread_baseline: set[threading.Thread]) -> None:
    server = GitHubServer(tmp_path / "repos", work_dir=tmp_path / "work")
    server.start()
    session = requests.Session()
    assert session.get(f"{server.url}/rate_limit", timeout=10).status_code == 200
    assert len(set(threading.enumerate()) - thread_baseline) >= 2  # serve loop + handler
    server.stop()
    session.close()
    assert set(threading.enumerate()) - thread_baseline == set()


@pytest.mark.parametrize("module", ["git_server", "github_server", "gitlab_server"])
def test_cli_help(module: str) -> None:
    proc = subprocess.run([sys.executable, "-m", f"tests.infra.{module}", "--help"], cwd=ROOT,
                          capture_output=True, text=True, timeout=30, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "--port" in proc.stdout and "--repos" in proc.stdout and "--token" in proc.stdout


def test_cli_standalone_serves(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.infra.git_server", "--port", "0", "--repos",
         str(tmp_path / "repos"), "--token", "a,b", "--token", "c", "--init", "demo/repo"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        assert line.startswith("listening on http://127.0.0.1:")
        url = line.removeprefix("listening on ")
        for token in ("a", "b", "c"):
            assert "refs/heads/main" in git("ls-remote", f"{url}/demo/repo.git",
                                            token=token).stdout
        assert git("ls-remote", f"{url}/demo/repo.git", check=False).returncode != 0
    finally:
        proc.terminate()
        proc.wait(timeout=15)
    assert proc.returncode == 0


# ---------------------------------------------------------------------------- real-service edges


def test_gitlab_compare_parses_straight_as_grape_does(gitlab_server: GitLabServer) -> None:
    _repo, shas = populated(gitlab_server, "grp/cmp")
    p = gitlab.Gitlab(gitlab_server.url, private_token=gitlab_server.token).projects.get(
        "grp/cmp", lazy=True)
    # feature tip against main tip: diverged from shas[1].
    merge_base = {d["new_path"] for d in p.repository_compare(shas[2], shas[3])["diffs"]}
    assert merge_base == {"README.md"}
    for value in (True, "true", "1", "yes", "T"):  # python-gitlab sends True as "True"
        straight = p.repository_compare(shas[2], shas[3], straight=value)["diffs"]
        assert {d["new_path"] for d in straight} == {"README.md", "feature.txt"}
    assert {d["new_path"] for d in p.repository_compare(
        shas[2], shas[3], straight="False")["diffs"]} == merge_base
    bad = requests.get(f"{gitlab_server.url}/api/v4/projects/grp%2Fcmp/repository/compare",
                       params={"from": shas[2], "to": shas[3], "straight": "maybe"},
                       headers={"PRIVATE-TOKEN": gitlab_server.token}, timeout=10)
    assert (bad.status_code, bad.json()) == (400, {"error": "straight is invalid"})


def test_gitlab_archive_of_a_missing_path_is_an_empty_200(gitlab_server: GitLabServer) -> None:
    _repo, shas = populated(gitlab_server, "grp/arc")
    url = f"{gitlab_server.url}/api/v4/projects/grp%2Farc/repository/archive.tar.gz"
    auth = {"PRIVATE-TOKEN": gitlab_server.token}
    missing = requests.get(url, params={"sha": shas[0], "path": "nope"}, headers=auth,
                           timeout=10)
    assert (missing.status_code, missing.content) == (200, b"")
    assert missing.headers["Content-Type"] == "application/octet-stream"
    assert missing.headers["Content-Disposition"].startswith("attachment;")
    no_sha = requests.get(url, params={"sha": "f" * 40}, headers=auth, timeout=10)
    assert (no_sha.status_code, no_sha.json()) == (404, {"message": "404 File Not Found"})


def test_gitlab_token_scopes_and_job_tokens(gitlab_server: GitLabServer, tmp_path: Path) -> None:
    _repo, shas = populated(gitlab_server, "grp/tok")
    api = f"{gitlab_server.url}/api/v4/projects/grp%2Ftok"
    files_only = "glpat-read-repository-only"
    gitlab_server.add_token(files_only, scopes=("read_repository",))
    header = {"PRIVATE-TOKEN": files_only}
    raw = requests.get(f"{api}/repository/files/README.md/raw", params={"ref": shas[0]},
                       headers=header, timeout=10)
    assert raw.status_code == 200 and raw.content == b"# demo\n"
    for path in ("", "/repository/archive.tar.gz", "/repository/tree",
                 f"/repository/compare?from={shas[0]}&to={shas[1]}"):
        refused = requests.get(api + path, headers=header, timeout=10)
        assert refused.status_code == 403 and refused.json()["error"] == "insufficient_scope"

    job = "glcbt-job-token-for-tests"
    gitlab_server.add_job_token(job)
    as_job = gitlab.Gitlab(gitlab_server.url, job_token=job).projects.get("grp/tok", lazy=True)
    assert as_job.files.raw("README.md", ref=shas[0]) == b"# demo\n"  # job_token_allowed
    for call in (lambda: as_job.repository_archive(sha=shas[0]),
                 lambda: as_job.repository_compare(shas[0], shas[1]),
                 lambda: as_job.repository_tree(ref=shas[0])):
        with pytest.raises(gitlab.exceptions.GitlabError) as refused_job:
            call()
        assert refused_job.value.response_code == 401
    with pytest.raises(gitlab.exceptions.GitlabError) as wrong_header:
        gitlab.Gitlab(gitlab_server.url, private_token=job).projects.get("grp/tok")
    assert wrong_header.value.response_code == 401  # a job token is no access token
    host = gitlab_server.url.split("://", 1)[1]
    assert shas[3] in git("ls-remote", f"http://gitlab-ci-token:{job}@{host}/grp/tok.git").stdout


def test_gitlab_com_archive_rate_limit(gitlab_com_server: GitLabServer) -> None:
    server = gitlab_com_server
    _repo, shas = populated(server, "grp/lim")
    now = [1_800_000_000.0 - 1_800_000_000 % 60 + 30]
    server.clock = lambda: now[0]
    url = f"{server.url}/api/v4/projects/grp%2Flim/repository/archive"
    auth = {"PRIVATE-TOKEN": server.token}
    answers = [requests.get(url, params={"sha": shas[0]}, headers=auth, timeout=10)
               for _ in range(6)]
    assert [a.status_code for a in answers] == [200] * 5 + [429]
    limited = answers[-1]
    assert limited.json() == {"message": {"error": "This archive has been requested too "
                                                   "many times. Try again later."}}
    assert not any(h.lower().startswith(("retry-after", "ratelimit")) for h in limited.headers)
    now[0] += 29  # the same minute: still limited, and counted
    assert requests.get(url, headers=auth, timeout=10).status_code == 429
    now[0] += 1  # the next whole minute
    assert requests.get(url, headers=auth, timeout=10).status_code == 200
    assert [requests.get(url, headers=auth, timeout=10).status_code
            for _ in range(5)] == [200] * 4 + [429]
    populated(server, "grp/other")
    other = url.replace("grp%2Flim", "grp%2Fother")
    assert requests.get(other, headers=auth, timeout=10).status_code == 200  # per project
    assert requests.get(url, timeout=10).status_code == 404  # private: no anonymous count


def test_github_recursive_tree_truncation(github_server: GitHubServer) -> None:
    repo, shas = populated(github_server, "octo/trunc")
    r = gh(github_server).get_repo("octo/trunc")
    whole = ls_tree_paths(repo, shas[0])
    for value in ("1", "0", "false"):  # "any value" is recursive
        answer = requests.get(f"{github_server.url}/repos/octo/trunc/git/trees/{shas[0]}",
                              params={"recursive": value}, timeout=10,
                              headers={"Authorization": f"token {github_server.token}"}).json()
        assert {e["path"] for e in answer["tree"]} == whole and not answer["truncated"]
    github_server.tree_limit = 3
    cut = r.get_git_tree(shas[0], recursive=True)
    assert cut.raw_data["truncated"] is True and len(cut.tree) == 3
    top = r.get_git_tree(shas[0])  # not recursive: not limited the same way
    assert not top.raw_data["truncated"]
    assert {e.path for e in top.tree} == {p for p in whole if "/" not in p}


def test_lfs_objects_in_archives(github_server: GitHubServer, gitlab_server: GitLabServer) -> None:
    content = b"\x00large binary model\xff" * 100
    for server in (github_server, gitlab_server):
        pointer = server.add_lfs_object(content)
        repo = server.create_repo("grp/lfs")
        sha = repo.commit({".gitattributes": "*.bin filter=lfs diff=lfs merge=lfs -text\n",
                           "model.bin": pointer, "small.txt": "s\n"})
        repo.push()
        if server is gitlab_server:
            url = f"{server.url}/api/v4/projects/grp%2Flfs/repository/archive.tar.gz"
            auth = {"PRIVATE-TOKEN": server.token}
            smudged = requests.get(url, params={"sha": sha}, headers=auth, timeout=10)
            pointers = requests.get(url, params={"sha": sha, "include_lfs_blobs": "false"},
                                    headers=auth, timeout=10)
            top = f"lfs-{sha}-{sha}/"
        else:
            r = gh(github_server).get_repo("grp/lfs")
            pointers = requests.get(r.get_archive_link("tarball", sha), timeout=10)
            github_server.include_lfs_in_archives("grp/lfs")
            smudged = requests.get(r.get_archive_link("tarball", sha), timeout=10)
            top = f"grp-lfs-{sha[:7]}/"
        assert tar_members(smudged.content)[top + "model.bin"] == content
        assert tar_members(pointers.content)[top + "model.bin"] == pointer
        assert tar_members(smudged.content)[top + "small.txt"] == b"s\n"


def test_a_stopped_stall_server_has_no_thread_left_in_accept():
    """When stop() returns, the stall server's accept loop has ended. A thread still blocked in
    accept() on the closed descriptor would take a connection meant for the next socket
    given that number (a later test's server, whose client then waited for an answer)."""
    import socket

    from tests.infra.hostile import StallServer
    from tests.waiting import wait_for

    server = StallServer().start()
    with socket.create_connection(("127.0.0.1", server.port), timeout=5):
        wait_for(lambda: server.connections, "the stall server to accept")
        server.stop()
    assert not server.thread.is_alive()
