"""Hand a values step to continuous delivery: one commit in the Git repository a GitOps
controller (Argo CD, Flux) syncs, with the evidence in its message.

The values file in the repository (`path`) is the release's overlay of the cycle's steps:
each step is merged into what the file already says (Helm's merge), so a promotion's
`model.storageUri` survives the next canary's `canary.*`. The commit goes either straight
onto `branch` (the controller applies it on its next sync) or onto a new branch
`<branch_prefix><version>-<action>` for a pull request (a person, or CI, merges it).

A push that races another commit to the branch is rebased over it and retried; when
both touched the same lines the rebase is aborted and the step is refused with an error
(nothing is pushed, the caller keeps its state). Credentials come only from mounted files:
an SSH private key (`GIT_SSH_COMMAND` names the file), or an HTTPS token read by a
`GIT_ASKPASS` helper that `cat`s the file, so the secret is never in argv, in the
environment, in the remote URL or in any output.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from mlops.canary import merge

ASKPASS = """#!/bin/sh
# git asks "Username for ..." then "Password for ...": the name is not secret, the token is a file
case "$1" in
  Username*) printf '%s\\n' "$MLOPS_GIT_USERNAME" ;;
  *) cat "$MLOPS_GIT_TOKEN_FILE" ;;
esac
"""


class GitError(RuntimeError):
    """The step could not be committed or pushed; the remote is as it was."""


@dataclass(frozen=True)
class GitTarget:
    """Where a values step is committed, and with which credentials (files, never values)."""

    repo: str  # clone URL: a path, file://, ssh://, git@host:..., https://
    path: str = "mlops/step.yaml"  # the values file inside the repository
    branch: str = "main"  # the branch the controller syncs
    new_branch: bool = False  # True: push a new branch for review instead of onto `branch`
    branch_prefix: str = "mlops/"
    ssh_key_file: Path | None = None
    known_hosts_file: Path | None = None
    token_file: Path | None = None
    username: str = "x-access-token"  # HTTPS user for the token (GitHub; GitLab: oauth2)
    author: str = "mlops-cycle <mlops-cycle@users.noreply.local>"
    attempts: int = 3  # pushes tried when another commit races this one

    def __post_init__(self) -> None:
        parts = urlsplit(self.repo)
        if parts.password or (parts.username and parts.scheme in ("http", "https")):
            raise GitError(
                "the Git URL carries credentials; give the token as a file (--git-token-file)"
            )
        if Path(self.path).is_absolute() or ".." in Path(self.path).parts:
            raise GitError(f"--git-path {self.path!r}: a path inside the repository")


@dataclass(frozen=True)
class Pushed:
    """What landed: the commit, and the branch it is on (None: the file already said so)."""

    commit: str | None
    branch: str


class Git:
    """git in one work tree, with the target's credentials wired in from files."""

    def __init__(self, target: GitTarget, scratch: Path) -> None:
        self.target = target
        self.tree = scratch / "repo"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
        self.env.update(GIT_TERMINAL_PROMPT="0", GIT_CONFIG_NOSYSTEM="1", LC_ALL="C")
        if target.token_file is not None:
            helper = scratch / "askpass.sh"
            helper.write_text(ASKPASS)
            helper.chmod(0o700)
            self.env.update(
                GIT_ASKPASS=str(helper),
                MLOPS_GIT_USERNAME=target.username,
                MLOPS_GIT_TOKEN_FILE=str(target.token_file),
            )
        if target.ssh_key_file is not None:
            ssh = ["ssh", "-i", str(target.ssh_key_file), "-o", "IdentitiesOnly=yes",
                   "-o", "BatchMode=yes"]  # fmt: skip
            if target.known_hosts_file is not None:
                ssh += ["-o", f"UserKnownHostsFile={target.known_hosts_file}",
                        "-o", "StrictHostKeyChecking=yes"]  # fmt: skip
            self.env["GIT_SSH_COMMAND"] = shlex.join(ssh)
        name, _, email = target.author.partition("<")
        self.identity = ["-c", f"user.name={name.strip()}", "-c",
                         f"user.email={email.rstrip('>').strip()}"]  # fmt: skip

    def _scrub(self, text: str) -> str:
        """Belt and braces: git never sees the token in argv, but never echo it either."""
        if self.target.token_file is not None:
            try:
                token = self.target.token_file.read_text().strip()
            except OSError:
                return text
            if token:
                text = text.replace(token, "***")
        return text

    def run(self, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        """One git command; its output already scrubbed."""
        cmd = ["git", "-c", "credential.helper=", *self.identity, *args]
        proc = subprocess.run(
            cmd, cwd=cwd or self.tree, env=self.env, capture_output=True, text=True, timeout=300
        )
        proc.stdout, proc.stderr = self._scrub(proc.stdout), self._scrub(proc.stderr)
        return proc

    def __call__(self, *args: str, cwd: Path | None = None) -> str:
        """One git command that must succeed: its stdout, or a GitError with its stderr."""
        proc = self.run(*args, cwd=cwd)
        if proc.returncode != 0:
            raise GitError(f"git {args[0]} failed: {(proc.stderr or proc.stdout).strip()}")
        return proc.stdout


def _rendered(values: dict[str, Any], header: Sequence[str]) -> str:
    return "".join(f"# {line}\n" for line in header) + yaml.safe_dump(values, sort_keys=False)


class Checkout:
    """A fresh clone of the target branch in a scratch directory (removed on exit): commit a
    step into it, then push. Two stages, so that whatever lands on the remote in between is
    what the push has to deal with."""

    def __init__(self, target: GitTarget) -> None:
        self.target = target
        self._tmp = tempfile.TemporaryDirectory(prefix="mlops-git-")
        self.git = Git(target, Path(self._tmp.name))

    def __enter__(self) -> Checkout:
        t = self.target
        self.git("clone", "--quiet", "--single-branch", "--branch", t.branch, "--", t.repo,
                 str(self.git.tree), cwd=Path(self._tmp.name))  # fmt: skip
        return self

    def __exit__(self, *exc: object) -> None:
        self._tmp.cleanup()

    def commit(self, step: dict[str, Any], message: str, header: Sequence[str] = ()) -> bool:
        """Merge `step` into the values file and commit; False when it already says so."""
        file = self.git.tree / self.target.path
        current = yaml.safe_load(file.read_text()) if file.is_file() else {}
        if not isinstance(current, dict):
            raise GitError(f"{self.target.path} in {self.target.repo} is not a YAML mapping")
        merged = merge(current, step)
        if file.is_file() and merged == current:
            return False
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_text(_rendered(merged, header))
        self.git("add", "--", self.target.path)
        msg = Path(self._tmp.name) / "message.txt"
        msg.write_text(message)
        self.git("commit", "--quiet", "--file", str(msg))
        return True

    def push(self, topic: str) -> Pushed:
        """Push the commit: onto a new review branch, or onto the branch, rebasing over
        commits that raced it (refused when the rebase conflicts)."""
        t, git = self.target, self.git
        if t.new_branch:
            branch = f"{t.branch_prefix}{topic}"
            # a new branch only (no force): never overwrite one a person may be reviewing
            push = git.run("push", "--porcelain", "origin", f"HEAD:refs/heads/{branch}")
            if push.returncode != 0:
                raise GitError(
                    f"git push to {branch} failed: {(push.stderr or push.stdout).strip()}"
                )
            return Pushed(git("rev-parse", "HEAD").strip(), branch)
        for _ in range(max(1, t.attempts)):
            push = git.run("push", "--porcelain", "origin", f"HEAD:refs/heads/{t.branch}")
            if push.returncode == 0:
                return Pushed(git("rev-parse", "HEAD").strip(), t.branch)
            if "[rejected]" not in push.stdout:  # not a race: auth, a hook, a protected branch
                raise GitError(f"git push failed: {(push.stderr or push.stdout).strip()}")
            git("fetch", "--quiet", "origin", t.branch)
            if git.run("rebase", "--quiet", "FETCH_HEAD").returncode != 0:
                git.run("rebase", "--abort")
                raise GitError(
                    f"refused: {t.path} on {t.branch} was changed by another commit in the "
                    "same place; nothing pushed (look at the branch, then run the cycle again)"
                )
        raise GitError(f"push to {t.branch} lost the race {t.attempts} times")


def commit_step(
    target: GitTarget,
    step: dict[str, Any],
    message: str,
    topic: str,
    header: Sequence[str] = (),
) -> Pushed:
    """Merge `step` into the values file at `target.path`, commit with `message`, push.

    `topic` names the new branch in review mode (`<branch_prefix><topic>`). Commit None:
    the file already holds this step, nothing was pushed.
    """
    with Checkout(target) as co:
        if not co.commit(step, message, header):
            return Pushed(None, target.branch)
        return co.push(topic)
