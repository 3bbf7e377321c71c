"""The JSON Schema of the scenario format, generated from the models."""

from __future__ import annotations

import json
from typing import Any

from test_coordinator.scenario.model import Scenario

SCHEMA_ID = "https://github.com/trading-ecosystem/test-coordinator/scenario-v1.schema.json"


def scenario_schema() -> dict[str, Any]:
    schema = Scenario.model_json_schema(by_alias=True, mode="validation")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        **schema,
    }


def schema_json() -> str:
    return json.dumps(scenario_schema(), indent=2)
