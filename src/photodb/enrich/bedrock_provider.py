"""AWS Bedrock: one photo through bedrock-runtime InvokeModel, many through a batch inference job.

The request body is Anthropic's Messages format (the same static, cached system block as the
Anthropic provider). One photo goes through instructor over the anthropic SDK's AnthropicBedrock
client (InvokeModel, SigV4 with the boto3 session's credentials), exactly like the Anthropic sync
path. instructor's own `from_bedrock` speaks Converse and keeps only the first system block's text,
which would drop the prompt-cache point of the static part, hence not that. Batch records carry
the schema as `output_config`. A batch is a JSONL file in S3 (one `{recordId, modelInput}` per
photo, written to a temporary file and uploaded, never held in memory), a
CreateModelInvocationJob reading it as BEDROCK_BATCH_ROLE_ARN, GetModelInvocationJob polling, and
the output `<output prefix>/<job id>/<input file>.out` streamed line by line.

Retries (LLM_MAX_RETRIES): InvokeModel, the anthropic SDK's (429/5xx, backoff with jitter, honouring
retry-after); the control plane and S3, botocore's standard mode (botocore does not read Retry-After).
The role ARN is never logged or stored; errors have it replaced by ***.
"""

from __future__ import annotations

import json
import re
import tempfile
import time
import uuid
from collections.abc import Iterable, Iterator
from typing import Any

import anthropic

from photodb.config import Settings
from photodb.enrich.anthropic_provider import result_from_message, static_params, sync_params, user_message
from photodb.enrich.instructed import InstructedAnalyzer
from photodb.enrich.pricing import price_for
from photodb.enrich.provider import (
    Analysis,
    AnalysisFailed,
    BatchState,
    BatchStatus,
    ItemResult,
    ProviderError,
)
from photodb.enrich.request import BEDROCK_IMAGE_LIMITS, AnalysisRequest

IMAGE_LIMITS = BEDROCK_IMAGE_LIMITS
ANTHROPIC_VERSION = "bedrock-2023-05-31"
#: Bedrock refuses batch jobs with fewer records than this.
BEDROCK_MIN_BATCH_RECORDS = 100
_ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]+$")
_STATES = {
    "Submitted": BatchState.IN_PROGRESS,
    "Validating": BatchState.IN_PROGRESS,
    "Scheduled": BatchState.IN_PROGRESS,
    "InProgress": BatchState.IN_PROGRESS,
    "Stopping": BatchState.IN_PROGRESS,
    "Completed": BatchState.ENDED,
    "PartiallyCompleted": BatchState.ENDED,
    "Failed": BatchState.FAILED,
    "Stopped": BatchState.CANCELLED,
    "Expired": BatchState.EXPIRED,
}


def _boto3() -> Any:
    try:
        import boto3
    except ImportError:
        raise ProviderError("LLM_PROVIDER=bedrock needs boto3: pip install 'photodb[bedrock]'") from None
    return boto3


