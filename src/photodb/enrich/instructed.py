"""One photo through instructor: a validated PhotoAnalysisResponse, re-asked a bounded number of times.

Both providers' sync paths come here with an anthropic SDK client (`Anthropic`, or `AnthropicBedrock`
for bedrock-runtime InvokeModel). instructor's TOOLS mode sends the schema as the one forced tool;
tools come first in the prompt-cache prefix, so the cache_control on the static system block caches
the tool schema too. A reply that does not fit the schema goes back with the validation error
(LLM_REASKS times at most); a refusal is never re-asked. Every reply's usage is counted, the
re-asked ones included.

instructor wraps every failure in its own exceptions and logs each failed attempt at ERROR with
the raw exception; here they become AnalysisFailed (this photo) or ProviderError (the run), one
line each with secrets scrubbed, and instructor's own log lines are kept out of the user's log.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import anthropic
from instructor import Mode, from_anthropic
from instructor.core.exceptions import (
    IncompleteOutputException,
    InstructorError,
    InstructorRetryException,
    ResponseParsingError,
)
from instructor.core.hooks import Hooks
from pydantic import ValidationError
from tenacity import Retrying, retry_if_exception, stop_after_attempt

from photodb.enrich.pricing import Usage
from photodb.enrich.provider import Analysis, AnalysisFailed, ProviderError, describe_validation_error
from photodb.models.photo_analysis import PhotoAnalysisResponse

#: instructor's per-attempt ERROR lines repeat what AnalysisFailed / ProviderError already say.
logging.getLogger("instructor").setLevel(logging.CRITICAL)

_PARSE_ERRORS = (ValidationError, json.JSONDecodeError, ResponseParsingError)


def usage_of(usage: Any) -> Usage:
    """Token counts of a Message's usage (an SDK object or the dict of a batch result line)."""

    def get(name: str) -> int:
        value = usage.get(name) if isinstance(usage, dict) else getattr(usage, name, None)
        return int(value or 0)

    if usage is None:
        return Usage()
    return Usage(
        get("input_tokens"), get("output_tokens"), get("cache_creation_input_tokens"), get("cache_read_input_tokens")
    )


class InstructedAnalyzer:
    """instructor over one anthropic SDK client.

    `label` names the service in messages ("Anthropic API", "Bedrock runtime"); `describe` turns an SDK
    status error into one line; `scrub` removes the provider's secrets from any text.
    """

    def __init__(
        self,
        client: anthropic.Anthropic | anthropic.AnthropicBedrock,
        reasks: int,
        *,
        label: str,
        describe: Callable[[anthropic.APIStatusError], str],
        scrub: Callable[[str], str],
    ) -> None:
        self.client = from_anthropic(client, mode=Mode.TOOLS)
        self.reasks = reasks
        self.label = label
        self.describe = describe
        self.scrub = scrub

    def analyze(self, static: dict[str, Any], user_message: dict[str, Any]) -> Analysis:
        """`static`: model, max_tokens and the cached system block; `user_message`: the image and context."""
        replies: list[_Reply] = []
        hooks = Hooks()
        hooks.on("completion:response", lambda message: replies.append(_Reply.of(message)))
        attempts = Retrying(
            stop=stop_after_attempt(self.reasks + 1),
            # a refusal is final: asking again only pays for a second refusal
            retry=retry_if_exception(lambda error: isinstance(error, _PARSE_ERRORS) and not _refused(replies)),
            reraise=True,
        )
        started = time.monotonic()
        try:
            response = self.client.create(
                response_model=PhotoAnalysisResponse,
                messages=[user_message],
                max_retries=attempts,
                hooks=hooks,
                **static,
            )
        except InstructorRetryException as error:
            raise self._failure(error, replies) from None
        except IncompleteOutputException:
            raise AnalysisFailed("the reply was cut off at LLM_MAX_TOKENS", _total(replies)) from None
        except InstructorError as error:
            raise AnalysisFailed(self.scrub(f"instructor: {_first_line(error)}"), _total(replies)) from None
        return Analysis(response, _total(replies), int((time.monotonic() - started) * 1000))

    def _failure(self, error: InstructorRetryException, replies: list[_Reply]) -> BaseException:
        cause = error.__cause__
        usage = _total(replies)
        if isinstance(cause, anthropic.BadRequestError):
            return AnalysisFailed(self.describe(cause), usage)
        if isinstance(cause, anthropic.APIStatusError):
            return ProviderError(self.describe(cause))
        if isinstance(cause, anthropic.APIConnectionError):
            return ProviderError(self.scrub(f"{self.label} unreachable: {cause}"))
        if isinstance(cause, anthropic.APIResponseValidationError):
            return AnalysisFailed(self.scrub(f"malformed response from the {self.label}: {cause.message}"), usage)
        if not isinstance(cause, _PARSE_ERRORS):
            return cause or error  # not the reply's fault nor the provider's: a bug, shown as it is
        if _refused(replies):
            return AnalysisFailed("the model declined to analyse this photo", usage)
        if replies and not replies[-1].called_tool:
            problem = "the reply holds no analysis (no tool call)"
        elif isinstance(cause, ValidationError):
            problem = describe_validation_error(cause)
        else:
            problem = self.scrub(_first_line(cause))
        tries = error.n_attempts or len(replies)
        return AnalysisFailed(f"reply does not match the schema after {tries} tries: {problem}", usage)


@dataclass(frozen=True)
class _Reply:
    """What counts of one reply, taken when it arrives (instructor later swaps its usage for the running total)."""

    stop_reason: str | None
    called_tool: bool
    usage: Usage

    @classmethod
    def of(cls, message: anthropic.types.Message) -> _Reply:
        called = any(block.type == "tool_use" for block in message.content)
        return cls(message.stop_reason, called, usage_of(message.usage))


def _refused(replies: list[_Reply]) -> bool:
    return bool(replies) and replies[-1].stop_reason == "refusal"


def _total(replies: list[_Reply]) -> Usage:
    total = Usage()
    for reply in replies:
        total += reply.usage
    return total


def _first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]
