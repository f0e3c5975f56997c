"""Live broker adapters (network I/O at the edge) and the one place a broker is chosen.

`get_broker(settings)`: paper -> domain.execution.PaperBroker; live -> the configured adapter
(settings.execution.broker: "alpaca") built with its keys from the environment, or BrokerNotConfigured
(nothing written, nothing sent) when the broker is unknown or its keys are missing.
"""

from __future__ import annotations

from trading_assets.domain import execution as ex
from trading_assets.settings import Settings

LIVE_BROKERS = ("alpaca",)


def get_broker(settings: Settings, env: dict[str, str] | None = None, **kw):
    """See the module docstring; kw go to the live adapter (on_event: the audit callback)."""
    e = settings.execution
    if e.mode == "live" and not e.broker:  # name the live adapters, not the domain's paper broker
        raise ex.BrokerNotConfigured(
            f"live trading refused: no broker is configured (set TRADING_BROKER to one of {list(LIVE_BROKERS)} and its keys); "
            "run in paper mode (the default) instead"
        )
    if e.mode == "live" and e.broker == "alpaca":
        from trading_assets.brokers.alpaca import AlpacaBroker

        return AlpacaBroker.from_env(e, env, **kw)
    if e.mode == "live" and e.broker and e.broker not in ex.BROKERS:
        raise ex.BrokerNotConfigured(f"live trading refused: unknown broker {e.broker!r}; known: {sorted(LIVE_BROKERS)}")
    return ex.get_broker(settings)
