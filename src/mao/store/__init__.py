from mao.store.db import make_engine
from mao.store.store import Store

__all__ = ["Store", "make_engine"]
