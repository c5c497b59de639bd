"""Run the ``git`` command line with a fixed identity, no prompts and a pinned SSH setup.

Every git invocation in the project goes through :class:`Git`: argument lists,
never a shell, an explicit ``cwd``, a timeout, and failures raised as
:class:`~mao.errors.GitError` naming the subcommand and the remote involved.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shlex
import signal
import stat
import subprocess
import tempfile
import threading
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from mao.errors import GitError, InvalidInput, map_errors

logger = logging.getLogger(__name__)

#: Private keys looked for in the SSH key directory, in this order.
KEY_NAMES = ("id_ed25519", "id_ecdsa", "id_rsa")

#: Transports git may use; ``ext::`` and friends are never allowed.
ALLOWED_PROTOCOLS = "file:git:http:https:ssh"

# Settings applied to every command, whatever the user's global git config says.
_FORCED_CONFIG = {
    "commit.gpgsign": "false",
    "tag.gpgsign": "false",
    "core.quotePath": "false",
    "core.autocrlf": "false",
    "core.fsmonitor": "false",
    "advice.detachedHead": "false",
    "gc.autoDetach": "false",
    "rerere.enabled": "false",
}

# Inherited GIT_* variables that may stay (transport and tracing); all others are dropped
# so that a caller's GIT_DIR, GIT_INDEX_FILE, GIT_CONFIG_* ... cannot redirect our commands.
_KEPT_GIT_PREFIXES = ("GIT_TRACE", "GIT_SSL_", "GIT_HTTP_", "GIT_PROXY_", "GIT_CURL_", "GIT_EXEC_PATH")

# Subcommands that talk to a remote, and so are reported with that remote's URL.
_REMOTE_COMMANDS = {"clone", "fetch", "push", "pull", "ls-remote"}
# ... and those that may reach it over ssh (git-annex's transfers too).
_SSH_COMMANDS = _REMOTE_COMMANDS | {"annex"}

_CREDENTIALS_RE = re.compile(r"(?<=://)([^/@:\s]+):[^/@\s]*@")
_HTTP_TOKEN_RE = re.compile(r"(?<=https://|.http://)[^/@:\s]+@")


@contextmanager
def temporary_index(clone: Path) -> Iterator[dict[str, str]]:
    """The environment of git commands that work in an index of their own (in ``clone``'s
    git directory, removed afterwards), never the clone's or a worktree's."""
    fd, index = tempfile.mkstemp(prefix=".tmp-index-", dir=clone / ".git")
    os.close(fd)
    os.unlink(index)
    try:
        yield {"GIT_INDEX_FILE": index}
    finally:
        Path(index).unlink(missing_ok=True)


def _text(data: bytes, *, translate: bool = True) -> str:
    """Output as text, as ``subprocess`` reads it in text mode (universal newlines), or as it is."""
    text = data.decode("utf-8", "surrogateescape")
    return text.replace("\r\n", "\n").replace("\r", "\n") if translate else text


def redact(text: str) -> str:
    """Hide passwords and tokens embedded in URLs (``https://user:token@host``)."""
    return _HTTP_TOKEN_RE.sub("***@", _CREDENTIALS_RE.sub(r"\1:***@", text))


def _ssh_config_value(path: Path) -> str:
    """``path`` as an ssh ``-o Key=value`` value: ssh expands ``%`` tokens and splits on spaces there."""
    text = str(path)
    if '"' in text or "\n" in text or "${" in text:
        raise InvalidInput(f"unsupported characters in SSH key directory path {text!r}")
    text = text.replace("%", "%%")
    return f'"{text}"' if any(c.isspace() for c in text) else text


class Git:
    """The git command line, configured once for this instance.

    ``ssh_key_dir`` holds the instance's key pair (``id_ed25519``, ``id_ecdsa`` or
    ``id_rsa``, first found wins) and its ``known_hosts``; new host keys are accepted
    on first contact and pinned afterwards. ``name`` and ``email`` sign every commit.
    With ``signing_key`` (a private SSH key), every commit is signed with it through git's
    SSH signing: ``commit`` and ``merge`` by configuration, ``commit-tree`` by a ``-S`` put
    first (a later ``--no-gpg-sign``, as for the shared empty root, still wins).

    With ``ssh_persist`` seconds (and a key directory), the git commands of this instance
    that go to one SSH host share one connection (ssh's ``ControlMaster``), kept open that
    long after its last use: a fetch or push then costs no key exchange. The connection's
    socket is in a directory of this user's alone (0700, checked) and is named after the key
    as well as the host, so no other key ever rides on it.
    """

    def __init__(
        self,
        *,
        ssh_key_dir: Path | None,
        name: str,
        email: str,
        timeout: float = 120,
        signing_key: Path | None = None,
        ssh_persist: float = 0,
    ) -> None:
        if not name or not name.strip() or "\n" in name:
            raise InvalidInput("git author name must be a non-empty single line")
        if not email or not email.strip() or "\n" in email or "<" in email or ">" in email:
            raise InvalidInput(f"invalid git e-mail address {email!r}")
        if timeout <= 0:
            raise InvalidInput("git timeout must be positive")
        self.name = name.strip()
        self.email = email.strip()
        self.timeout = float(timeout)
        self.ssh_key_dir = Path(ssh_key_dir).absolute() if ssh_key_dir is not None else None
        self.ssh_key = self._find_key()
        self.signing_key = Path(signing_key).absolute() if signing_key is not None else None
        """The private key every commit is signed with, or None (unsigned commits)."""
        self.ssh_persist = max(0.0, float(ssh_persist))
        self._control_dir = Path(tempfile.gettempdir()) / f"mao-ssh-{os.getuid()}"
        self._shared_ssh: str | None = None
        """With shared connections: the ssh command without them, for when their directory is gone."""
        self._env = self._build_env()
        self._counted = threading.Lock()
        self.processes = 0
        """How many git processes this runner has started (a cheap cost measure)."""
        self.by_subcommand: Counter[str] = Counter()
        """The same, per git subcommand."""

    # ------------------------------------------------------------------ setup

    def _find_key(self) -> Path | None:
        if self.ssh_key_dir is None:
            return None
        for key_name in KEY_NAMES:
            candidate = self.ssh_key_dir / key_name
            if candidate.is_file():
                return candidate
        logger.warning(
            "no SSH private key (%s) in %s; ssh will use its default identities",
            ", ".join(KEY_NAMES),
            self.ssh_key_dir,
        )
        return None

    @property
    def ssh_command(self) -> str | None:
        """The ``GIT_SSH_COMMAND`` value, or ``None`` when the inherited one is kept."""
        return self._env.get("GIT_SSH_COMMAND")

    def _build_ssh_command(self) -> str:
        parts = ["ssh"]
        if self.ssh_key is not None:
            if "%" in str(self.ssh_key):
                # ssh checks a -i path before expanding %-tokens in it, so no spelling of '%' works there
                parts += ["-o", f"IdentityFile={_ssh_config_value(self.ssh_key)}"]
            else:
                parts += ["-i", str(self.ssh_key)]
            parts += ["-o", "IdentitiesOnly=yes"]
        parts += ["-o", "BatchMode=yes", "-o", "ConnectTimeout=10"]
        if self.ssh_key_dir is not None:
            known_hosts = _ssh_config_value(self.ssh_key_dir / "known_hosts")
            parts += ["-o", f"UserKnownHostsFile={known_hosts}", "-o", "StrictHostKeyChecking=accept-new"]
            unshared = " ".join(shlex.quote(part) for part in parts)
            control = self._control_path() if self.ssh_persist else None
            if control is not None:
                self._shared_ssh = unshared
                parts += ["-o", "ControlMaster=auto", "-o", f"ControlPath={control}"]
                parts += ["-o", f"ControlPersist={max(1, round(self.ssh_persist))}", "-o", "ServerAliveInterval=10"]
        # git runs GIT_SSH_COMMAND through a shell: quote every word.
        return " ".join(shlex.quote(part) for part in parts)

    def _control_dir_ok(self, *, warn: bool = False) -> bool:
        """Whether the directory of the shared SSH connections is there (made if not), a
        directory of this user's alone; checked again before each command that may use it."""
        directory = self._control_dir
        try:
            directory.mkdir(mode=0o700, exist_ok=True)
            info = directory.lstat()
        except OSError as exc:
            if warn:
                logger.warning("SSH connections are not shared: cannot make %s: %s", directory, exc)
            return False
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o077:
            if warn:
                logger.warning("SSH connections are not shared: %s is not a directory of this user's alone", directory)
            return False
        return True

    def _control_path(self) -> str | None:
        """Where the shared SSH connection of this key listens, as an ssh option value; None
        (one connection per command) when no private directory for it can be had."""
        directory = self._control_dir
        if not self._control_dir_ok(warn=True):
            return None
        identity = str(self.ssh_key or self.ssh_key_dir).encode("utf-8", "surrogateescape")
        # a socket's path holds at most 107 bytes, and ssh adds 17 while it sets one up (%C: 40)
        if len(os.fsencode(directory)) > 32 or any(c.isspace() or c in "%\"'\\" for c in str(directory)):
            return None
        return f"{directory}/{hashlib.sha256(identity).hexdigest()[:16]}-%C"

    def _build_env(self) -> dict[str, str]:
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith("GIT_") or key.startswith(_KEPT_GIT_PREFIXES)
        }
        inherited_ssh = os.environ.get("GIT_SSH_COMMAND")
        if self.ssh_key_dir is None and inherited_ssh:
            env["GIT_SSH_COMMAND"] = inherited_ssh
        else:
            env["GIT_SSH_COMMAND"] = self._build_ssh_command()
        env.update(
            {
                "GIT_TERMINAL_PROMPT": "0",
                "GIT_AUTHOR_NAME": self.name,
                "GIT_AUTHOR_EMAIL": self.email,
                "GIT_COMMITTER_NAME": self.name,
                "GIT_COMMITTER_EMAIL": self.email,
                "GIT_EDITOR": "true",
                "GIT_ALLOW_PROTOCOL": ALLOWED_PROTOCOLS,
                "LC_ALL": "C",
                "GIT_CONFIG_COUNT": str(len(_FORCED_CONFIG)),
            }
        )
        config = dict(_FORCED_CONFIG)
        if self.signing_key is not None:
            config.update({"gpg.format": "ssh", "user.signingKey": str(self.signing_key), "commit.gpgsign": "true"})
        env["GIT_CONFIG_COUNT"] = str(len(config))
        for index, (key, value) in enumerate(config.items()):
            env[f"GIT_CONFIG_KEY_{index}"] = key
            env[f"GIT_CONFIG_VALUE_{index}"] = value
        return env

    @property
    def env(self) -> dict[str, str]:
        """A copy of the environment every git command runs with."""
        return dict(self._env)

    # ------------------------------------------------------------------ running

    def run(
        self,
        args: Sequence[str],
        cwd: Path | None = None,
        check: bool = True,
        *,
        input: str | None = None,
        env: Mapping[str, str] | None = None,
        exact: bool = False,
    ) -> str:
        """Run ``git <args>`` and return its stdout; raise GitError on failure when ``check``
        (``exact``: see :meth:`call`)."""
        result = self.call(args, cwd, input=input, env=env, exact=exact)
        if check and result.returncode != 0:
            raise self.error(args, cwd, result.returncode, result.stderr)
        return result.stdout

    def call(
        self,
        args: Sequence[str],
        cwd: Path | None = None,
        *,
        input: str | None = None,
        env: Mapping[str, str] | None = None,
        exact: bool = False,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``git <args>`` and return the completed process, whatever its exit code.

        Output is read as text with universal newlines, or ``exact`` as git wrote it (for
        NUL-separated output, where a path may hold a carriage return). Raises GitError only
        when git cannot be started or runs past the timeout (the whole process group, ssh
        included, is killed then).
        """
        data = input.encode("utf-8", "surrogateescape") if input is not None else None
        result = self._communicate(args, cwd, data, env)
        stdout = _text(result.stdout, translate=not exact)
        return subprocess.CompletedProcess(result.args, result.returncode, stdout, _text(result.stderr))

    def call_bytes(
        self, args: Sequence[str], cwd: Path | None = None, input: bytes | None = None
    ) -> subprocess.CompletedProcess[bytes]:
        """:meth:`call` with bytes in and out (a pack, say)."""
        return self._communicate(args, cwd, input, None)

    def _communicate(
        self, args: Sequence[str], cwd: Path | None, input: bytes | None, env: Mapping[str, str] | None
    ) -> subprocess.CompletedProcess[bytes]:
        argv = self._argv(args, cwd)
        full_env = self._env if env is None else {**self._env, **env}
        if self._shared_ssh is not None and self.subcommand(args) in _SSH_COMMANDS and not self._control_dir_ok():
            full_env = {**full_env, "GIT_SSH_COMMAND": self._shared_ssh}  # its socket's directory is gone
        with map_errors("git", f"git {self.subcommand(args)}", details={"stderr": "git could not be started"}):
            proc = subprocess.Popen(
                argv,
                cwd=cwd,
                env=full_env,
                stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
            )
        try:
            stdout, stderr = proc.communicate(input=input, timeout=self.timeout)
        except subprocess.TimeoutExpired as exc:
            _kill_group(proc)
            proc.communicate()
            raise GitError(
                self._describe(args, cwd, f"timed out after {self.timeout:g}s"),
                details={"stderr": "timeout"},
            ) from exc
        except BaseException:
            _kill_group(proc)
            proc.wait()
            raise
        return subprocess.CompletedProcess(argv, proc.returncode, stdout, stderr)

    def objects(self, cwd: Path, shas: Sequence[str]) -> list[tuple[str, bytes] | None]:
        """Each object's type and content, in the order asked, None for one ``cwd`` does not
        have (one ``cat-file --batch``)."""
        if not shas:
            return []
        out = self.call_bytes(["cat-file", "--batch"], cwd, "".join(f"{sha}\n" for sha in shas).encode())
        if out.returncode != 0:
            raise self.error(["cat-file", "--batch"], cwd, out.returncode, _text(out.stderr))
        data, at = out.stdout, 0
        found: list[tuple[str, bytes] | None] = []
        for _ in shas:
            end = data.index(b"\n", at)
            header = data[at:end].split()
            if len(header) != 3:  # "<name> missing" (or ambiguous)
                found.append(None)
                at = end + 1
                continue
            size = int(header[2])
            found.append((header[1].decode(), data[end + 1 : end + 1 + size]))
            at = end + 1 + size + 1
        return found

    def tree_with(self, clone: Path, tree: str, records: Sequence[str]) -> str:
        """The tree ``tree`` (any tree-ish) becomes with index ``records`` applied (``<mode> <object>\\t<path>``;
        mode 0 removes the path), built in a temporary index: no worktree is read or written.
        GitError when git refuses a record."""
        with temporary_index(clone) as env:
            self.run(["read-tree", tree], clone, env=env)
            if records:  # NUL-separated: a path a tool named may hold a newline
                self.run(
                    ["update-index", "-z", "--index-info"], clone, input="".join(f"{r}\0" for r in records), env=env
                )
            return self.run(["write-tree"], clone, env=env).strip()

    def existing_commits(self, cwd: Path, shas: Sequence[str]) -> set[str]:
        """Those of ``shas`` (full object names) that are commits in ``cwd`` (one ``cat-file --batch-check``)."""
        wanted = [sha for sha in shas if sha and all(c in "0123456789abcdef" for c in sha)]
        if not wanted:
            return set()
        listed = self.run(
            ["cat-file", "--batch-check=%(objectname) %(objecttype)"], cwd, input="\n".join(wanted) + "\n"
        )
        return {parts[0] for line in listed.splitlines() if len(parts := line.split()) == 2 and parts[1] == "commit"}

    @contextmanager
    def stream(self, args: Sequence[str], cwd: Path | None = None) -> Iterator[IO[bytes]]:
        """Run ``git <args>`` and yield its stdout as a binary stream (e.g. for ``git archive``).

        The command is killed if it outlives the timeout; a nonzero exit raises
        GitError when the block ends.
        """
        argv = self._argv(args, cwd)
        with tempfile.TemporaryFile() as err_file:
            try:
                proc = subprocess.Popen(
                    argv,
                    cwd=cwd,
                    env=self._env,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=err_file,
                    start_new_session=True,
                )
            except OSError as exc:
                raise GitError(f"cannot run git {self.subcommand(args)}: {exc}", details={"stderr": str(exc)}) from exc
            timed_out = threading.Event()

            def expire() -> None:
                timed_out.set()
                _kill_group(proc)

            timer = threading.Timer(self.timeout, expire)
            timer.daemon = True
            timer.start()
            assert proc.stdout is not None
            try:
                yield proc.stdout
                proc.stdout.read()  # drain what the consumer left, so git can exit
                returncode = proc.wait()
            except BaseException:
                _kill_group(proc)
                proc.wait()
                raise
            finally:
                timer.cancel()
                proc.stdout.close()
            if timed_out.is_set():
                raise GitError(
                    self._describe(args, cwd, f"timed out after {self.timeout:g}s"), details={"stderr": "timeout"}
                )
            if returncode != 0:
                err_file.seek(0)
                stderr = err_file.read().decode("utf-8", "replace")
                raise self.error(args, cwd, returncode, stderr)

    # ------------------------------------------------------------------ errors

    def _argv(self, args: Sequence[str], cwd: Path | None) -> list[str]:
        if isinstance(args, str):
            raise TypeError("git arguments must be a list, not a string")
        if cwd is not None and not Path(cwd).is_absolute():
            raise ValueError(f"git working directory must be absolute: {cwd}")
        with self._counted:
            self.processes += 1
            self.by_subcommand[self.subcommand(args)] += 1
        argv = ["git", *[str(arg) for arg in args]]
        if self.signing_key is not None and self.subcommand(args) == "commit-tree":
            at = argv.index("commit-tree") + 1
            argv[at:at] = ["-S"]
        return argv

    @staticmethod
    def subcommand(args: Sequence[str]) -> str:
        """The git subcommand in ``args``, skipping global options such as ``-c k=v``."""
        skip_next = False
        for arg in args:
            if skip_next:
                skip_next = False
                continue
            if arg in ("-c", "-C", "--git-dir", "--work-tree"):
                skip_next = True
                continue
            if not arg.startswith("-"):
                return arg
        return "?"

    def remote_of(self, args: Sequence[str], cwd: Path | None) -> str | None:
        """The remote URL a network command talks to, credentials hidden."""
        sub = self.subcommand(args)
        if sub not in _REMOTE_COMMANDS:
            return None
        positional = [a for a in args[list(args).index(sub) + 1 :] if not a.startswith("-")]
        if not positional:
            return None
        remote = positional[0]
        if sub != "clone" and cwd is not None and re.fullmatch(r"[A-Za-z0-9._-]+", remote):
            try:
                result = subprocess.run(
                    ["git", "remote", "get-url", remote],
                    cwd=cwd,
                    env=self._env,
                    capture_output=True,
                    text=True,
                    timeout=10,
                    check=False,
                )
            except (OSError, subprocess.SubprocessError):
                result = None
            if result is not None and result.returncode == 0 and result.stdout.strip():
                remote = result.stdout.strip()
        return redact(remote)

    def _describe(self, args: Sequence[str], cwd: Path | None, what: str) -> str:
        message = f"git {self.subcommand(args)}"
        remote = self.remote_of(args, cwd)
        if remote:
            message += f" (remote {remote})"
        return f"{message} {what}"

    def error(self, args: Sequence[str], cwd: Path | None, returncode: int, stderr: str) -> GitError:
        """Build the GitError for a failed command: subcommand, remote, and git's own reason."""
        stderr = redact(stderr or "")
        lines = [line.strip() for line in stderr.splitlines() if line.strip()]
        reason = next((line for line in lines if line.startswith(("fatal:", "error:"))), lines[-1] if lines else "")
        what = f"failed (exit {returncode})"
        if reason:
            what += f": {reason}"
        return GitError(self._describe(args, cwd, what), details={"stderr": stderr, "exit_code": returncode})


def _kill_group(proc: subprocess.Popen[Any]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
