"""Bedrock on 127.0.0.1 for the real boto3: moto's S3 (server mode) plus a small server of our own.

moto serves S3 well, but its Bedrock answers CreateModelInvocationJob / GetModelInvocationJob with
NotImplementedError and bedrock-runtime InvokeModel with `{}`, so this server speaks those calls
(botocore's REST paths) and GetFoundationModel. When a job ends it does what Bedrock does: reads
the JSONL input from S3 and writes `<output>/<job id>/<input name>.out` (`{recordId, modelInput,
modelOutput | error}` per line) and `manifest.json.out`.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote

import boto3
from moto.server import ThreadedMotoServer

from tests.enrich.anthropic_server import USAGE, Reply, analysis, message

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


@dataclass
class BedrockServer:
    s3_url: str
    invoke_replies: list[Reply] = field(default_factory=list)
    jobs: dict[str, Job] = field(default_factory=dict)
    polls_to_end: int = 1
    end_status: str = "Completed"
    end_message: str | None = None
    record_script: dict[str, dict[str, Any]] = field(default_factory=dict)  # recordId -> output line fields
    log: list[tuple[str, str, bytes]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self._http = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._http.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._http.server_address[1]}"

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

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return None

            def _send(self, reply: Reply) -> None:
                data = json.dumps(reply.body).encode()
                self.send_response(reply.status)
                self.send_header("content-type", "application/json")
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _body(self) -> bytes:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                with server.lock:
                    server.log.append((self.command, unquote(self.path), body))
                return body

            def do_POST(self) -> None:
                body = self._body()
                path = unquote(self.path)
                if path.startswith("/model/") and path.endswith("/invoke"):
                    with server.lock:
                        reply = server.invoke_replies.pop(0) if server.invoke_replies else None
                    self._send(reply or Reply(body=message(json.dumps(analysis()))))
                elif path == "/model-invocation-job":
                    request = json.loads(body)
                    arn = f"arn:aws:bedrock:us-east-1:{ACCOUNT}:model-invocation-job/{uuid.uuid4().hex[:12]}"
                    with server.lock:
                        server.jobs[arn] = Job(arn, request)
                    self._send(Reply(body={"jobArn": arn}))
                else:
                    self._send(Reply(404, {"message": "not found"}))

            def do_GET(self) -> None:
                self._body()
                path = unquote(self.path)
                if path.startswith("/foundation-models/"):
                    model_id = path.removeprefix("/foundation-models/")
                    self._send(Reply(body={"modelDetails": {"modelId": model_id, "modelArn": f"arn:{model_id}"}}))
                    return
                job = server.jobs.get(path.removeprefix("/model-invocation-job/"))
                if job is None:
                    self._send(
                        Reply(404, {"message": "no such job"}, {"x-amzn-errortype": "ResourceNotFoundException"})
                    )
                    return
                with server.lock:
                    job.polls += 1
                    if job.status == "InProgress" and job.polls >= server.polls_to_end:
                        server._finish(job)
                    body = server._job_body(job)
                self._send(Reply(body=body))

        return Handler


@contextmanager
def running() -> Iterator[BedrockServer]:
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    host, port = moto.get_host_and_port()
    server = BedrockServer(f"http://{host}:{port}")
    server._thread.start()
    server.s3().create_bucket(Bucket=BUCKET)
    try:
        yield server
    finally:
        server._http.shutdown()
        server._http.server_close()
        moto.stop()
