"""`mlops.gitops` against real git: bare repositories on disk, and one behind HTTP auth.

A race is real: the step is committed in a fresh clone, another author pushes to the
remote, then the step is pushed (the two stages `commit_step` runs back to back).
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from mlops.gitops import Checkout, GitError, GitTarget, commit_step
from tests.mlops.git_remote import bare_repo, commit_elsewhere, git, http_remote, log, show

VALUES = "envs/prod/sentiment-mlops.yaml"
RELEASE = {"model": {"storageUri": "s3://models/sentiment/v1/"}, "canary": {"enabled": False}}
CANARY = {"canary": {"enabled": True, "trafficPercent": 10, "storageUri": "s3://m/v2/"}}
MESSAGE = "sentiment: canary v2 at 10%\n\nevidence here\n"


@pytest.fixture
def remote(tmp_path: Path) -> Path:
    return bare_repo(tmp_path, {VALUES: RELEASE, "README.md": "the deploy repo"})


def test_the_step_lands_on_the_branch_merged_into_the_file(remote: Path) -> None:
    pushed = commit_step(GitTarget(str(remote), VALUES), CANARY, MESSAGE, "v2", ["decision"])
    assert pushed.branch == "main" and pushed.commit == git("rev-parse", "main", cwd=remote).strip()
    assert show(remote, "main", VALUES) == {
        "model": {"storageUri": "s3://models/sentiment/v1/"},  # the release's own keys stay
        "canary": {"enabled": True, "trafficPercent": 10, "storageUri": "s3://m/v2/"},
    }
    assert log(remote)[0] == MESSAGE
    assert git("show", f"main:{VALUES}", cwd=remote).startswith("# decision\n")
    # the same step again: the file already says it, nothing is committed
    again = commit_step(GitTarget(str(remote), VALUES), CANARY, MESSAGE, "v2")
    assert again.commit is None and len(log(remote)) == 2


def test_a_new_file_is_created_where_the_repository_has_none(remote: Path) -> None:
    commit_step(GitTarget(str(remote), "apps/tone/step.yaml"), CANARY, MESSAGE, "v2")
    assert show(remote, "main", "apps/tone/step.yaml") == CANARY


def test_a_concurrent_commit_to_another_file_is_rebased_over(remote: Path, tmp_path: Path) -> None:
    with Checkout(GitTarget(str(remote), VALUES)) as co:
        assert co.commit(CANARY, MESSAGE)
        racer = commit_elsewhere(remote, tmp_path, "other/app.yaml", {"replicas": 3}, "scale\n")
        pushed = co.push("v2")
    assert log(remote)[:2] == [MESSAGE, "scale\n"]
    parents = git("rev-list", "--parents", "-n", "1", "main", cwd=remote).split()
    assert parents == [pushed.commit, racer]  # a linear history on top of the other commit
    assert show(remote, "main", "other/app.yaml") == {"replicas": 3}
    assert show(remote, "main", VALUES)["canary"]["trafficPercent"] == 10  # type: ignore[index]


def test_a_concurrent_change_to_the_same_lines_is_refused_cleanly(
    remote: Path, tmp_path: Path
) -> None:
    by_hand = {**RELEASE, "canary": {"enabled": True, "trafficPercent": 50, "storageUri": "x"}}
    with Checkout(GitTarget(str(remote), VALUES)) as co:
        assert co.commit(CANARY, MESSAGE)
        racer = commit_elsewhere(remote, tmp_path, VALUES, by_hand, "by hand\n")
        with pytest.raises(GitError, match=r"refused: .* changed by another commit"):
            co.push("v2")
    assert git("rev-parse", "main", cwd=remote).strip() == racer  # the remote as they left it
    assert show(remote, "main", VALUES) == by_hand


def test_review_mode_pushes_a_new_branch_and_leaves_main_alone(remote: Path) -> None:
    before = git("rev-parse", "main", cwd=remote).strip()
    target = GitTarget(str(remote), VALUES, new_branch=True, branch_prefix="mlops/")
    pushed = commit_step(target, CANARY, MESSAGE, "v2-canary-10")
    assert pushed.branch == "mlops/v2-canary-10"
    assert git("rev-parse", "main", cwd=remote).strip() == before
    assert show(remote, "mlops/v2-canary-10", VALUES)["canary"] == CANARY["canary"]  # type: ignore[index]
    # a branch of that name already under review is never overwritten
    with pytest.raises(GitError, match="push to mlops/v2-canary-10 failed"):
        commit_step(target, {"canary": {"trafficPercent": 50}}, MESSAGE, "v2-canary-10")


def test_a_url_with_credentials_is_refused() -> None:
    with pytest.raises(GitError, match="token as a file"):
        GitTarget("https://x-access-token:s3cr3t@git.example.org/deploy.git")


def test_https_token_comes_from_the_file_and_never_shows(
    remote: Path,
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    token = "ghp_TopSecretToken1234567890"
    token_file = tmp_path / "token"
    token_file.write_text(token + "\n")
    wrong = tmp_path / "wrong-token"
    wrong.write_text("not-the-token\n")
    with http_remote(remote.parent, "x-access-token", token) as base:
        url = f"{base}/{remote.name}"
        with pytest.raises(GitError) as no_auth:  # no credential at all: refused, no prompt
            commit_step(GitTarget(url, VALUES), CANARY, MESSAGE, "v2")
        with pytest.raises(GitError) as bad:
            commit_step(GitTarget(url, VALUES, token_file=wrong), CANARY, MESSAGE, "v2")
        pushed = commit_step(GitTarget(url, VALUES, token_file=token_file), CANARY, MESSAGE, "v2")
    assert pushed.commit == git("rev-parse", "main", cwd=remote).strip()
    assert "Authentication failed" in str(bad.value) or "401" in str(bad.value), bad.value
    seen = capfd.readouterr()
    everything = "\n".join([str(no_auth.value), str(bad.value), seen.out, seen.err, caplog.text,
                            *log(remote), git("config", "--list", cwd=remote)])  # fmt: skip
    assert token not in everything
