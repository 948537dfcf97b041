"""The ray and ray-cluster stacks, checked on the JSON users review and the objects the cluster receives."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
import yaml

from stacks.contract import INFRA_OUTPUTS
from tests.helpers import REFERENCE, ROOT, app_env, one, resources, tf_json
from tests.k8s_schemas import validate_core_object, validate_crd_object

INTERPOLATION = re.compile(r"\$\{(.*?)\}")


def ray_cluster_object(stacks) -> dict:
    return one(stacks["ray-cluster"], "kubernetes_manifest", "ray_cluster")["manifest"]


def test_synth_produces_three_stacks(default_synth):
    assert {"infra", "ray", "ray-cluster"} <= set(default_synth)


@pytest.mark.parametrize("stack", ["ray", "ray-cluster"])
def test_infra_is_read_only_through_remote_state(default_synth, stack):
    doc = default_synth[stack]
    own = {f"{t}.{n}" for t, byname in doc.get("resource", {}).items() for n in byname}
    refs = set()
    for expr in INTERPOLATION.findall(json.dumps(doc)):
        refs.update(re.findall(r"\b((?:data\.)?[a-z0-9_]+\.[a-z0-9_]+)(?:\.|\b)", expr))
    assert "data.terraform_remote_state.infra" in refs, f"{stack} reads no infra output"
    for ref in refs:
        if ref.startswith("data.terraform_remote_state"):
            assert ref == "data.terraform_remote_state.infra", ref
        elif ref.split(".")[0] in ("aws", "helm", "kubernetes") or ref.startswith(("aws_", "helm_", "kubernetes_")):
            assert ref in own, f"{stack} references {ref}, which it does not declare"
    assert "aws_eks_cluster" not in json.dumps(doc), "no direct reference to infra resources"
    # One reader, with the infra stack's own backend settings.
    readers = doc["data"]["terraform_remote_state"]
    assert list(readers) == ["infra"]
    infra_backend = default_synth["infra"]["terraform"]["backend"]
    (kind, settings), = infra_backend.items()
    assert readers["infra"]["backend"] == kind
    assert readers["infra"]["config"]["path"] == settings["path"]


@pytest.mark.parametrize("synth", ["default_synth", "prod_synth", "dev_synth"])
def test_every_infra_output_read_is_one_the_infra_stack_writes(synth, request):
    """A name the ray stacks read that infra does not output fails only at plan, after infra is applied."""
    stacks = request.getfixturevalue(synth)
    written = set(stacks["infra"]["output"])
    assert written == set(INFRA_OUTPUTS)
    for name in ("ray", "ray-cluster"):
        read = set(re.findall(r"data\.terraform_remote_state\.infra\.outputs\.([a-z0-9_]+)", json.dumps(stacks[name])))
        assert read and read <= written, (name, sorted(read - written))


def test_kubernetes_and_helm_providers_use_remote_state_and_exec_tokens(default_synth):
    providers = default_synth["ray"]["provider"]
    k8s = providers["kubernetes"][0]
    # endpoint_access tunnel (the default): the local end of `make tunnel`, checked against the endpoint's host.
    assert k8s["host"] == "https://127.0.0.1:8443"
    assert "data.terraform_remote_state.infra.outputs.cluster_endpoint" in k8s["tls_server_name"]
    ca_data = "data.terraform_remote_state.infra.outputs.cluster_certificate_authority_data"
    assert f"base64decode({ca_data})" in k8s["cluster_ca_certificate"]
    assert k8s["exec"][0]["command"] == "aws" and k8s["exec"][0]["args"][:2] == ["eks", "get-token"]
    helm = providers["helm"][0]["kubernetes"]
    assert helm["host"] == k8s["host"] and helm["exec"]["args"] == k8s["exec"][0]["args"]


def test_kuberay_operator_release(default_synth):
    rel = one(default_synth["ray"], "helm_release", "kuberay_operator")
    assert rel["chart"] == "kuberay-operator" and rel["version"] == "1.7.0"
    assert rel["repository"] == "https://ray-project.github.io/kuberay-helm/"
    assert rel["namespace"] == "${kubernetes_namespace_v1.kuberay_operator.metadata[0].name}" and rel["wait"] is True
    ns = one(default_synth["ray"], "kubernetes_namespace_v1", "kuberay_operator")["metadata"]
    assert ns["name"] == "kuberay-system" and ns["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    assert json.loads(rel["values"][0])["watchNamespace"] == ["${kubernetes_namespace_v1.ray.metadata[0].name}"]
    # Every value we pass is a key the chart knows (a typo would be ignored by Helm). watchNamespace has no default
    # (values.yaml shows it commented out); templates/deployment.yaml and multiple_namespaces_role.yaml read it.
    chart_defaults = json.loads((REFERENCE / "kuberay-operator.values.json").read_text())
    assert json.loads(rel["values"][0])
    for key in json.loads(rel["values"][0]):
        assert key in chart_defaults or key == "watchNamespace", f"kuberay-operator chart has no value {key!r}"


def test_device_plugin_lands_on_every_gpu_node_and_only_there(default_synth):
    ray, infra = default_synth["ray"], default_synth["infra"]
    plugin = json.loads(one(ray, "helm_release", "nvidia_device_plugin")["values"][0])
    # null deletes the chart's default affinity (NFD labels or nvidia.com/gpu.present); {} would keep it.
    assert "affinity" in plugin and plugin["affinity"] is None
    assert plugin["tolerations"] == [{"operator": "Exists"}] and plugin["priorityClassName"] == "system-node-critical"
    assert [n for n, g in resources(infra, "aws_eks_node_group").items() if g["labels"]["usage"] == "gpu"]
    for name, group in resources(infra, "aws_eks_node_group").items():
        on_it = plugin["nodeSelector"].items() <= group["labels"].items()
        assert on_it == (group["labels"]["usage"] == "gpu"), name
        if on_it:  # cluster-autoscaler's scale-from-zero template reads the labels from eks:DescribeNodegroup
            for k, v in plugin["nodeSelector"].items():
                assert group["labels"][k] == v


def test_core_releases_state_their_placement(default_synth):
    ray = default_synth["ray"]
    for name in ("cluster_autoscaler", "kuberay_operator"):
        values = json.loads(one(ray, "helm_release", name)["values"][0])
        assert values["nodeSelector"] == {"usage": "core"}, name
        assert values["tolerations"] == [] and values["affinity"] == {}, name
    ca = json.loads(one(ray, "helm_release", "cluster_autoscaler")["values"][0])
    assert ca["priorityClassName"] == "system-cluster-critical"


def test_cluster_addons(default_synth):
    ray = default_synth["ray"]
    ca = one(ray, "helm_release", "cluster_autoscaler")
    values = json.loads(ca["values"][0])
    assert values["autoDiscovery"]["clusterName"] == "${data.terraform_remote_state.infra.outputs.cluster_name}"
    annotations = values["rbac"]["serviceAccount"]["annotations"]
    assert annotations["eks.amazonaws.com/role-arn"] == "${aws_iam_role.cluster_autoscaler.arn}"
    trust = tf_json(one(ray, "aws_iam_role", "cluster_autoscaler")["assume_role_policy"], placeholder="TF_EXPR")
    cond = trust["Statement"][0]["Condition"]["StringEquals"]
    assert cond == {"TF_EXPR:sub": "system:serviceaccount:kube-system:cluster-autoscaler",
                    "TF_EXPR:aud": "sts.amazonaws.com"}
    assert "system:serviceaccount:kube-system:cluster-autoscaler" in cond.values()
    policy = json.loads(one(ray, "aws_iam_role_policy", "cluster_autoscaler")["policy"])
    scale = next(s for s in policy["Statement"] if "autoscaling:SetDesiredCapacity" in s["Action"])
    assert scale["Condition"]["StringEquals"] == {
        "aws:ResourceTag/k8s.io/cluster-autoscaler/${data.terraform_remote_state.infra.outputs.cluster_name}": "owned"}


def test_ray_workload_role_is_limited_to_the_data_bucket(default_synth):
    ray = default_synth["ray"]
    policy = json.loads(one(ray, "aws_iam_role_policy", "ray_workload")["policy"])
    bucket = "${data.terraform_remote_state.infra.outputs.data_bucket_arn}"
    assert policy["Statement"]
    for s in policy["Statement"]:
        res = s["Resource"] if isinstance(s["Resource"], list) else [s["Resource"]]
        allowed = (bucket, f"{bucket}/*") if s["Effect"] == "Allow" else (f"{bucket}/image-build/*",)
        assert all(r in allowed for r in res), s
    for name in ("ray_head", "ray_worker"):
        sa = one(ray, "kubernetes_service_account_v1", name)
        assert sa["metadata"]["annotations"]["eks.amazonaws.com/role-arn"] == "${aws_iam_role.ray_workload.arn}"


def test_fsx_volume_is_a_static_rwx_pv(default_synth):
    ray = default_synth["ray"]
    pv = one(ray, "kubernetes_persistent_volume_v1", "fsx")["spec"][0]
    csi = pv["persistent_volume_source"]["csi"]
    assert csi["driver"] == "fsx.csi.aws.com"
    assert csi["volume_handle"] == "${data.terraform_remote_state.infra.outputs.fsx_file_system_id}"
    assert csi["volume_attributes"]["mountname"] == "${data.terraform_remote_state.infra.outputs.fsx_mount_name}"
    assert pv["access_modes"] == ["ReadWriteMany"] and pv["persistent_volume_reclaim_policy"] == "Retain"
    pvc = one(ray, "kubernetes_persistent_volume_claim_v1", "fsx")
    assert pvc["spec"]["access_modes"] == ["ReadWriteMany"] and pvc["spec"]["storage_class_name"] == ""
    assert pvc["spec"]["volume_name"] == "${kubernetes_persistent_volume_v1.fsx.metadata[0].name}"


# ----------------------------------------------------------------------------------- RayCluster
def test_ray_cluster_validates_against_the_kuberay_crd(default_synth, dev_synth):
    for stacks in (default_synth, dev_synth):
        validate_crd_object(ray_cluster_object(stacks))


def test_ray_cluster_head(default_synth):
    rc = ray_cluster_object(default_synth)
    assert rc["metadata"]["name"] == "kuberay"  # head service: kuberay-head-svc
    head = rc["spec"]["headGroupSpec"]
    assert head["serviceType"] == "ClusterIP"
    assert head["rayStartParams"]["num-cpus"] == "0"
    pod = head["template"]["spec"]
    assert pod["nodeSelector"] == {"usage": "core"}
    c = pod["containers"][0]
    assert {p["containerPort"] for p in c["ports"]} == {10001, 8265, 8080, 6379, 8000}
    assert c["resources"]["limits"]["memory"] == "8Gi"
    # ray.image.source build (default): the image the infra stack's CodeBuild build pushed, from its output.
    assert c["image"] == "${data.terraform_remote_state.infra.outputs.ray_image}"
    assert rc["spec"]["rayVersion"] == "2.58.0"


def test_ray_cluster_gpu_workers(default_synth):
    rc = ray_cluster_object(default_synth)
    assert rc["spec"]["enableInTreeAutoscaling"] is True
    assert rc["spec"]["autoscalerOptions"]["idleTimeoutSeconds"] == 60
    (group,) = rc["spec"]["workerGroupSpecs"]
    assert group["groupName"] == "gpu-group" and (group["minReplicas"], group["maxReplicas"]) == (0, 4)
    pod = group["template"]["spec"]
    c = pod["containers"][0]
    assert c["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]
    assert pod["nodeSelector"] == {"ray-eks/node-group": "gpu"}


def test_ray_cluster_leaves_worker_replicas_to_the_autoscaler(default_synth, dev_synth):
    for stacks in (default_synth, dev_synth):
        res = one(stacks["ray-cluster"], "kubernetes_manifest", "ray_cluster")
        assert res["manifest"]["spec"]["workerGroupSpecs"]
        for group in res["manifest"]["spec"]["workerGroupSpecs"]:
            assert "replicas" not in group and {"minReplicas", "maxReplicas"} <= set(group)
        # Fields absent from the manifest are planned at their live value; computed_fields would not change that
        # (the provider applies it to manifest fields only), so none is set. force_conflicts lets Terraform change
        # a worker group after the autoscaler's patches took ownership of the (atomic) workerGroupSpecs list.
        assert "computed_fields" not in res
        assert res["field_manager"] == {"name": "terraform", "force_conflicts": True}


def test_ray_cluster_mounts_fsx_read_write_and_shm(default_synth):
    rc = ray_cluster_object(default_synth)
    pods = [rc["spec"]["headGroupSpec"]["template"]["spec"]]
    pods += [g["template"]["spec"] for g in rc["spec"]["workerGroupSpecs"]]
    for pod in pods:
        vols = {v["name"]: v for v in pod["volumes"]}
        assert vols["fsx"]["persistentVolumeClaim"]["claimName"] == "fsx-lustre"
        assert vols["dshm"]["emptyDir"]["medium"] == "Memory"
        mounts = {m["mountPath"]: m for m in pod["containers"][0]["volumeMounts"]}
        assert not mounts["/ray/export"].get("readOnly", False)
        assert mounts["/dev/shm"]["name"] == "dshm"
        assert pod["containers"][0]["securityContext"]["runAsUser"] == 1000
        # Writable by uid 1000 without a manual chmod: the init container sets the owner.
        init = pod["initContainers"][0]
        assert "chown 1000:100 /ray/export" in init["command"][-1]
        assert pod["serviceAccountName"] in ("ray-head", "ray-worker") and pod["automountServiceAccountToken"] is False


def test_dev_example_has_cpu_workers_and_no_gpu_addons(dev_synth):
    rc = ray_cluster_object(dev_synth)
    (group,) = rc["spec"]["workerGroupSpecs"]
    pod = group["template"]["spec"]
    assert "nvidia.com/gpu" not in pod["containers"][0]["resources"]["limits"]
    assert "tolerations" not in pod and pod["nodeSelector"] == {"ray-eks/node-group": "cpu"}
    assert rc["spec"]["headGroupSpec"]["template"]["spec"]["containers"][0]["image"] == \
        "${data.terraform_remote_state.infra.outputs.ray_image}"
    assert "nvidia_device_plugin" not in resources(dev_synth["ray"], "helm_release")


def test_job_submission_outputs(default_synth):
    out = default_synth["ray-cluster"]["output"]
    assert out["dashboard_port_forward_command"]["value"] == (
        "kubectl port-forward -n ray svc/kuberay-head-svc 8265:8265")
    cmd = out["ray_job_submit_command"]["value"]
    assert cmd.startswith("ray job submit --address http://localhost:8265 --working-dir training "
                          "-- python pytorch_training_e2e.py")
    assert "--runtime-env-json" not in cmd, "the built image holds the requirements: nothing to install per job"
    assert out["head_service"]["value"] == "kuberay-head-svc"


# ----------------------------------------------------------------------------------- rendered jobs
def render(tmp_path, config: dict | None, *args: str) -> subprocess.CompletedProcess:
    """scripts.render_jobs with its own (empty) synth and Terraform folders: what the repository's cdktf.out holds
    (another test's synth, another deployment's) must not decide the answer."""
    path = None
    if config is not None:
        path = tmp_path / "config.yaml"
        path.write_text(yaml.safe_dump(config))
    env = app_env(config=path, outdir=tmp_path / "cdktf.out", RAY_EKS_BUILD_DIR=str(tmp_path / "build"))
    return subprocess.run([sys.executable, "-m", "scripts.render_jobs", "--out", str(tmp_path / "out"), *args],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)


def loaded(out) -> dict[str, list[dict]]:
    return {p.name: list(yaml.safe_load_all(p.read_text())) for p in out.glob("*.yaml")}


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    """The stock image (no torch): the jobs carry the requirements in their runtime_env."""
    tmp = tmp_path_factory.mktemp("rendered")
    r = render(tmp, {"ray": {"image": {"source": "stock"}}})
    assert r.returncode == 0, r.stderr
    return loaded(tmp / "out")


def test_rendered_objects_validate(rendered):
    assert set(rendered) == {"submit-job.yaml", "rayjob.yaml"}
    kinds = []
    for docs in rendered.values():
        for d in docs:
            kinds.append(d["kind"])
            if d["kind"] == "RayJob":
                validate_crd_object(d)
            else:
                validate_core_object(d)
    assert sorted(kinds) == ["ConfigMap", "ConfigMap", "Job", "RayJob", "ServiceAccount"]


def test_submit_job_uses_the_cluster_image_and_head_service(rendered):
    sa, cm, job = rendered["submit-job.yaml"]
    assert sa["metadata"]["name"] == "ray-operator-ray-operator"
    assert cm["data"]["pytorch_training_e2e.py"] == (ROOT / "training" / "pytorch_training_e2e.py").read_text()
    pod = job["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "ray-operator-ray-operator"
    c = pod["containers"][0]
    assert c["image"] == "rayproject/ray:2.58.0-py311-cu130"
    assert "ray job submit --address http://kuberay-head-svc:8265" in c["command"][-1]
    assert [e["name"] for e in c["env"]] == ["RAY_AUTH_MODE", "RAY_AUTH_TOKEN"]
    assert "pip install" not in c["command"][-1]  # Ray installs the runtime_env's pip list, on every node


def test_rayjob_selects_the_running_cluster(rendered):
    cm, rj = rendered["rayjob.yaml"]
    assert rj["spec"]["clusterSelector"] == {"ray.io/cluster": "kuberay"}
    assert rj["spec"]["entrypoint"].startswith("python pytorch_training_e2e.py")
    assert "working_dir: /config" in rj["spec"]["runtimeEnvYAML"]
    assert rj["spec"]["submitterPodTemplate"]["spec"]["volumes"][0]["configMap"]["name"] == cm["metadata"]["name"]


def test_built_image_jobs_need_the_deployed_image_or_image(tmp_path):
    """With the default (build), the image exists only once the infra stack's build succeeded."""
    r = render(tmp_path, None)  # nothing synthesized or deployed from here
    assert r.returncode == 1 and len(r.stderr.splitlines()) == 1, r.stderr
    assert r.stderr.startswith("error: ") and "run `make deploy`" in r.stderr
    assert not (tmp_path / "out").exists()
    r = render(tmp_path, None, "--image", "123456789012.dkr.ecr.us-west-2.amazonaws.com/ray-custom:2.58.0-abc")
    assert r.returncode == 0, r.stderr
    docs = loaded(tmp_path / "out")
    job, rj = docs["submit-job.yaml"][2], docs["rayjob.yaml"][1]
    assert job["spec"]["template"]["spec"]["containers"][0]["image"].endswith("/ray-custom:2.58.0-abc")
    assert "--runtime-env-json" not in job["spec"]["template"]["spec"]["containers"][0]["command"][-1]
    assert yaml.safe_load(rj["spec"]["runtimeEnvYAML"]) == {"working_dir": "/config"}
