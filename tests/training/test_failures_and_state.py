"""The job's failure handling and resume state, with Ray Train's own classes and failure policy (no cluster): which
worker-start failures are retried and how often, the one line each ends with, the wait for resources, what a
checkpoint restores, and the settings the results JSON records."""

from __future__ import annotations

import pytest
import torch

from training import pytorch_training_e2e as job

# --- retries of worker starts (Ray Train 2.58's DefaultFailurePolicy, fed the job's FailureConfig) ------------------


def decisions(args, failures) -> list[str]:
    from ray.train.v2._internal.execution.failure_handling.default import DefaultFailurePolicy

    policy = DefaultFailurePolicy(job.run_config(args).failure_config)
    return [policy.make_decision(failure).value for failure in failures]


def test_a_restart_that_fails_to_start_is_retried_not_fatal():
    """Ray's own docstring: WorkerGroupStartupFailedError is 'a worker scheduled onto a node that dies while the
    worker actor is initializing' -- what a restart after a lost node runs into. It must not end the job at once."""
    from ray.train import ControllerError
    from ray.train.v2._internal.exceptions import WorkerGroupStartupFailedError, WorkerGroupStartupTimeoutError

    args = job.parse_args(["--max-failures", "2"])
    # the message worker_group.py gives it
    start_failed = ControllerError(WorkerGroupStartupFailedError("At least one of the worker actors failed to "
                                                                 "initialize."))
    timed_out = ControllerError(WorkerGroupStartupTimeoutError(num_workers=1))
    # counted together, over the run: --max-failures retries, the next one fails the job
    assert decisions(args, [start_failed, timed_out, start_failed]) == ["RETRY", "RETRY", "RAISE"]
    assert decisions(job.parse_args(["--max-failures", "0"]), [timed_out]) == ["RAISE"]


def test_resources_the_cluster_can_never_have_are_not_retried():
    from ray.train import ControllerError
    from ray.train.v2._internal.exceptions import InsufficientClusterResourcesError

    failure = ControllerError(InsufficientClusterResourcesError("no GPU node type"))
    assert decisions(job.parse_args([]), [failure]) == ["RAISE"]


def test_checkpoints_kept():
    assert job.run_config(job.parse_args([])).checkpoint_config.num_to_keep == job.CHECKPOINTS_TO_KEEP == 2


# --- the one line a failed start ends with -------------------------------------------------------------------------

def insufficient_resources_error(monkeypatch, cluster_max: dict, per_worker: dict, num_workers: int):
    """InsufficientClusterResourcesError as Ray raises it: its WorkerGroup's check, with the cluster's maximum (from
    the autoscaler's cluster config, absent here) stubbed where Ray reads it."""
    from ray._private.state import state
    from ray.train.v2._internal.exceptions import InsufficientClusterResourcesError
    from ray.train.v2._internal.execution.worker_group.worker_group import WorkerGroup

    monkeypatch.setattr(state, "get_max_resources_from_cluster_config", lambda: cluster_max)
    with pytest.raises(InsufficientClusterResourcesError) as raised:
        WorkerGroup._check_cluster_resources_and_raise_if_insufficient(per_worker, num_workers)
    return raised.value


def test_insufficient_cluster_resources_is_one_line(monkeypatch):
    from ray.train import ControllerError

    cause = insufficient_resources_error(monkeypatch, {"CPU": 16, "GPU": 1}, {"GPU": 1}, 3)
    args = job.parse_args(["--num-workers", "3"])
    line = job.worker_start_failure(ControllerError(cause), args)
    assert line == ('the Ray cluster can never run 3 training worker(s) with {GPU: 1} each: the workers need '
                    '{"GPU": 3} in all, the cluster has at most {"GPU": 1}. Lower --num-workers or add GPU capacity '
                    'to the worker group.')


@pytest.mark.parametrize("message", [
    "The worker group requires {\"GPU\": 2} but the cluster only has a maximum of {\"GPU\": 0} resources.",
    "Insufficient resources.\n\nDetails:\n  The worker group requires {\"GPU\": 2} but the cluster only has a maximum "
    "of {\"GPU\": 0} resources.\n",
    "Cannot schedule 2 workers:\nno node type has GPU\n",  # a wording we do not know: all of it, on one line
])
def test_insufficient_resources_line_does_not_depend_on_the_message_layout(message):
    from ray.train import ControllerError
    from ray.train.v2._internal.exceptions import InsufficientClusterResourcesError

    line = job.worker_start_failure(ControllerError(InsufficientClusterResourcesError(message)),
                                    job.parse_args(["--num-workers", "2"]))
    assert line is not None and "\n" not in line
    assert ('{"GPU": 2} in all, the cluster has at most {"GPU": 0}.' in line
            or "Cannot schedule 2 workers: no node type has GPU" in line)


