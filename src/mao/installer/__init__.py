"""``maoctl instance install``: set up a MAO instance's install directory for docker compose.

- ``checks``: the host's prerequisites (engine, compose, git);
- ``federations``: the federation to join, from the marketplace's catalogue;
- ``values``: validators for every answer;
- ``render``: ``mao.yaml``, ``.env`` and ``docker-compose.yaml`` as data;
- ``writer``: the install directory, written at once;
- ``state``: the answers of an installation suspended until the operator answers;
- ``wizard``: the flow, by questions or by flags.
"""

from mao.installer.options import ClickUI, InstallOptions, Outcome
from mao.installer.render import InstallPlan, Secrets
from mao.installer.wizard import Installer, run_install

__all__ = ["ClickUI", "InstallOptions", "InstallPlan", "Installer", "Outcome", "Secrets", "run_install"]
