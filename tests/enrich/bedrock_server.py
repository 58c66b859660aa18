"""Bedrock on 127.0.0.1 for the real boto3: moto's S3 (server mode) plus a small server of our own.

moto serves S3 well, but its Bedrock answers CreateModelInvocationJob / GetModelInvocationJob with
NotImplementedError and bedrock-runtime InvokeModel with `{}`, so this server speaks those calls
(botocore's REST paths) and GetFoundationModel. When a job ends it does what Bedrock does: reads
the JSONL input from S3 and writes `<output>/<job id>/<input name>.out` (`{recordId, modelInput,
modelOutput | error}` per line) and `manifest.json.out`.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import boto3
from moto.server import ThreadedMotoServer

from tests.enrich.protocol import USAGE, LocalServer, Reply, analysis, default_reply, message

ACCOUNT = "123456789012"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/PhotoDBBedrockBatch"
BUCKET = "photodb-batch-test"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


@dataclass
class Job:
    arn: str
    request: dict[str, Any]
    polls: int = 0
    status: str = "InProgress"
    message: str | None = None


class BedrockServer(LocalServer):
    def __init__(self, s3_url: str) -> None:
        super().__init__()
        self.s3_url = s3_url
        self.invoke_replies: list[Reply] = []
        self.jobs: dict[str, Job] = {}
        self.polls_to_end = 1
        self.end_status = "Completed"
        self.end_message: str | None = None
        self.record_script: dict[str, dict[str, Any]] = {}  # recordId -> output line fields

    def s3(self) -> Any:
        return boto3.client("s3", endpoint_url=self.s3_url, region_name="us-east-1",
                            aws_access_key_id="testing", aws_secret_access_key="testing")  # fmt: skip

    def _finish(self, job: Job) -> None:
        """What Bedrock leaves in S3 when a job ends."""
        job.status, job.message = self.end_status, self.end_message
        if self.end_status not in ("Completed", "PartiallyCompleted"):
            return
        s3 = self.s3()
        source = job.request["inputDataConfig"]["s3InputDataConfig"]["s3Uri"].removeprefix("s3://")
        bucket, _, key = source.partition("/")
        lines = []
        for raw in s3.get_object(Bucket=bucket, Key=key)["Body"].iter_lines():
            record = json.loads(raw)
            out = {"recordId": record["recordId"], "modelInput": record["modelInput"]}
            out.update(
                self.record_script.get(record["recordId"])
                or {"modelOutput": message(json.dumps(analysis(f"Photo {record['recordId']}.")), USAGE)}
            )
            lines.append(json.dumps(out))
        target = job.request["outputDataConfig"]["s3OutputDataConfig"]["s3Uri"].removeprefix("s3://")
        out_bucket, _, prefix = target.partition("/")
        folder = f"{prefix.rstrip('/')}/{job.arn.rsplit('/', 1)[-1]}"
        s3.put_object(Bucket=out_bucket, Key=f"{folder}/{key.rsplit('/', 1)[-1]}.out", Body="\n".join(lines) + "\n")
        s3.put_object(
            Bucket=out_bucket, Key=f"{folder}/manifest.json.out", Body=json.dumps({"totalRecordCount": len(lines)})
        )

    def _job_body(self, job: Job) -> dict[str, Any]:
        return {
            "jobArn": job.arn,
            "jobName": job.request["jobName"],
            "modelId": job.request["modelId"],
            "roleArn": job.request["roleArn"],
            "status": job.status,
            "message": job.message,
            "submitTime": datetime.now(UTC).isoformat(),
            "inputDataConfig": job.request["inputDataConfig"],
            "outputDataConfig": job.request["outputDataConfig"],
        }

    def answer(self, method: str, path: str, body: bytes) -> Reply:
        if method == "POST":
            return self._post(path, body)
        if path.startswith("/foundation-models/"):
            model_id = path.removeprefix("/foundation-models/")
            return Reply(body={"modelDetails": {"modelId": model_id, "modelArn": f"arn:{model_id}"}})
        job = self.jobs.get(path.removeprefix("/model-invocation-job/"))
        if job is None:
            return Reply(404, {"message": "no such job"}, {"x-amzn-errortype": "ResourceNotFoundException"})
        with self.lock:
            job.polls += 1
            if job.status == "InProgress" and job.polls >= self.polls_to_end:
                self._finish(job)
            return Reply(body=self._job_body(job))

    def _post(self, path: str, body: bytes) -> Reply:
        if path.startswith("/model/") and path.endswith("/invoke"):
            with self.lock:
                reply = self.invoke_replies.pop(0) if self.invoke_replies else None
            return reply or default_reply(body)
        if path != "/model-invocation-job":
            return Reply(404, {"message": "not found"})
        request = json.loads(body)
        arn = f"arn:aws:bedrock:us-east-1:{ACCOUNT}:model-invocation-job/{uuid.uuid4().hex[:12]}"
        with self.lock:
            self.jobs[arn] = Job(arn, request)
        return Reply(body={"jobArn": arn})


@contextmanager
def running() -> Iterator[BedrockServer]:
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    host, port = moto.get_host_and_port()
    server = BedrockServer(f"http://{host}:{port}")
    server.start()
    server.s3().create_bucket(Bucket=BUCKET)
    try:
        yield server
    finally:
        server.close()
        moto.stop()
