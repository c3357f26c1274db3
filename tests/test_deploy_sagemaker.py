"""deploy/sagemaker.py end to end against moto's standalone server: what it creates, with which settings.

moto answers SageMaker's API but runs nothing: jobs and endpoints are Completed/InService at once,
transform jobs write no .out files (the tests write them with the real serving code), and there is
no UpdateEndpoint (a small relay adds it on top of moto's own Delete/CreateEndpoint). The boto3
session is real; the tests only listen to its requests.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
import threading
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
import botocore.exceptions
import pytest

from deploy.sagemaker import main, wait_for
from deploy.stages.training import CHANNELS
from sentiment.artifacts import save_model
from sentiment.contract import MAX_PAYLOAD_MB, METRIC_DEFINITIONS, ServingSettings
from sentiment.data.table import ReviewTable
from sentiment.hyperparameters import parse_hyperparameters
from sentiment.predictor import Predictor
from sentiment.serving.app import create_app
from sentiment.training import fit
from tests.conftest import AWS_TEST_ENVIRONMENT, REPOSITORY, engine_problem
from tests.test_training import SMALL, made_up

SCRIPT = REPOSITORY / "deploy" / "sagemaker.py"
REGION = AWS_TEST_ENVIRONMENT["AWS_DEFAULT_REGION"]
ROLE = "arn:aws:iam::123456789012:role/SageMakerExecution"
IMAGE = f"123456789012.dkr.ecr.{REGION}.amazonaws.com/imdb-sentiment:latest"
NEW_IMAGE = f"123456789012.dkr.ecr.{REGION}.amazonaws.com/imdb-sentiment:v2"


# ---------------------------------------------------------------------------------------------- harness


@dataclass
class Outcome:
    code: int
    out: str
    err: str


@dataclass
class Cloud:
    """One test's view of moto: a fresh bucket, a unique name prefix, a state file, the requests sent."""

    endpoint_url: str
    bucket: str
    name: str
    state: Path
    capsys: pytest.CaptureFixture[str]
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.sagemaker = boto3.client("sagemaker", endpoint_url=self.endpoint_url, region_name=REGION)
        self.s3 = boto3.client("s3", endpoint_url=self.endpoint_url, region_name=REGION)
        self.s3.create_bucket(Bucket=self.bucket, CreateBucketConfiguration={"LocationConstraint": REGION})

    def session(self) -> boto3.Session:
        """A real session whose SageMaker requests are recorded (not altered) on their way out."""
        session = boto3.Session()

        def record(params: dict[str, Any], model: Any, **_: Any) -> None:
            self.calls.append((model.name, json.loads(json.dumps(params, default=str))))

        session.events.register("provide-client-params.sagemaker", record)
        return session

    def run(self, command: str, *args: str, endpoint_url: bool = True) -> Outcome:
        """main([...]) in this process; `endpoint_url=False` leaves the endpoints to the environment."""
        self.capsys.readouterr()
        common = ["--region", REGION, "--name", self.name, "--state", str(self.state), "--poll-seconds", "0"]
        if endpoint_url:
            common += ["--endpoint-url", self.endpoint_url]
        code = main([command, *common, *args], session=self.session())
        captured = self.capsys.readouterr()
        return Outcome(code, captured.out, captured.err)

    def created(self) -> list[str]:
        return [operation for operation, _ in self.calls if operation.startswith(("Create", "Update", "Delete"))]

    def put(self, key: str, body: bytes) -> str:
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=body)
        return f"s3://{self.bucket}/{key}"

    def recorded(self) -> dict[str, Any]:
        return json.loads(self.state.read_text())