class BedrockProvider:
    name = "bedrock"
    min_batch_records = BEDROCK_MIN_BATCH_RECORDS

    def __init__(self, settings: Settings) -> None:
        boto3 = _boto3()
        from botocore.config import Config

        self.settings = settings
        self.model = settings.bedrock_model_id
        self.reasks = settings.llm_reasks
        self._role = settings.bedrock_batch_role_arn.get_secret_value() if settings.bedrock_batch_role_arn else ""
        session = boto3.Session(profile_name=settings.aws_profile, region_name=settings.aws_region)
        if session.get_credentials() is None:
            raise ProviderError("no AWS credentials found: set AWS_PROFILE, or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY")
        config = Config(
            retries={"max_attempts": settings.llm_max_retries + 1, "mode": "standard"},
            read_timeout=settings.llm_timeout_seconds,
        )
        self.control = session.client("bedrock", endpoint_url=settings.bedrock_endpoint_url, config=config)
        self.s3 = session.client("s3", endpoint_url=settings.s3_endpoint_url, config=config)
        static = static_params(self.model, settings.llm_max_tokens)
        del static["model"]
        self._static = {"anthropic_version": ANTHROPIC_VERSION, **static}
        # the SDK would default to its own API version; Bedrock documents this one (batch records carry it too)
        self._sync = {
            **sync_params(self.model, settings.llm_max_tokens),
            "extra_body": {"anthropic_version": ANTHROPIC_VERSION},
        }
        invoke = anthropic.AnthropicBedrock(
            aws_region=settings.aws_region,
            aws_profile=settings.aws_profile,
            base_url=settings.bedrock_runtime_endpoint_url,
            max_retries=settings.llm_max_retries,
            timeout=settings.llm_timeout_seconds,
        )
        self._instructed = InstructedAnalyzer(
            invoke, self.reasks, label="Bedrock runtime", describe=self._describe, scrub=self._scrub
        )

    # -- one photo ---------------------------------------------------------------------------

    def analyze(self, request: AnalysisRequest) -> Analysis:
        return self._instructed.analyze(self._sync, user_message(request))

    # -- batches -----------------------------------------------------------------------------

    def ensure_batch_ready(self) -> None:
        if not self.settings.bedrock_batch_s3_bucket:
            raise ProviderError("BEDROCK_BATCH_S3_BUCKET is not set: Bedrock batch jobs need it (or use --no-batch)")
        if not self._role:
            raise ProviderError("BEDROCK_BATCH_ROLE_ARN is not set: Bedrock batch jobs need it (or use --no-batch)")
        if not _ROLE_ARN.match(self._role):
            raise ProviderError("BEDROCK_BATCH_ROLE_ARN is not an IAM role ARN (arn:aws:iam::ACCOUNT:role/NAME)")

    def submit_batch(self, requests: Iterable[AnalysisRequest]) -> str:
        self.ensure_batch_ready()
        bucket = self.settings.bedrock_batch_s3_bucket
        assert bucket is not None
        name = f"photodb-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:8]}"
        prefix = f"{self.settings.bedrock_batch_s3_prefix.strip('/')}/{name}"
        input_uri = f"s3://{bucket}/{prefix}/input/records.jsonl"
        with tempfile.TemporaryFile("w+b") as spool:
            for request in requests:
                model_input = {**self._static, "messages": [user_message(request)]}
                record = {"recordId": request.custom_id, "modelInput": model_input}
                spool.write(json.dumps(record).encode() + b"\n")
            spool.seek(0)
            self._call(lambda: self.s3.upload_fileobj(spool, bucket, f"{prefix}/input/records.jsonl"))
        job = self._call(
            lambda: self.control.create_model_invocation_job(
                jobName=name,
                roleArn=self._role,
                modelId=self.model,
                inputDataConfig={"s3InputDataConfig": {"s3Uri": input_uri, "s3InputFormat": "JSONL"}},
                outputDataConfig={"s3OutputDataConfig": {"s3Uri": f"s3://{bucket}/{prefix}/output/"}},
            )
        )
        return str(job["jobArn"])

    def batch_status(self, batch_id: str) -> BatchStatus:
        job = self._call(lambda: self.control.get_model_invocation_job(jobIdentifier=batch_id))
        state = _STATES.get(job.get("status", ""), BatchState.IN_PROGRESS)
        message = self._scrub(job["message"]) if job.get("message") else None
        return BatchStatus(state, message=message)

    def batch_results(self, batch_id: str) -> Iterator[ItemResult]:
        job = self._call(lambda: self.control.get_model_invocation_job(jobIdentifier=batch_id))
        input_uri = job["inputDataConfig"]["s3InputDataConfig"]["s3Uri"]
        output_uri = job["outputDataConfig"]["s3OutputDataConfig"]["s3Uri"]
        bucket, _, prefix = output_uri.removeprefix("s3://").partition("/")
        key = f"{prefix.rstrip('/')}/{batch_id.rsplit('/', 1)[-1]}/{input_uri.rsplit('/', 1)[-1]}.out"
        body = self._call(lambda: self.s3.get_object(Bucket=bucket, Key=key))["Body"]
        for line in body.iter_lines():
            if line.strip():
                yield self._item(line)

    def _item(self, line: bytes) -> ItemResult:
        try:
            record = json.loads(line)
            record_id = str(record["recordId"])
        except (ValueError, KeyError, TypeError):
            return ItemResult(custom_id="", error="malformed result line")
        if record.get("error"):
            error = record["error"]
            detail = f"{error.get('errorCode', 'error')}: {error.get('errorMessage', '')}"
            return ItemResult(record_id, error=self._scrub(detail))
        return result_from_message(record_id, record.get("modelOutput") or {})

    # -- configuration -----------------------------------------------------------------------

    def check(self) -> list[str]:
        """Credentials, model access (GetFoundationModel), the bucket (HeadBucket), the role ARN's form."""
        findings = []
        model_id = self.model.split(".", 1)[1] if self.model.count(".") > 1 else self.model  # strip a region prefix
        model = self._call(lambda: self.control.get_foundation_model(modelIdentifier=model_id))
        findings.append(f"ok: Bedrock serves {model['modelDetails']['modelId']} in {self.settings.aws_region}")
        if price_for(self.model) is None:
            findings.append(f"warning: no price known for {self.model}: costs will not be estimated")
        try:
            self.ensure_batch_ready()
        except ProviderError as error:
            findings.append(f"batch mode unavailable: {error}")
            return findings
        bucket = self.settings.bedrock_batch_s3_bucket
        self._call(lambda: self.s3.head_bucket(Bucket=bucket))
        findings.append(f"ok: bucket {bucket} is reachable")
        findings.append("ok: BEDROCK_BATCH_ROLE_ARN is a role ARN (its trust policy is checked when a job starts)")
        if min(self.settings.min_batch_size, self.settings.batch_size) < BEDROCK_MIN_BATCH_RECORDS:
            findings.append(
                f"note: Bedrock refuses batch jobs under {BEDROCK_MIN_BATCH_RECORDS} records, so batches hold at "
                f"least {BEDROCK_MIN_BATCH_RECORDS} (MIN_BATCH_SIZE {self.settings.min_batch_size}, BATCH_SIZE "
                f"{self.settings.batch_size}); a smaller remainder waits, or goes one by one with --flush"
            )
        return findings

    # -- errors ------------------------------------------------------------------------------

    def _call(self, call: Any) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return call()
        except ClientError as error:
            info = error.response.get("Error", {})
            code = info.get("Code", "error")
            status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            message = self._scrub(f"Bedrock error {status}: {code}: {info.get('Message', '')}".rstrip(": "))
            if code in ("ValidationException",) and error.operation_name == "InvokeModel":
                raise AnalysisFailed(message) from None
            raise ProviderError(message) from None
        except BotoCoreError as error:
            raise ProviderError(self._scrub(f"AWS unreachable: {error}")) from None

    def _describe(self, error: anthropic.APIStatusError) -> str:
        """An InvokeModel error: Bedrock's `x-amzn-errortype` and `message`."""
        body = error.body if isinstance(error.body, dict) else {}
        code = error.response.headers.get("x-amzn-errortype", type(error).__name__).split(":", 1)[0]
        retried = "" if error.status_code in (400, 401, 403, 404) else " (after retries)"
        return self._scrub(
            f"Bedrock error {error.status_code}{retried}: {code}: {body.get('message', '')}".rstrip(": ")
        )

    def _scrub(self, text: str) -> str:
        return text.replace(self._role, "***") if self._role else text
