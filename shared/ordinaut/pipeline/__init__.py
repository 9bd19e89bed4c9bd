"""The pipeline engine: parse and validate the DSL, evaluate ``${...}``, run tools.

The worker calls ``execute``; the API calls ``validate_payload`` and ``dry_run``; both build
a registry once with ``default_registry(settings)`` (plus ``load_entry_point_tools`` and
``load_http_tools``) and limits with ``PipelineLimits.from_settings(settings)``.
"""

from ordinaut.pipeline.context import PipelineResult, RunContext
from ordinaut.pipeline.document import parse_pipeline_text
from ordinaut.pipeline.dryrun import dry_run
from ordinaut.pipeline.executor import execute
from ordinaut.pipeline.expressions import ExpressionError, compile_expression
from ordinaut.pipeline.functions import FunctionDoc
from ordinaut.pipeline.interpreter import catalogue, function_names
from ordinaut.pipeline.limits import PipelineLimits
from ordinaut.pipeline.tools import (
    Tool,
    ToolError,
    ToolRegistry,
    default_registry,
    load_entry_point_tools,
    load_http_tools,
)
from ordinaut.pipeline.validate import CompiledPipeline, compile_payload, validate_payload

__all__ = [
    "CompiledPipeline",
    "ExpressionError",
    "FunctionDoc",
    "PipelineLimits",
    "PipelineResult",
    "RunContext",
    "Tool",
    "ToolError",
    "ToolRegistry",
    "catalogue",
    "compile_expression",
    "compile_payload",
    "default_registry",
    "dry_run",
    "execute",
    "function_names",
    "load_entry_point_tools",
    "load_http_tools",
    "parse_pipeline_text",
    "validate_payload",
]