@pytest.fixture
def cloud(
    moto_server: str, aws_environment: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> Cloud:
    # moto's server lives for the whole session: unique names keep the tests apart.
    tag = uuid.uuid4().hex[:8]
    return Cloud(moto_server, f"sentiment-{tag}", f"t{tag}", tmp_path / "state" / "deploy-state.json", capsys)


def deploy_args(model_data: str, image: str = IMAGE) -> list[str]:
    return ["--image", image, "--role", ROLE, "--model-data", model_data]


# ---------------------------------------------------------------------------------------------- train


def test_train_creates_a_job_with_four_jsonlines_channels_and_the_contracts_metrics(cloud: Cloud) -> None:
    job = f"{cloud.name}-job"
    args = [
        "--image", IMAGE, "--role", ROLE, "--data", f"s3://{cloud.bucket}/imdb/data/",
        "--hyperparameters", "model=lstm", "epochs=3", "learning_rate=0.002",
        "--spot", "--max-wait", "14400", "--checkpoint-s3", f"s3://{cloud.bucket}/checkpoints/{job}",
        "--job-name", job, "--wait",
    ]  # fmt: skip
    result = cloud.run("train", *args)
    assert result.code == 0, result.err
    assert f"train:    started {job} on 1 x ml.g4dn.xlarge (spot)" in result.out
    assert "wait:     training job" in result.out and ": Completed" in result.out
    assert "metric:   train:progress = 100" in result.out  # moto's made-up final metric, reported as given
    assert f"model:    s3://{cloud.bucket}/{cloud.name}/output/{job}/output/model.tar.gz" in result.out

    described = cloud.sagemaker.describe_training_job(TrainingJobName=job)
    assert described["AlgorithmSpecification"]["TrainingImage"] == IMAGE
    assert described["AlgorithmSpecification"]["TrainingInputMode"] == "File"
    assert described["RoleArn"] == ROLE
    channels = {channel["ChannelName"]: channel for channel in described["InputDataConfig"]}
    assert list(channels) == ["train", "validation", "test", "unlabeled"]
    for name, channel in channels.items():
        assert channel["ContentType"] == "application/jsonlines"
        assert channel["DataSource"]["S3DataSource"] == {
            "S3DataType": "S3Prefix",
            "S3Uri": f"s3://{cloud.bucket}/imdb/data/{name}/",
            "S3DataDistributionType": "FullyReplicated",
        }
    assert described["HyperParameters"] == {"model": "lstm", "epochs": "3", "learning_rate": "0.002"}
    assert described["ResourceConfig"] == {"InstanceType": "ml.g4dn.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 30}
    assert described["EnableManagedSpotTraining"] is True
    assert described["StoppingCondition"] == {"MaxRuntimeInSeconds": 3 * 3600, "MaxWaitTimeInSeconds": 14400}
    assert described["CheckpointConfig"] == {
        "S3Uri": f"s3://{cloud.bucket}/checkpoints/{job}",
        "LocalPath": "/opt/ml/checkpoints",
    }
    assert described["OutputDataConfig"]["S3OutputPath"] == f"s3://{cloud.bucket}/{cloud.name}/output/"
    # moto replaces MetricDefinitions with its own example, so check what the script sent.
    sent = [params for operation, params in cloud.calls if operation == "CreateTrainingJob"]
    assert sent[0]["AlgorithmSpecification"]["MetricDefinitions"] == METRIC_DEFINITIONS
    assert cloud.recorded()["training_jobs"] == [job]

    cloud.calls.clear()
    again = cloud.run("train", *args)
    assert again.code == 0, again.err
    assert f"train:    job {job} exists (Completed): not starting another" in again.out
    assert cloud.created() == []
    assert cloud.recorded()["training_jobs"] == [job]


def test_train_without_spot_sends_no_max_wait_and_names_the_job_itself(cloud: Cloud) -> None:
    result = cloud.run("train", "--image", IMAGE, "--role", ROLE, "--data", f"s3://{cloud.bucket}/data")
    assert result.code == 0, result.err
    [job] = cloud.recorded()["training_jobs"]
    assert job.startswith(f"{cloud.name}-") and len(job) <= 63
    described = cloud.sagemaker.describe_training_job(TrainingJobName=job)
    assert described["EnableManagedSpotTraining"] is False
    assert described["StoppingCondition"] == {"MaxRuntimeInSeconds": 3 * 3600}
    assert "CheckpointConfig" not in described
    assert described["HyperParameters"] == {}
    assert "wait:" not in result.out  # no --wait: it returns once the job is started


def test_wait_polls_until_a_final_status_and_prints_each_change(capsys: pytest.CaptureFixture[str]) -> None:
    answers = iter(["InProgress", "InProgress", "Stopping", "Stopped", "never asked"])
    final = wait_for("job j", lambda: {"Status": next(answers), "SecondaryStatus": "MaxRuntimeExceeded"}, "Status", 0)
    assert final["Status"] == "Stopped"
    assert capsys.readouterr().out.splitlines() == [
        "wait:     job j: InProgress (MaxRuntimeExceeded)",
        "wait:     job j: Stopping (MaxRuntimeExceeded)",
        "wait:     job j: Stopped (MaxRuntimeExceeded)",
    ]
    assert next(answers) == "never asked"


# ---------------------------------------------------------------------------------------------- deploy


def test_deploy_creates_model_config_and_endpoint_and_a_rerun_does_nothing(cloud: Cloud) -> None:
    model_data = cloud.put("output/job-1/output/model.tar.gz", b"any bytes: moto never opens it")
    result = cloud.run("deploy", *deploy_args(model_data), "--wait")
    assert result.code == 0, result.err
    recorded = cloud.recorded()
    [model], [config] = recorded["models"], recorded["endpoint_configs"]
    assert recorded["endpoints"] == [cloud.name]  # the endpoint is named --name unless --endpoint says otherwise
    assert f"wait:     endpoint {cloud.name}: InService" in result.out

    described_model = cloud.sagemaker.describe_model(ModelName=model)
    assert described_model["PrimaryContainer"]["Image"] == IMAGE
    assert described_model["PrimaryContainer"]["ModelDataUrl"] == model_data
    assert described_model["ExecutionRoleArn"] == ROLE
    [variant] = cloud.sagemaker.describe_endpoint_config(EndpointConfigName=config)["ProductionVariants"]
    assert variant["VariantName"] == "AllTraffic"
    assert variant["ModelName"] == model
    assert (variant["InstanceType"], variant["InitialInstanceCount"]) == ("ml.m5.large", 1)
    assert variant["InitialVariantWeight"] == 1.0
    endpoint = cloud.sagemaker.describe_endpoint(EndpointName=cloud.name)
    assert (endpoint["EndpointStatus"], endpoint["EndpointConfigName"]) == ("InService", config)

    cloud.calls.clear()
    again = cloud.run("deploy", *deploy_args(model_data))
    assert again.code == 0, again.err
    assert f"endpoint: {cloud.name} exists (InService, config {config}): nothing to do" in again.out
    assert cloud.created() == []
    assert cloud.recorded() == recorded


# ---------------------------------------------------------------------------------------------- update


class UpdateEndpointRelay(BaseHTTPRequestHandler):
    """Passes SageMaker requests to moto, answering UpdateEndpoint (which moto lacks) with moto's own
    DeleteEndpoint + CreateEndpoint, so the endpoint really serves the new config afterwards."""

    moto: str = ""

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.headers.get("X-Amz-Target") == "SageMaker.UpdateEndpoint":
            status, answer = self.update_endpoint(json.loads(body))
        else:
            status, answer = self.forward(body)
        self.send_response(status)
        self.send_header("Content-Type", "application/x-amz-json-1.1")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def forward(self, body: bytes) -> tuple[int, bytes]:
        headers = {
            name: value for name, value in self.headers.items() if name.lower() not in ("host", "content-length")
        }
        request = urllib.request.Request(self.moto + self.path, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()

    def update_endpoint(self, request: dict[str, str]) -> tuple[int, bytes]:
        sagemaker = boto3.client("sagemaker", endpoint_url=self.moto, region_name=REGION)
        try:
            sagemaker.describe_endpoint_config(EndpointConfigName=request["EndpointConfigName"])
            sagemaker.delete_endpoint(EndpointName=request["EndpointName"])
            arn = sagemaker.create_endpoint(
                EndpointName=request["EndpointName"], EndpointConfigName=request["EndpointConfigName"]
            )["EndpointArn"]
        except botocore.exceptions.ClientError as error:
            detail = {"__type": error.response["Error"]["Code"], "message": error.response["Error"]["Message"]}
            return 400, json.dumps(detail).encode()
        return 200, json.dumps({"EndpointArn": arn}).encode()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def relay_update_endpoint(moto: str) -> Iterator[str]:
    """The relay's URL while the block runs: SageMaker's API as moto's, plus UpdateEndpoint."""
    handler = type("Relay", (UpdateEndpointRelay,), {"moto": moto})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def relayed(cloud: Cloud, monkeypatch: pytest.MonkeyPatch) -> Iterator[Cloud]:
    """`cloud` with SageMaker reached through the relay, by boto3's own per-service endpoint variables."""
    with relay_update_endpoint(cloud.endpoint_url) as relay:
        monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER", relay)
        monkeypatch.setenv("AWS_ENDPOINT_URL_S3", cloud.endpoint_url)
        yield cloud


def serving(cloud: Cloud) -> tuple[str, dict[str, Any]]:
    """The endpoint's config name and the PrimaryContainer of the model it serves."""
    config = cloud.sagemaker.describe_endpoint(EndpointName=cloud.name)["EndpointConfigName"]
    [variant] = cloud.sagemaker.describe_endpoint_config(EndpointConfigName=config)["ProductionVariants"]
    return config, cloud.sagemaker.describe_model(ModelName=variant["ModelName"])["PrimaryContainer"]


def test_update_switches_the_endpoint_to_a_new_config_once(relayed: Cloud) -> None:
    cloud = relayed
    first = cloud.put("v1/model.tar.gz", b"v1")
    second = cloud.put("v2/model.tar.gz", b"v2")
    assert cloud.run("deploy", *deploy_args(first), endpoint_url=False).code == 0
    old_config, _ = serving(cloud)

    result = cloud.run(
        "update", *deploy_args(second, NEW_IMAGE), "--endpoint", cloud.name, "--wait", endpoint_url=False
    )
    assert result.code == 0, result.err
    new_config, container = serving(cloud)
    assert new_config != old_config
    assert (container["Image"], container["ModelDataUrl"]) == (NEW_IMAGE, second)
    assert f"endpoint: updating {cloud.name} to {new_config}; {old_config} serves until it is done" in result.out
    assert cloud.recorded()["endpoint_configs"] == [old_config, new_config]
    assert len(cloud.recorded()["models"]) == 2

    cloud.calls.clear()
    again = cloud.run("update", *deploy_args(second, NEW_IMAGE), "--endpoint", cloud.name, endpoint_url=False)
    assert again.code == 0, again.err
    assert "update:   it already serves this image and model: nothing to do" in again.out
    assert cloud.created() == []


def flipped(table: ReviewTable) -> ReviewTable:
    return ReviewTable.from_columns(text=list(table.text), label=[1 - int(label) for label in table.label])


def model_tarball(predictor: Predictor, folder: Path) -> Path:
    """model.tar.gz as SageMaker packs /opt/ml/model: the model's files at the archive's root."""
    save_model(predictor, folder / "model")
    tarball = folder / "model.tar.gz"
    with tarfile.open(tarball, "w:gz") as archive:
        for path in sorted((folder / "model").iterdir()):
            archive.add(path, arcname=path.name)
    return tarball


@pytest.fixture(scope="module")
def tarballs(tmp_path_factory: pytest.TempPathFactory, small_ensemble: Predictor) -> dict[str, Path]:
    """A good model (the shared small ensemble) and a bad one: a linear model taught the opposite labels."""
    hp = parse_hyperparameters([*SMALL, "--model", "linear"])
    bad = fit(hp, flipped(made_up(200, 1)), flipped(made_up(60, 2)), report=lambda line: None).predictor
    folder = tmp_path_factory.mktemp("tarballs")
    return {"good": model_tarball(small_ensemble, folder / "good"), "bad": model_tarball(bad, folder / "bad")}


def write_labeled(path: Path, table: ReviewTable) -> Path:
    lines = (
        json.dumps({"text": text, "label": int(label)}) for text, label in zip(table.text, table.label, strict=True)
    )
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def test_update_refuses_a_worse_model_unless_forced(relayed: Cloud, tarballs: dict[str, Path], tmp_path: Path) -> None:
    cloud = relayed
    good = cloud.put("good/model.tar.gz", tarballs["good"].read_bytes())
    bad = cloud.put("bad/model.tar.gz", tarballs["bad"].read_bytes())
    labeled = write_labeled(tmp_path / "labeled.jsonl", made_up(40, 7))
    assert cloud.run("deploy", *deploy_args(good), endpoint_url=False).code == 0
    config, _ = serving(cloud)
    recorded = cloud.recorded()

    cloud.calls.clear()
    update = ["update", *deploy_args(bad), "--endpoint", cloud.name, "--labeled", str(labeled)]
    refused = cloud.run(*update, endpoint_url=False)
    assert refused.code == 1
    assert "compare:  current model 100.00% on 40 reviews" in refused.out
    assert "compare:  new     model 0.00% on 40 reviews" in refused.out
    assert "error: the new model scores 0.00%, below the current 100.00%: not updating (--force" in refused.err
    assert cloud.created() == []
    assert serving(cloud)[0] == config and cloud.recorded() == recorded

    forced = cloud.run(*update, "--force", endpoint_url=False)
    assert forced.code == 0, forced.err
    assert "updating anyway (--force)" in forced.out
    new_config, container = serving(cloud)
    assert new_config != config and container["ModelDataUrl"] == bad

    # And back: a better model passes the comparison without --force.
    restored = cloud.run(
        "update", *deploy_args(good), "--endpoint", cloud.name, "--labeled", str(labeled), endpoint_url=False
    )
    assert restored.code == 0, restored.err
    assert serving(cloud)[1]["ModelDataUrl"] == good


def test_update_can_score_with_the_image_it_deploys(relayed: Cloud, tarballs: dict[str, Path], tmp_path: Path) -> None:
    problem = engine_problem()
    if problem is not None:
        if os.environ.get("REQUIRE_DOCKER") == "1":
            pytest.fail(f"REQUIRE_DOCKER=1 but {problem}")
        pytest.skip(problem)
    image = os.environ.get("SENTIMENT_TEST_IMAGE") or "sentiment:cpu"  # CI builds it (tests/test_docker.py)
    cloud = relayed
    good = cloud.put("good-image/model.tar.gz", tarballs["good"].read_bytes())
    bad = cloud.put("bad-image/model.tar.gz", tarballs["bad"].read_bytes())
    labeled = write_labeled(tmp_path / "labeled.jsonl", made_up(40, 7))
    assert cloud.run("deploy", *deploy_args(good, image), endpoint_url=False).code == 0
    update = ["update", *deploy_args(bad, image), "--endpoint", cloud.name, "--labeled", str(labeled)]
    refused = cloud.run(*update, "--score-with", "image", endpoint_url=False)
    assert refused.code == 1, refused.err
    assert "compare:  current model 100.00% on 40 reviews" in refused.out
    assert "below the current 100.00%: not updating" in refused.err


NO_TORCH_PROBE = """
import sys
from pathlib import Path
from deploy.sagemaker import model_accuracy
print(model_accuracy(Path(sys.argv[1]), Path(sys.argv[2])), "torch" in sys.modules)
"""


def test_scoring_for_update_never_loads_torch(tarballs: dict[str, Path], tmp_path: Path) -> None:
    labeled = write_labeled(tmp_path / "labeled.jsonl", made_up(40, 7))
    result = subprocess.run(
        [sys.executable, "-c", NO_TORCH_PROBE, str(tarballs["good"]), str(labeled)],
        capture_output=True,
        text=True,
        cwd=REPOSITORY,
        timeout=300,
        check=True,
    )
    assert result.stdout.split() == ["(1.0,", "40)", "False"]  # scored by sentiment-evaluate's own process


def test_update_names_a_missing_labeled_file(relayed: Cloud, tarballs: dict[str, Path], tmp_path: Path) -> None:
    cloud = relayed
    good = cloud.put("good-missing/model.tar.gz", tarballs["good"].read_bytes())
    assert cloud.run("deploy", *deploy_args(good), endpoint_url=False).code == 0
    other = cloud.put("other-missing/model.tar.gz", tarballs["bad"].read_bytes())
    update = ["update", *deploy_args(other), "--endpoint", cloud.name, "--labeled", str(tmp_path / "nope.jsonl")]
    outcome = cloud.run(*update, endpoint_url=False)
    assert outcome.code == 1 and "--labeled" in outcome.err and "no such file or folder" in outcome.err
    assert cloud.created() == [] or all(not op.startswith("Update") for op in cloud.created())


# ---------------------------------------------------------------------------------------------- batch


def transform_output(predictor: Predictor, records: bytes) -> bytes:
    """What the container answers a MultiRecord, Line-split batch: the real app, JSON Lines in and out."""
    settings = replace(ServingSettings.from_environment({}), workers=1)
    client = create_app(settings, load=lambda: predictor).test_client()
    headers = {"Content-Type": "application/jsonlines", "Accept": "application/jsonlines"}
    response = client.post("/invocations", data=records, headers=headers)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_data()


def test_batch_creates_a_line_split_transform_job_and_reports_accuracy(
    cloud: Cloud, small_ensemble: Predictor, tmp_path: Path
) -> None:
    cloud.sagemaker.create_model(ModelName=cloud.name, PrimaryContainer={"Image": IMAGE}, ExecutionRoleArn=ROLE)
    test = made_up(40, 9)
    labeled = write_labeled(tmp_path / "test.jsonl", test)
    source = cloud.put("data/test/test.jsonl", labeled.read_bytes())
    job = f"{cloud.name}-batch"
    args = [
        "--model",
        cloud.name,
        "--input",
        source.removesuffix("test.jsonl"),
        "--output",
        f"s3://{cloud.bucket}/scores/",
    ]
    started = cloud.run("batch", *args, "--job-name", job)
    assert started.code == 0, started.err
    described = cloud.sagemaker.describe_transform_job(TransformJobName=job)
    assert described["ModelName"] == cloud.name
    assert (described["BatchStrategy"], described["MaxPayloadInMB"]) == ("MultiRecord", MAX_PAYLOAD_MB)
    assert described["TransformInput"]["SplitType"] == "Line"
    assert described["TransformInput"]["ContentType"] == "application/jsonlines"
    assert described["TransformInput"]["DataSource"]["S3DataSource"]["S3Uri"] == f"s3://{cloud.bucket}/data/test/"
    assert described["TransformOutput"] == {
        "S3OutputPath": f"s3://{cloud.bucket}/scores/",
        "Accept": "application/jsonlines",
        "AssembleWith": "Line",
    }
    assert described["TransformResources"] == {"InstanceType": "ml.m5.large", "InstanceCount": 1}
    assert cloud.recorded()["transform_jobs"] == [job]

    # What SageMaker would write: <input key>.out, the container's answer to the file's lines.
    out = transform_output(small_ensemble, labeled.read_bytes())
    cloud.put("scores/test.jsonl.out", out)
    predicted = [json.loads(line)["label"] == "positive" for line in out.decode().splitlines()]
    correct = sum(p == bool(y) for p, y in zip(predicted, test.label, strict=True))

    cloud.calls.clear()
    scored = cloud.run("batch", *args, "--job-name", job, "--wait", "--labels", str(labeled))
    assert scored.code == 0, scored.err
    assert f"batch:    job {job} exists (Completed): not starting another" in scored.out
    assert f"accuracy: {correct / 40:.2%} ({correct} of 40; 1 .out files)" in scored.out
    assert correct >= 36
    assert cloud.created() == []

    one_more = tmp_path / "one-more.jsonl"
    one_more.write_text(labeled.read_text() + json.dumps({"text": "extra", "label": 1}) + "\n")
    mismatch = cloud.run("batch", *args, "--job-name", job, "--wait", "--labels", str(one_more))
    assert mismatch.code == 1
    assert f"error: 40 predictions in 1 .out files but 41 labels in {one_more}" in mismatch.err


# ---------------------------------------------------------------------------------------------- teardown


def test_teardown_deletes_exactly_what_was_recorded_and_skips_what_is_gone(cloud: Cloud) -> None:
    model_data = cloud.put("m/model.tar.gz", b"m")
    assert cloud.run("deploy", *deploy_args(model_data)).code == 0
    assert cloud.run("deploy", *deploy_args(model_data), "--endpoint", f"{cloud.name}-b").code == 0
    recorded = cloud.recorded()
    assert len(recorded["models"]) == len(recorded["endpoint_configs"]) == len(recorded["endpoints"]) == 2
    # Not recorded: teardown must leave it alone.
    cloud.sagemaker.create_model(
        ModelName=f"{cloud.name}-keep", PrimaryContainer={"Image": IMAGE}, ExecutionRoleArn=ROLE
    )
    # Already gone: deleted behind the script's back.
    cloud.sagemaker.delete_endpoint(EndpointName=f"{cloud.name}-b")

    result = cloud.run("teardown")
    assert result.code == 0, result.err
    assert f"teardown: endpoint {cloud.name}-b already gone" in result.out
    assert "teardown: 5 deleted" in result.out
    for name in recorded["endpoints"]:
        with pytest.raises(botocore.exceptions.ClientError, match="Could not find endpoint"):
            cloud.sagemaker.describe_endpoint(EndpointName=name)
    for name in recorded["endpoint_configs"]:
        with pytest.raises(botocore.exceptions.ClientError, match="Could not find endpoint configuration"):
            cloud.sagemaker.describe_endpoint_config(EndpointConfigName=name)
    for name in recorded["models"]:
        with pytest.raises(botocore.exceptions.ClientError, match="Could not find model"):
            cloud.sagemaker.describe_model(ModelName=name)
    assert cloud.sagemaker.describe_model(ModelName=f"{cloud.name}-keep")["ModelName"] == f"{cloud.name}-keep"
    after = cloud.recorded()
    assert after["models"] == after["endpoint_configs"] == after["endpoints"] == []

    again = cloud.run("teardown")
    assert again.code == 0 and "teardown: 0 deleted" in again.out


def test_teardown_without_a_state_file_deletes_nothing(cloud: Cloud) -> None:
    result = cloud.run("teardown")
    assert result.code == 0, result.err
    assert "nothing recorded, nothing deleted" in result.out
    assert cloud.calls == [] and not cloud.state.exists()


# ---------------------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["train", "--image", IMAGE, "--role", ROLE, "--data", "bucket/data"], "--data must be an s3://bucket/... URI"),
        (
            ["train", "--image", IMAGE, "--role", ROLE, "--data", "s3://b/d", "--checkpoint-s3", "/tmp/ckpt"],
            "--checkpoint-s3 must be an s3://bucket/... URI",
        ),
        (["train", "--image", IMAGE, "--role", ROLE, "--data", "s3://b/d", "--spot"], "--spot needs --max-wait"),
        (
            ["train", "--image", IMAGE, "--role", ROLE, "--data", "s3://b/d", "--spot", "--max-wait", "60"],
            "--max-wait (60) must be at least --max-run (10800)",
        ),
        (["train", "--image", IMAGE, "--role", ROLE, "--data", "s3://b/d", "--hyperparameters", "lstm"], "KEY=VALUE"),
        (["deploy", *deploy_args("https://example.com/model.tar.gz")], "--model-data must be an s3://bucket/... URI"),
        (["batch", "--model", "m", "--input", "s3://b/in/", "--output", "s3:///out"], "--output must be an s3://"),
        (
            ["train", "--image", IMAGE, "--role", ROLE, "--data", "s3://b/d", "--distribution", "sharded"],
            "--distribution sharded splits the data among instances: it needs --instance-count 2 or more",
        ),
        (
            ["batch", "--model", "m", "--input", "s3://b/in/", "--output", "s3://b/o/", "--instance-count", "0"],
            "--instance-count must be 1 or more, not 0",
        ),
        (
            ["batch", "--model", "m", "--input", "s3://b/in/", "--output", "s3://b/o/", "--labels", "l"],
            "--labels needs",
        ),
    ],
)
def test_bad_options_are_usage_errors(args: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(args)
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    ("command", "message"),
    [
        (["train", "--image", IMAGE, "--role", ROLE, "--data", "s3://no-such-bucket-{tag}/data"], "--data: bucket"),
        (["deploy", *deploy_args("s3://{bucket}/missing/model.tar.gz")], "--model-data: no object at s3://"),
        (["deploy", *deploy_args("s3://no-such-bucket-{tag}/model.tar.gz")], "--model-data: bucket"),
        (["update", *deploy_args("s3://{bucket}/m.tar.gz"), "--endpoint", "{tag}"], "endpoint {tag} does not exist"),
        (["batch", "--model", "{tag}", "--input", "s3://{bucket}/i/", "--output", "s3://{bucket}/o/"], "--model: no"),
        (
            ["batch", "--model", "{tag}", "--input", "s3://no-such-bucket-{tag}/i/", "--output", "s3://{bucket}/o/"],
            "--input: bucket",
        ),
    ],
)
def test_missing_resources_fail_cleanly_and_create_nothing(cloud: Cloud, command: list[str], message: str) -> None:
    command = [part.format(bucket=cloud.bucket, tag=cloud.name) for part in command]
    result = cloud.run(*command)
    assert result.code == 1
    assert result.err.startswith("error: ") and message.format(tag=cloud.name) in result.err
    assert "Traceback" not in result.err
    assert cloud.created() == []
    assert not cloud.state.exists()


def test_a_damaged_state_file_is_an_error_not_a_traceback(cloud: Cloud) -> None:
    cloud.state.parent.mkdir(parents=True)
    cloud.state.write_text('{"models": []}')
    result = cloud.run("teardown")
    assert result.code == 1
    assert "not a deploy state file" in result.err
    assert cloud.calls == []


def test_no_credentials_is_a_clear_error(tmp_path: Path, moto_server: str) -> None:
    environment = {name: value for name, value in os.environ.items() if not name.startswith("AWS_")} | {
        "AWS_CONFIG_FILE": "/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
        "AWS_EC2_METADATA_DISABLED": "true",  # no waiting for an instance metadata service
    }
    result = subprocess.run(
        [
            sys.executable, str(SCRIPT), "train", "--region", REGION, "--endpoint-url", moto_server,
            "--state", str(tmp_path / "state.json"), "--image", IMAGE, "--role", ROLE, "--data", "s3://some-bucket/data",
        ],
        capture_output=True, text=True, env=environment, timeout=60, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 1
    assert result.stderr.startswith("error: no AWS credentials")
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "state.json").exists()


# ---------------------------------------------------------------------------------------------- several instances


def test_train_on_several_instances_shards_train_and_unlabeled_when_asked(cloud: Cloud) -> None:
    for channel in ("train", "unlabeled"):
        for shard in range(2):
            cloud.put(f"data/{channel}/{channel}-0000{shard}-of-00002.jsonl", b'{"text": "x", "label": 1}\n')
    job = f"{cloud.name}-job"
    args = ["--image", IMAGE, "--role", ROLE, "--data", f"s3://{cloud.bucket}/data", "--job-name", job]
    result = cloud.run("train", *args, "--instance-count", "2", "--distribution", "sharded")
    assert result.code == 0, result.err
    assert "train:    2 hosts train one model; train, unlabeled ShardedByS3Key" in result.out
    described = cloud.sagemaker.describe_training_job(TrainingJobName=job)
    assert described["ResourceConfig"]["InstanceCount"] == 2
    kinds = {
        channel["ChannelName"]: channel["DataSource"]["S3DataSource"]["S3DataDistributionType"]
        for channel in described["InputDataConfig"]
    }
    assert kinds == {
        "train": "ShardedByS3Key",
        "validation": "FullyReplicated",
        "test": "FullyReplicated",
        "unlabeled": "ShardedByS3Key",
    }

    cloud.calls.clear()
    three = cloud.run("train", *args, "--job-name", f"{job}-3", "--instance-count", "3", "--distribution", "sharded")
    assert three.code == 1
    assert three.err == (
        f"error: --distribution sharded: s3://{cloud.bucket}/data/train/ holds 2 file(s) for 3 instances, and "
        "SageMaker gives each instance whole files: write it as at least 3 (deploy/prepare_data.py --shards 3)\n"
    )
    assert cloud.created() == []


def test_train_sends_the_sentences_channel_only_where_the_data_folder_has_it(cloud: Cloud) -> None:
    job = f"{cloud.name}-job"
    args = ["--image", IMAGE, "--role", ROLE, "--data", f"s3://{cloud.bucket}/data"]
    cloud.put("data/sentences-elsewhere/s.jsonl", b'{"text": "x", "score": 0.5}\n')  # a prefix, not the folder
    assert cloud.run("train", *args, "--job-name", f"{job}-a").code == 0
    described = cloud.sagemaker.describe_training_job(TrainingJobName=f"{job}-a")
    assert [channel["ChannelName"] for channel in described["InputDataConfig"]] == list(CHANNELS)

    for shard in range(2):
        cloud.put(f"data/sentences/sentences-0000{shard}-of-00002.jsonl", b'{"text": "x", "score": 0.5}\n')
    for channel in ("train", "unlabeled"):
        for shard in range(2):
            cloud.put(f"data/{channel}/{channel}-0000{shard}-of-00002.jsonl", b'{"text": "x", "label": 1}\n')
    result = cloud.run("train", *args, "--job-name", f"{job}-b", "--instance-count", "2", "--distribution", "sharded")
    assert result.code == 0, result.err
    assert "train:    channels train, validation, test, unlabeled, sentences from" in result.out
    assert "train:    2 hosts train one model; train, unlabeled, sentences ShardedByS3Key" in result.out
    described = cloud.sagemaker.describe_training_job(TrainingJobName=f"{job}-b")
    sentences = described["InputDataConfig"][-1]
    assert sentences["ChannelName"] == "sentences"
    assert sentences["DataSource"]["S3DataSource"] == {
        "S3DataType": "S3Prefix",
        "S3Uri": f"s3://{cloud.bucket}/data/sentences/",
        "S3DataDistributionType": "ShardedByS3Key",
    }
    three = cloud.run("train", *args, "--job-name", f"{job}-c", "--instance-count", "3", "--distribution", "sharded")
    assert three.code == 1 and "data/train/ holds 2 file(s) for 3 instances" in three.err


def test_batch_on_several_instances_needs_a_file_for_each(cloud: Cloud) -> None:
    cloud.sagemaker.create_model(ModelName=cloud.name, PrimaryContainer={"Image": IMAGE}, ExecutionRoleArn=ROLE)
    cloud.put("data/test/test-00000-of-00002.jsonl", b'{"text": "fine"}\n')
    args = ["--model", cloud.name, "--input", f"s3://{cloud.bucket}/data/test/", "--output", f"s3://{cloud.bucket}/o/"]
    refused = cloud.run("batch", *args, "--instance-count", "2", "--job-name", f"{cloud.name}-a")
    assert refused.code == 1 and "holds 1 file(s) for 2 instances" in refused.err
    assert cloud.created() == []
    cloud.put("data/test/test-00001-of-00002.jsonl", b'{"text": "awful"}\n')
    started = cloud.run("batch", *args, "--instance-count", "2", "--job-name", f"{cloud.name}-b")
    assert started.code == 0, started.err
    described = cloud.sagemaker.describe_transform_job(TransformJobName=f"{cloud.name}-b")
    assert described["TransformResources"] == {"InstanceType": "ml.m5.large", "InstanceCount": 2}
