"""Shared by every pytest run of scripts/test (SDK, scripts, conformance, cluster).

SIGTERM (scripts/test stops a phase that ran out of time with it) becomes a KeyboardInterrupt,
so pytest ends the session the way Ctrl-C does: fixtures are torn down and the platforms, brokers
and folders they made are removed, instead of the process dying with them left behind.
"""
import signal


def pytest_configure(config):
    def interrupted(*_):
        raise KeyboardInterrupt()
    signal.signal(signal.SIGTERM, interrupted)
