"""The gateway: tools that are not instances write records to a dataset and read its
``ground-truth`` and the published insights, each with a token of its own.

Tokens (:mod:`mao.gateway.tokens`) are created by the operator, stored hashed in the local
store, and scoped to one dataset (``read`` or ``write``) with a rate limit. A record
(:mod:`mao.gateway.records`) is one JSON line appended on the node branch
``gateway-<token>``, committed with provenance trailers, pushed and merged into
``ground-truth`` like any node branch.
"""
