"""What both HTTP apps (the orchestrator API and the executor service) share: one error
body, one set of exception handlers, one token check."""

from mao.web.auth import token_checker
from mao.web.errors import error_body, install_error_handlers

__all__ = ["error_body", "install_error_handlers", "token_checker"]