def test_start_timeout_and_start_failure_lines():
    from ray.train import ControllerError
    from ray.train.v2._internal.exceptions import WorkerGroupStartupFailedError, WorkerGroupStartupTimeoutError

    args = job.parse_args(["--worker-wait-s", "30", "--max-failures", "1"])
    line = job.worker_start_failure(ControllerError(WorkerGroupStartupTimeoutError(num_workers=1)), args)
    assert line.startswith("the 1 training worker(s) did not get their resources ({GPU: 1} each) within "
                           "--worker-wait-s 30 s, 2 time(s) (--max-failures 1 + 1): no node with a free GPU")
    line = job.worker_start_failure(ControllerError(WorkerGroupStartupFailedError("x")), args)
    assert line.startswith("the 1 training worker(s) failed while starting, 2 time(s) (--max-failures 1 + 1)")
    assert job.worker_start_failure(ControllerError(RuntimeError("boom")), args) is None
    assert job.worker_start_failure(RuntimeError("not Ray Train's"), args) is None


# --- the wait for resources ------------------------------------------------------------------------------------------

def test_worker_wait_comes_from_the_option_else_ray_trains_variable(monkeypatch):
    monkeypatch.delenv(job.WORKER_GROUP_START_TIMEOUT_ENV, raising=False)
    assert job.parse_args([]).worker_wait_s == job.DEFAULT_WORKER_WAIT_S
    monkeypatch.setenv(job.WORKER_GROUP_START_TIMEOUT_ENV, "90")
    assert job.parse_args([]).worker_wait_s == 90.0  # a user's setting is kept
    assert job.parse_args(["--worker-wait-s", "5"]).worker_wait_s == 5.0  # the option wins


@pytest.mark.parametrize("value", ["soon", "0", "-3"])
def test_a_bad_worker_wait_variable_is_one_line(value, monkeypatch, capsys):
    monkeypatch.setenv(job.WORKER_GROUP_START_TIMEOUT_ENV, value)
    with pytest.raises(SystemExit) as exc:
        job.parse_args([])
    assert exc.value.code == 2
    assert f"$RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S must be a number of seconds > 0, got '{value}'" in \
        capsys.readouterr().err


# --- what a checkpoint restores --------------------------------------------------------------------------------------

def trained(seed: int, scale: float):
    """A small model, its SGD optimizer (momentum buffers) and an enabled gradient scaler, after a few steps."""
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    scaler = torch.amp.GradScaler("cpu", init_scale=scale, growth_interval=2)
    for _ in range(3):
        optimizer.zero_grad()
        loss = model(torch.randn(5, 4)).square().mean()
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
    return model, optimizer, scaler


def assert_same(a, b):
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        for key in a:
            assert_same(a[key], b[key])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            assert_same(x, y)
    elif isinstance(a, torch.Tensor):
        assert torch.equal(a, b)
    else:
        assert a == b


def test_train_state_round_trips_model_optimizer_and_scaler(tmp_path):
    model, optimizer, scaler = trained(seed=1, scale=256.0)
    job.save_checkpoint_files(str(tmp_path), model.state_dict(), 4, optimizer, scaler)
    assert sorted(p.name for p in tmp_path.iterdir()) == [job.MODEL_FILE, job.TRAIN_STATE_FILE]

    fresh_model, fresh_optimizer, fresh_scaler = trained(seed=2, scale=4096.0)  # different state everywhere
    assert fresh_scaler.get_scale() != scaler.get_scale()
    model_state, train_state = job.read_checkpoint_files(str(tmp_path))
    fresh_model.load_state_dict(model_state)
    assert job.restore_train_state(train_state, fresh_optimizer, fresh_scaler) == 5  # the epoch after the saved one
    assert_same(fresh_model.state_dict(), model.state_dict())
    assert_same(fresh_optimizer.state_dict(), optimizer.state_dict())  # momentum buffers included
    assert optimizer.state_dict()["state"], "the optimizer had momentum to restore"
    assert_same(fresh_scaler.state_dict(), scaler.state_dict())


def test_a_disabled_scalers_state_leaves_an_enabled_scaler_fresh(tmp_path):
    """A checkpoint from a bf16 run (scaler disabled, state {}) resumed where 'auto' gives fp16."""
    model, optimizer, _ = trained(seed=1, scale=256.0)
    job.save_checkpoint_files(str(tmp_path), model.state_dict(), 0, optimizer, torch.amp.GradScaler("cpu",
                                                                                                    enabled=False))
    _, train_state = job.read_checkpoint_files(str(tmp_path))
    scaler = torch.amp.GradScaler("cpu", init_scale=1024.0)
    assert job.restore_train_state(train_state, trained(seed=3, scale=1.0)[1], scaler) == 1
    assert scaler.get_scale() == 1024.0


# --- the settings the results JSON records ---------------------------------------------------------------------------

@pytest.mark.parametrize("argv,metrics,expected", [
    (["--no-use-gpu"], None, ("fp32", False)),
    (["--no-use-gpu", "--precision", "bf16", "--channels-last"], None, ("bf16", True)),
    (["--use-gpu", "--precision", "fp16"], None, ("fp16", True)),
    (["--use-gpu"], {"precision": "bf16", "channels_last": True}, ("bf16", True)),
    (["--use-gpu", "--no-channels-last"], {"precision": "fp16", "channels_last": False}, ("fp16", False)),
    (["--use-gpu"], None, (None, True)),  # 'auto' on a GPU: the GPU decides, and no worker reported
])
def test_results_record_the_resolved_settings(argv, metrics, expected):
    results = job.build_results(job.parse_args(argv), 10.0, 1.0, "measured", "/data", None, metrics)
    assert (results["precision"], results["channels_last"]) == expected
