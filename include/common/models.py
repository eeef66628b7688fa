"""The base of the project's pydantic models of files and plans: unknown keys are refused (a typo
in a YAML file is an error, not a silently ignored line) and a model, once read, is not changed."""

from pydantic import BaseModel, ConfigDict


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
