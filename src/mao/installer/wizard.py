"""The installation flow of ``maoctl instance install``: questions, or flags, then files.

Order of questions:

1. prerequisites (engine, compose, git);
2. standalone or join a federation;
3. for a join: the federation (from the marketplace), this instance's name and public IP,
   then the operator's contact details and what they have to run. Without the operator's
   ``ETCD_INITIAL_CLUSTER`` value yet, the answers are saved and the installer stops;
   ``--resume`` continues from there;
4. install directory, instance name, public IP, git e-mail, SSH key directory and, for a
   join, the ``ETCD_INITIAL_CLUSTER`` value;
5. the install directory is written at once (see ``writer``).

Every question has a flag. Without a terminal (``non_interactive``) missing or invalid
values are all reported together and nothing is written.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import click

from mao.config import DEFAULT_MARKETPLACE_URL
from mao.errors import InvalidInput, MAOError
from mao.installer import network
from mao.installer.checks import CheckReport, check_dependencies, default_docker_socket
from mao.installer.federations import (
    ChosenFederation,
    find_federation,
    list_federations,
)
from mao.installer.keys import generate_key, read_public_key
from mao.installer.options import (
    ANSWER_KEYS,
    DEFAULT_INSTALL_DIR,
    DEFAULT_KEY_DIR,
    UI,
    ClickUI,
    InstallOptions,
    Outcome,
    check_source_dir,
    default_instance_name,
    deployment_settings,
    detect_source_dir,
    git_email_default,
)
from mao.installer.render import InstallPlan
from mao.installer.report import print_next_steps
from mao.installer.state import clear_state, default_state_file, load_state, save_state
from mao.installer.values import (
    ETCD_PEER_PORT,
    check_api_port,
    check_email,
    check_federate,
    check_host_path,
    check_initial_cluster,
    check_instance_name,
    check_public_ip,
    check_ssh_key_dir,
    find_private_key,
    peer_url,
)
from mao.installer.writer import check_install_dir, existing_entries, write_install
from mao.marketplace import MarketplaceError

T = TypeVar("T")


@dataclass(frozen=True)
class _Chosen:
    """The checked answers an installation plan is made of."""

    install_dir: Path
    name: str
    ip: str
    email: str
    key_dir: Path
    cluster: str | None
    api_port: int | None
    source_dir: Path | None


class _Flags:
    """The answers given as flags (without a terminal), checked one by one: what is missing
    or invalid is collected and reported together."""

    def __init__(self, answers: dict[str, Any]) -> None:
        self.answers = answers
        self.missing: list[str] = []
        self.errors: list[str] = []

    def get(self, key: str) -> Any:
        return self.answers.get(key)

    def take(self, key: str, check: Callable[[Any], T]) -> T | None:
        """The answer ``key`` checked; None when not given, or invalid (the error is kept)."""
        value = self.answers.get(key)
        if value is None or value == "":
            return None
        try:
            return check(value)
        except InvalidInput as exc:
            self.errors.append(exc.message)
            return None

    def check(self, call: Callable[[], object], errors: type[MAOError] = InvalidInput) -> None:
        """Run a check; the message of an ``errors`` it raises is kept."""
        try:
            call()
        except errors as exc:
            self.errors.append(exc.message)

    def report(self) -> None:
        """InvalidInput listing everything missing or invalid, if anything is."""
        if self.missing or self.errors:
            lines = [f"missing {flag}" for flag in self.missing] + self.errors
            raise InvalidInput(
                "cannot install without a terminal (--non-interactive):\n"
                + "\n".join(f"  - {line}" for line in lines)
                + "\nSee 'maoctl instance install --help'."
            )


def _require_flags(given: _Flags) -> None:
    """The flags an unattended installation cannot do without, and those its mode forbids."""
    federate = given.get("federate")
    if federate is None:
        given.missing.append("--standalone or --federate")
    for key, flag in (
        ("instance_name", "--instance-name NAME"),
        ("public_ip", "--public-ip IP"),
        ("git_email", "--git-email EMAIL"),
        ("ssh_key_dir", "--ssh-key-dir DIR"),
    ):
        if not given.get(key):
            given.missing.append(flag)
    if federate and not given.get("etcd_initial_cluster"):
        given.missing.append("--etcd-initial-cluster VALUE (sent by the federation operator)")
    if federate is False:
        for key, flag in (("federation", "--federation"), ("etcd_initial_cluster", "--etcd-initial-cluster")):
            if given.get(key):
                given.errors.append(f"{flag} is only for --federate")


class Installer:
    def __init__(
        self,
        options: InstallOptions,
        ui: UI,
        *,
        checker: Callable[[], CheckReport] = check_dependencies,
        addresses: Callable[[], list[network.LocalAddress]] = network.local_addresses,
    ) -> None:
        self.opts = options
        self.ui = ui
        self.checker = checker
        self.addresses = addresses
        self.interactive = not options.non_interactive
        given = options.state_file
        self.state_file = Path(given).expanduser().absolute() if given else default_state_file()
        self.answers: dict[str, Any] = {}
        self.report = CheckReport()
        self.federation: ChosenFederation | None = None

    # ------------------------------------------------------------------ entry

    def run(self) -> Outcome:
        if self.opts.resume:
            self.answers.update(load_state(self.state_file))
        for key in ANSWER_KEYS:
            value = getattr(self.opts, key)
            if value is not None:
                self.answers[key] = value
        if isinstance(self.answers.get("federation"), dict):  # saved by a suspended installation
            self.federation = ChosenFederation.from_state(self.answers["federation"])
            if self.federation is None:
                del self.answers["federation"]

        if self.interactive:
            self.ui.echo("MAO instance installer")
            self.ui.echo("")
            if self.opts.resume and self.federation is not None:
                self.ui.echo(f"Resuming the installation that joins the federation '{self.federation.name}'.")
                self.ui.echo("")
        self._check_prerequisites()
        if not self.interactive:
            return self._run_non_interactive()
        return self._run_interactive()

    # ------------------------------------------------------------------ prerequisites

    def _check_prerequisites(self) -> None:
        if self.opts.skip_checks:
            return
        self.report = self.checker()
        if self.report.ok:
            if self.interactive:
                compose = " ".join(self.report.compose or [])
                self.ui.echo(f"Prerequisites found: engine {self.report.engine}, {compose}, git.")
                self.ui.echo("")
            return
        text = "\n".join(problem.describe() for problem in self.report.problems)
        if not self.interactive:
            raise MAOError(
                "missing prerequisites:\n" + text + "\nInstall them, or pass --skip-checks to install anyway."
            )
        self.ui.warn("Some prerequisites are missing:")
        self.ui.echo(text)
        self.ui.echo("")
        if not self.ui.confirm("Continue anyway? (the instance will not start without them)", default=False):
            raise click.exceptions.Abort()

    # ------------------------------------------------------------------ non-interactive

    def _run_non_interactive(self) -> Outcome:
        given = _Flags(self.answers)
        _require_flags(given)
        install_dir = given.take("install_dir", lambda v: check_host_path(v, "install directory")) or check_host_path(
            DEFAULT_INSTALL_DIR, "install directory"
        )
        name = given.take("instance_name", check_instance_name)
        ip = given.take("public_ip", check_public_ip)
        email = given.take("git_email", check_email)
        api_port = given.take("api_port", check_api_port)
        source_dir = given.take("source_dir", check_source_dir)
        key_dir, generate = self._given_key_dir(given)
        cluster = self._given_cluster(given, name, ip)
        self._given_federation(given)
        given.check(lambda: check_install_dir(install_dir, self.opts.force), MAOError)
        given.check(lambda: deployment_settings(self.answers))
        given.report()
        assert name and ip and email and key_dir
        if generate:
            generate_key(key_dir, f"mao@{name}")
        return self._install(self._plan(_Chosen(install_dir, name, ip, email, key_dir, cluster, api_port, source_dir)))

    def _given_cluster(self, given: _Flags, name: str | None, ip: str | None) -> str | None:
        """The ``ETCD_INITIAL_CLUSTER`` value of a join, checked against this instance's name and IP."""
        if not (given.get("federate") and given.get("etcd_initial_cluster") and name and ip):
            return None
        return given.take("etcd_initial_cluster", lambda v: check_initial_cluster(v, name, ip, self._peer_port()))

    def _given_federation(self, given: _Flags) -> None:
        """The federation a join names, looked up in the marketplace (unless known already)."""
        if not (given.get("federate") and given.get("federation")) or self.federation is not None:
            return
        try:
            self.federation = self._lookup_federation(str(given.get("federation")))
        except InvalidInput as exc:
            given.errors.append(exc.message)

    def _given_key_dir(self, given: _Flags) -> tuple[Path | None, bool]:
        """The SSH key directory given as a flag, and whether a key pair is to be generated in it."""
        if not given.get("ssh_key_dir"):
            return None, False
        if not self.opts.generate_ssh_key:
            return given.take("ssh_key_dir", check_ssh_key_dir), False
        key_dir = given.take("ssh_key_dir", lambda v: check_host_path(v, "SSH key directory"))
        if key_dir is None:
            return None, False
        if key_dir.exists() and not key_dir.is_dir():
            given.errors.append(f"SSH key directory {key_dir} is not a directory")
        generate = find_private_key(key_dir) is None if key_dir.is_dir() else True
        if generate and not shutil.which("ssh-keygen"):
            given.errors.append(
                "--generate-ssh-key needs ssh-keygen (Debian/Ubuntu: sudo apt-get install openssh-client)"
            )
        return key_dir, generate

    def _lookup_federation(self, wanted: str) -> ChosenFederation:
        """Find ``wanted`` in the marketplace; an unreadable marketplace leaves just the name."""
        try:
            federations = list_federations(self._marketplace_url())
        except MarketplaceError as exc:
            chosen = ChosenFederation.unlisted(wanted)
            self.ui.warn(f"{exc.message}; continuing with the federation name '{chosen.name}'")
            return chosen
        return ChosenFederation.listed(find_federation(federations, wanted))

    # ------------------------------------------------------------------ interactive

    def _run_interactive(self) -> Outcome:
        a = self.answers
        federate = self._given("federate", lambda v: v if isinstance(v, bool) else check_federate(str(v)))
        if federate is None:
            self.ui.echo("How should this instance run?")
            self.ui.echo("  [1] standalone: a new instance, e.g. the first of a new federation")
            self.ui.echo("  [2] federate: join an existing MAO federation")
            federate = self._ask("Your choice (1 or 2)", check_federate, "1")
        a["federate"] = federate

        if federate:
            if self.federation is None:
                self.federation = self._choose_federation()
            a["federation"] = self.federation.to_state()
            self.ui.echo("")
            self.ui.echo("The instance name and public IP are agreed with the federation operator.")
            self._ask_instance_name()
            self._ask_public_ip()
            self._show_contact()
            if not a.get("etcd_initial_cluster"):
                have = self.ui.confirm(
                    "Do you already have the ETCD_INITIAL_CLUSTER value from the operator? "
                    "(no = stop here and resume later)",
                    default=False,
                )
                if not have:
                    return self._suspend()

        install_dir = self._ask_install_dir()
        name = self._ask_instance_name()
        ip = self._ask_public_ip()
        email = self._given("git_email", check_email) or self._ask(
            "Git e-mail address (author of the instance's dataset commits)", check_email, git_email_default()
        )
        a["git_email"] = email
        key_dir = self._ask_key_dir(name)
        cluster = None
        if federate:
            check = lambda v: check_initial_cluster(v, name, ip, self._peer_port())  # noqa: E731
            cluster = self._given("etcd_initial_cluster", check) or self._ask(
                "ETCD_INITIAL_CLUSTER value from the operator", check
            )
        api_port = self._given("api_port", check_api_port)
        source_dir = self._given("source_dir", check_source_dir)
        plan = self._plan(_Chosen(install_dir, name, ip, email, key_dir, cluster, api_port, source_dir))

        self.ui.echo("")
        self.ui.echo("Summary:")
        for label, value in (
            ("mode", f"join federation '{plan.federation}'" if federate else "standalone"),
            ("install directory", plan.install_dir),
            ("instance name", plan.instance_name),
            ("public IP", plan.public_ip),
            ("git e-mail", plan.git_email),
            ("SSH key directory", plan.ssh_key_dir),
            ("ETCD_INITIAL_CLUSTER", plan.initial_cluster),
            ("API", f"http://127.0.0.1:{plan.api_port}"),
        ):
            self.ui.echo(f"  {label + ':':<22}{value}")
        if not self.ui.confirm("Install now?", default=True):
            raise click.exceptions.Abort()
        return self._install(plan)

    def _given(self, key: str, check: Callable[[Any], T]) -> T | None:
        """A value from a flag or the saved answers; an invalid one is reported and asked again."""
        value = self.answers.get(key)
        if value is None or value == "":
            return None
        try:
            return check(value)
        except InvalidInput as exc:
            self.ui.warn(exc.message)
            self.answers.pop(key, None)
            return None

    def _ask(self, text: str, check: Callable[[str], T], default: str | None = None) -> T:
        while True:
            raw = self.ui.prompt(text, default)
            try:
                return check(raw)
            except InvalidInput as exc:
                self.ui.warn(exc.message)

    def _choose(self, labels: list[str], text: str = "Your choice") -> int:
        for number, label in enumerate(labels, 1):
            self.ui.echo(f"  [{number}] {label}")

        def pick(raw: str) -> int:
            raw = raw.strip()
            if raw.isdigit() and 1 <= int(raw) <= len(labels):
                return int(raw) - 1
            raise InvalidInput(f"answer a number from 1 to {len(labels)}")

        return self._ask(f"{text} (1-{len(labels)})", pick, "1")

    def _choose_federation(self) -> ChosenFederation:
        wanted = self.answers.get("federation")
        try:
            federations = list_federations(self._marketplace_url())
        except MarketplaceError as exc:
            self.ui.warn(exc.message)
            federations = []
        if wanted:
            try:
                if federations:
                    return ChosenFederation.listed(find_federation(federations, str(wanted)))
                return ChosenFederation.unlisted(str(wanted))
            except InvalidInput as exc:
                self.ui.warn(exc.message)
        if not federations:
            self.ui.echo("No federations could be listed from the marketplace.")
            return self._ask("Name of the federation to join (as its operator calls it)", ChosenFederation.unlisted)
        self.ui.echo("")
        self.ui.echo("Federations listed on the MAO marketplace:")
        labels = []
        for fed in federations:
            lines = [fed.name]
            if fed.description:
                lines.append(f"      Description: {fed.description}")
            lines.append(f"      Operator:    {fed.operator}")
            lines.append(f"      Contact:     {fed.contact}")
            labels.append("\n".join(lines))
        return ChosenFederation.listed(federations[self._choose(labels, "Federation to join")])

    def _show_contact(self) -> None:
        fed = self.federation
        name, ip = self.answers["instance_name"], self.answers["public_ip"]
        assert fed is not None
        self.ui.echo("")
        self.ui.echo(f"To join '{fed.name}', contact its operator:")
        if fed.operator:
            self.ui.echo(f"  Operator: {fed.operator}")
        self.ui.echo(f"  Contact:  {fed.contact or '(the marketplace lists no contact: ask the federation)'}")
        if fed.etcd_peer_hint:
            self.ui.echo(f"  Peers:    {fed.etcd_peer_hint}")
        self.ui.echo("Send them this instance's name and public IP:")
        self.ui.echo(f"  instance name: {name}")
        port = self._peer_port()
        self.ui.echo(f"  public IP:     {ip}   (port {port}/tcp must be reachable from the federation's instances)")
        self.ui.echo("The operator adds the instance to the federation with:")
        self.ui.echo(f"  maoctl federation member add {name} --peer-url {peer_url(ip, port)}")
        self.ui.echo("and sends you back the ETCD_INITIAL_CLUSTER value it prints.")
        self.ui.echo("")

    def _suspend(self) -> Outcome:
        answers = {k: v for k, v in self.answers.items() if k in ANSWER_KEYS and v is not None}
        save_state(self.state_file, answers)
        command = f"{self.opts.prog} instance install --resume"
        if self.opts.state_file:
            command += f" --state-file {self.state_file}"
        self.ui.echo(f"Your answers are saved in {self.state_file}.")
        self.ui.echo("When the operator has sent the ETCD_INITIAL_CLUSTER value, continue with:")
        self.ui.echo(f"  {command}")
        return Outcome("suspended", state_file=self.state_file)

    def _ask_install_dir(self) -> Path:
        def check(value: Any) -> Path:
            path = check_host_path(value, "install directory")
            if existing_entries(path) and not self.opts.force:
                if not self.ui.confirm(
                    f"{path} already exists and is not empty. Rewrite its configuration (its data is kept)?",
                    default=False,
                ):
                    raise InvalidInput("choose another install directory")
                self.opts.force = True
            return path

        path = self._given("install_dir", check) or self._ask(
            "MAO install directory", check, str(self.answers.get("install_dir") or DEFAULT_INSTALL_DIR)
        )
        self.answers["install_dir"] = str(path)
        return path

    def _ask_instance_name(self) -> str:
        name = self._given("instance_name", check_instance_name) or self._ask(
            "MAO instance name", check_instance_name, default_instance_name()
        )
        self.answers["instance_name"] = name
        return name

    def _ask_public_ip(self) -> str:
        ip = self._given("public_ip", check_public_ip)
        if ip is None:
            addresses = self.addresses()
            self.ui.echo("Public IP: the address other instances reach this host on (port 2380).")
            index = self._choose([addr.label() for addr in addresses] + ["enter an address manually"], "Public IP")
            if index < len(addresses):
                ip = check_public_ip(addresses[index].ip)
            else:
                ip = self._ask("Public IP address", check_public_ip)
        self.answers["public_ip"] = ip
        return ip

    def _ask_key_dir(self, name: str) -> Path:
        ssh_given = self._given("ssh_key_dir", lambda v: check_host_path(v, "SSH key directory"))
        default = str(ssh_given) if ssh_given else DEFAULT_KEY_DIR
        first = ssh_given is not None
        while True:
            if first:
                path, first = ssh_given, False
            else:
                path = self._ask(
                    "SSH key directory (holds the key pair for git access to dataset repositories)",
                    lambda v: check_host_path(v, "SSH key directory"),
                    default,
                )
            assert path is not None
            try:
                path = check_ssh_key_dir(path)
                break
            except InvalidInput as exc:
                self.ui.warn(exc.message)
            if path.exists() and not path.is_dir():
                continue
            if self.opts.generate_ssh_key or self.ui.confirm(
                f"Generate a new ed25519 key pair in {path}?", default=True
            ):
                try:
                    key = generate_key(path, f"mao@{name}")
                except MAOError as exc:
                    self.ui.warn(exc.message)
                else:
                    self.ui.echo(f"Created {key} and {key}.pub")
                    break
            default = str(path)
        self.answers["ssh_key_dir"] = str(path)
        return path

    # ------------------------------------------------------------------ install

    def _peer_port(self) -> int:
        try:
            return int(deployment_settings(self.answers).get("etcd_peer_port", ETCD_PEER_PORT))
        except InvalidInput:
            return ETCD_PEER_PORT

    def _marketplace_url(self) -> str:
        return str(self.answers.get("marketplace_url") or DEFAULT_MARKETPLACE_URL)

    def _plan(self, chosen: _Chosen) -> InstallPlan:
        socket_path = self.answers.get("docker_socket") or default_docker_socket(self.report.engine)
        return InstallPlan(
            install_dir=chosen.install_dir,
            instance_name=chosen.name,
            public_ip=chosen.ip,
            git_email=chosen.email,
            ssh_key_dir=chosen.key_dir,
            mode="join" if self.answers.get("federate") else "standalone",
            federation=self.federation.name if self.federation else None,
            etcd_initial_cluster=chosen.cluster,
            marketplace_url=self._marketplace_url(),
            api_port=chosen.api_port or 8080,
            docker_socket=str(check_host_path(socket_path, "docker socket")),
            source_dir=chosen.source_dir if chosen.source_dir is not None else detect_source_dir(),
            publish_peer_on_ip=network.is_local_address(chosen.ip),
            **deployment_settings(self.answers),
        )

    def _install(self, plan: InstallPlan) -> Outcome:
        write_install(plan, force=self.opts.force)
        if self.opts.resume or plan.mode == "join":
            clear_state(self.state_file)  # the suspended join is done
        try:
            _, public_key = read_public_key(plan.ssh_key_dir)
        except MAOError as exc:
            self.ui.warn(exc.message)
            public_key = None
        outcome = Outcome("installed", plan=plan, public_key=public_key)
        print_next_steps(self.ui, outcome, self.report)
        return outcome


def run_install(options: InstallOptions, ui: UI | None = None) -> Outcome:
    return Installer(options, ui or ClickUI()).run()
