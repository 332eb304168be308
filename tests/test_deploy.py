"""deploy/: the Kubernetes Indexed Job and the Argo WorkflowTemplate run the plugin as it is.

The fields the plugin relies on are checked against the code: the image is the one
build-docker.sh tags with VERSION, every argument parses with the real CLI (and each pod gets
its own shard, all shards together), every environment variable is one the code reads, the
user is the Dockerfile's, and the final check looks at the very collection that was converted.
(Schema validation is ../shared/tools/validate_k8s.sh; it needs the network-free validators.)
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from ome_converter import cli
from ome_converter.shard import Shard

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
VERSION = (ROOT / "VERSION").read_text().strip()
MIB = 2**20
QUANTITY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "k": 10**3, "M": 10**6, "G": 10**9,
            "m": MIB, "g": 2**30}  # m/g: Java's -Xmx suffixes
CONVERSION_ARGS = ("--inpDir", "--filePattern", "--outDir", "--fileExtension", "--layout")


def _docs(relative: str) -> list[dict]:
    return [d for d in yaml.safe_load_all((DEPLOY / relative).read_text()) if d]


def _one(relative: str, kind: str) -> dict:
    (doc,) = [d for d in _docs(relative) if d["kind"] == kind]
    return doc


def _image() -> str:
    text = (ROOT / "build-docker.sh").read_text()
    org = re.search(r"^ORG=(\S+)$", text, re.M).group(1)
    image = re.search(r"^IMAGE=(\S+)$", text, re.M).group(1)
    return f"{org}/{image}:{VERSION}"


def _dockerfile_user() -> tuple[int, int]:
    users = re.findall(r"^USER\s+(\d+):(\d+)\s*$", (ROOT / "Dockerfile").read_text(), re.M)
    assert users, "the Dockerfile sets a numeric USER uid:gid"
    uid, gid = users[-1]
    return int(uid), int(gid)


def _bytes(quantity: str) -> int:
    m = re.fullmatch(r"(\d+)([A-Za-z]*)", str(quantity))
    assert m, quantity
    return int(m.group(1)) * QUANTITY.get(m.group(2), 1)


def _env(container: dict) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container.get("env", [])}


def _flags(args: list[str]) -> dict[str, str | None]:
    """``--name value`` pairs (a bare flag maps to None)."""
    out: dict[str, str | None] = {}
    for i, arg in enumerate(args):
        if arg.startswith("--"):
            nxt = args[i + 1] if i + 1 < len(args) else None
            out[arg] = None if nxt is None or nxt.startswith("--") else nxt
    return out


def _job_containers() -> list[tuple[str, dict, dict]]:
    """(file, pod spec, container) of every Kubernetes Job."""
    found = []
    for path in sorted((DEPLOY / "kubernetes").glob("*.yaml")):
        for doc in _docs(f"kubernetes/{path.name}"):
            if doc["kind"] == "Job":
                pod = doc["spec"]["template"]["spec"]
                found += [(path.name, pod, c) for c in pod["containers"]]
    return found


def _argo() -> dict:
    return _one("argo/workflow-template.yaml", "WorkflowTemplate")


def _argo_containers() -> dict[str, dict]:
    return {t["name"]: t["container"] for t in _argo()["spec"]["templates"] if "container" in t}


def _all_containers() -> list[dict]:
    return [c for _, _, c in _job_containers()] + list(_argo_containers().values())


def _sources() -> str:
    return "\n".join(p.read_text() for p in (ROOT / "src").rglob("*.py"))


def _substitute(text: str, values: dict[str, str]) -> str:
    """Argo's ``{{name}}`` placeholders filled in (an unknown name is an error)."""
    return re.sub(r"\{\{([^}]+)\}\}", lambda m: values[m.group(1)], text)


def _argo_values(index: int) -> dict[str, str]:
    """What Argo fills in for the fanned-out step ``index``, with the default parameters."""
    params = {p["name"]: p["value"] for p in _argo()["spec"]["arguments"]["parameters"]}
    return {**{f"workflow.parameters.{k}": v for k, v in params.items()},
            "inputs.parameters.index": str(index)}


def _local(args: list[str], data: Path, mount: str = "/data") -> list[str]:
    """The pod's arguments with the volume's mount path moved to a local directory."""
    return [str(data) + a[len(mount):] if a.startswith(mount + "/") else a for a in args]


# --- every file, every container ----------------------------------------------------------


