"""A tallier in a process of its own: ``python tally_process.py DATA_DIR NAME ENDPOINTS PREFIX SLOT [die]``.

With ``die``, the process SIGKILLs itself right after pushing the tally commit, before
the registry hears of it.
"""

from __future__ import annotations

import json
import os
import signal
import sys

from mao.agreement.ballots import BallotBox, SlotRef
from mao.config import Settings
from mao.instance import Instance


def main(argv: list[str]) -> None:
    data_dir, name, endpoints, prefix, slot = argv[:5]
    settings = Settings(
        instance_name=name,
        data_dir=data_dir,
        registry_backend="etcd",
        etcd_endpoints=endpoints.split(","),
        registry_prefix=prefix,
    )
    inst = Instance(settings)
    inst.setup()
    if argv[5:] == ["die"]:
        BallotBox.record = lambda self, ref, outcome: os.kill(os.getpid(), signal.SIGKILL)
    outcome = inst.tallier.tally(SlotRef("metrics", "collect", "gather", slot))
    print(json.dumps({"commit": outcome["commit"], "outcome": outcome["outcome"]}))
    inst.close()


if __name__ == "__main__":
    main(sys.argv[1:])
