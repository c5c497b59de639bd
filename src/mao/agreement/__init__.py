"""Federated agreement: schedule slots, ballots, electorates and tallies into ``ground-truth``."""