def test_every_manifest_parses_and_is_named():
    files = sorted(DEPLOY.glob("*/*.yaml"))
    assert {p.parent.name for p in files} == {"kubernetes", "argo"}
    for path in files:
        for doc in yaml.safe_load_all(path.read_text()):
            assert doc["apiVersion"] and doc["kind"], path
            assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", doc["metadata"]["name"]), path
            labels = doc["metadata"].get("labels", {})
            if "app.kubernetes.io/version" in labels:
                assert labels["app.kubernetes.io/version"] == VERSION, path


def test_every_container_runs_the_versioned_image_with_its_entrypoint():
    containers = _all_containers()
    assert len(containers) == 4
    for c in containers:
        assert c["image"] == _image() == f"polusai/ome-converter-plugin:{VERSION}"
        assert "command" not in c, "the image's ENTRYPOINT is the command"


def test_arguments_are_real_options_and_parse(tmp_path):
    real = {o.flag for o in cli.OPTIONS}
    (tmp_path / "in").mkdir()
    for c in _all_containers():
        assert set(_flags(c["args"])) <= real, c["args"]
        args = _local([_substitute(a, _argo_values(0)) for a in c["args"]], tmp_path)
        config = cli.parse(args, env={})
        assert config.inp_dir == tmp_path / "in" and config.out_dir == tmp_path / "out"


def test_environment_variables_are_read_by_the_code():
    sources = _sources()
    for c in _all_containers():
        for name in _env(c):
            assert re.search(rf"[\"']{name}[\"']", sources), f"nothing reads {name}"


def test_pods_run_as_the_image_user_without_privileges():
    uid, gid = _dockerfile_user()
    pods = [pod["securityContext"] for _, pod, _ in _job_containers()]
    pods.append(_argo()["spec"]["securityContext"])
    for ctx in pods:
        assert ctx["runAsNonRoot"] is True
        assert (ctx["runAsUser"], ctx["runAsGroup"], ctx["fsGroup"]) == (uid, gid, gid)
    for c in _all_containers():
        sec = c["securityContext"]
        assert sec["allowPrivilegeEscalation"] is False
        assert sec["capabilities"]["drop"] == ["ALL"]
        if sec.get("readOnlyRootFilesystem"):  # the caches go to /tmp (Dockerfile ENV)
            assert any(m["mountPath"] == "/tmp" for m in c["volumeMounts"])


def test_resources_follow_the_worker_count():
    """One CPU per worker, and room for each worker's Java heap plus ~300 MiB of Python and
    native memory (measured: 250-660 MiB per worker, heap included)."""
    for c in _all_containers():
        env = _env(c)
        workers = int(env["NUM_WORKERS"])
        assert int(env["NUM_THREADS"]) >= 1
        res = c["resources"]
        assert int(res["requests"]["cpu"]) == workers
        heap = _bytes(env["OMEIO_JAVA_HEAP"])
        assert _bytes(res["limits"]["memory"]) >= workers * (heap + 300 * MIB)
        assert _bytes(res["requests"]["memory"]) >= workers * 660 * MIB
        assert "cpu" not in res["limits"], "a CPU limit throttles; the request sizes the pool"


# --- Kubernetes ---------------------------------------------------------------------------


def test_pvc_is_shared_by_every_pod():
    pvc = _one("kubernetes/pvc.yaml", "PersistentVolumeClaim")
    assert pvc["spec"]["accessModes"] == ["ReadWriteMany"], "pods on several nodes write"
    claims = [v["persistentVolumeClaim"]["claimName"] for _, pod, _ in _job_containers()
              for v in pod["volumes"] if "persistentVolumeClaim" in v]
    claims += [v["persistentVolumeClaim"]["claimName"] for v in _argo()["spec"]["volumes"]
               if "persistentVolumeClaim" in v]
    assert claims and set(claims) == {pvc["metadata"]["name"]}


def test_indexed_job_gives_each_pod_its_own_shard(tmp_path):
    job = _one("kubernetes/job.yaml", "Job")
    spec = job["spec"]
    pod = spec["template"]["spec"]
    (c,) = pod["containers"]
    n = spec["completions"]
    assert spec["completionMode"] == "Indexed"
    assert spec["parallelism"] == n == int(_env(c)["SHARD_COUNT"]) > 1
    assert spec["backoffLimitPerIndex"] >= 1
    assert pod["restartPolicy"] == "Never"
    assert "--shard" not in c["args"] and "--verifyComplete" not in c["args"]
    rules = spec["podFailurePolicy"]["rules"]
    fail_index = [r for r in rules if r["action"] == "FailIndex"]
    assert fail_index[0]["onExitCodes"] == {"containerName": c["name"], "operator": "In",
                                            "values": [cli.USAGE_ERROR]}
    (tmp_path / "in").mkdir()
    args = _local(c["args"], tmp_path)
    shards = {cli.parse(args, env={**_env(c), "JOB_COMPLETION_INDEX": str(i)}).shard
              for i in range(n)}
    assert shards == {Shard(i, n) for i in range(n)}


