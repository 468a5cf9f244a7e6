"""Data-folder fixtures: no key in the environment unless a test sets one, and runtimes stopped at the end."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from edge.config import EdgeConfig
from edge.runtime import EdgeRuntime
from vault.keys import KEY_ENV
from vision.engines.owner import EnginePool


@pytest.fixture(autouse=True)
def no_key_in_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)


@pytest.fixture()
def start(engine_pool: EnginePool) -> Iterator[Callable[[EdgeConfig], EdgeRuntime]]:
    started: list[EdgeRuntime] = []

    def make(config: EdgeConfig) -> EdgeRuntime:
        runtime = EdgeRuntime(config, engine=engine_pool)
        started.append(runtime)
        return runtime

    yield make
    for runtime in started:
        runtime.stop()