def test_verify_job_checks_what_the_job_converts():
    job = _one("kubernetes/job.yaml", "Job")
    verify = _one("kubernetes/verify-job.yaml", "Job")
    (conv,) = job["spec"]["template"]["spec"]["containers"]
    (check,) = verify["spec"]["template"]["spec"]["containers"]
    flags = _flags(check["args"])
    assert "--verifyComplete" in flags and "--shard" not in flags
    assert "completionMode" not in verify["spec"] and verify["spec"]["backoffLimit"] == 0
    for name in CONVERSION_ARGS:
        assert flags[name] == _flags(conv["args"])[name], name
    mounts = {m["name"]: m for m in check["volumeMounts"]}
    data = [m for m in mounts.values() if m["mountPath"] == "/data"]
    assert data and data[0]["readOnly"] is True  # it only reads


# --- Argo -----------------------------------------------------------------------------------


def _steps() -> list[list[dict]]:
    spec = _argo()["spec"]
    (main,) = [t for t in spec["templates"] if t["name"] == spec["entrypoint"]]
    return main["steps"]


def test_argo_fans_out_one_step_per_shard_then_checks(tmp_path):
    spec = _argo()["spec"]
    params = {p["name"]: p["value"] for p in spec["arguments"]["parameters"]}
    fan_out, final = _steps()
    (shard_step,) = fan_out
    assert shard_step["withSequence"] == {"count": "{{workflow.parameters.shards}}"}
    assert shard_step["continueOn"] == {"failed": True}  # the final check decides
    assert shard_step["arguments"]["parameters"] == [{"name": "index", "value": "{{item}}"}]
    (verify_step,) = final
    containers = _argo_containers()
    conv = containers[shard_step["template"]]
    check = containers[verify_step["template"]]
    assert _flags(conv["args"])["--shard"] == \
        "{{inputs.parameters.index}}/{{workflow.parameters.shards}}"
    assert "--verifyComplete" in _flags(check["args"]) and "--shard" not in check["args"]
    for name in CONVERSION_ARGS:
        value = _flags(conv["args"])[name]
        assert value == _flags(check["args"])[name] == f"{{{{workflow.parameters.{name[2:]}}}}}"
    for p in spec["arguments"]["parameters"]:  # enums are the CLI's choices
        if "enum" in p:
            (opt,) = [o for o in cli.OPTIONS if o.name == p["name"]]
            assert tuple(p["enum"]) == opt.choices and p["value"] in opt.choices

    (tmp_path / "in").mkdir()
    n = int(params["shards"])
    seen = set()
    for item in range(n):  # what Argo substitutes into each fanned-out pod
        args = [_substitute(a, _argo_values(item)) for a in conv["args"]]
        config = cli.parse(_local(args, tmp_path), env=_env(conv))
        assert config.file_extension == params["fileExtension"]
        seen.add(config.shard)
    assert seen == {Shard(i, n) for i in range(n)}


def test_argo_retries_a_shard_but_not_a_bad_argument():
    (tmpl,) = [t for t in _argo()["spec"]["templates"] if t["name"] == "convert-shard"]
    retry = tmpl["retryStrategy"]
    assert int(retry["limit"]) >= 1
    assert retry["expression"] == f"asInt(lastRetry.exitCode) != {cli.USAGE_ERROR}"


@pytest.mark.parametrize("relative", ["kubernetes/job.yaml", "kubernetes/verify-job.yaml",
                                      "argo/workflow-template.yaml"])
def test_every_mount_has_a_volume(relative):
    for doc in _docs(relative):
        if doc["kind"] == "Job":
            pods = [(doc["spec"]["template"]["spec"]["volumes"], c)
                    for c in doc["spec"]["template"]["spec"]["containers"]]
        else:
            shared = doc["spec"].get("volumes", [])
            pods = [(shared + t.get("volumes", []), t["container"])
                    for t in doc["spec"]["templates"] if "container" in t]
        for volumes, c in pods:
            names = {v["name"] for v in volumes}
            assert {m["name"] for m in c["volumeMounts"]} <= names
