"""The training's MLflow run carries its run identity; runs of the same identity whose process
died (SIGKILL, power loss) are marked FAILED instead of staying RUNNING forever."""

from __future__ import annotations

import logging
import os
import socket

import mlflow
from mlflow import MlflowClient

from transfusion_ad.core.trainer import EpochResult

logger = logging.getLogger(__name__)

IDENTITY_TAG = "run_identity"
HOST_TAG = "run_host"
PID_TAG = "run_pid"
FAILURE_TAG = "failure_reason"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def claim_identity(identity: str) -> None:
    """Tag the active run with the identity, this host and pid, and close the orphans.

    Call it with the identity's lock held: another RUNNING run of the identity is then either
    past training (its process alive) or dead. Only a run whose process is known dead, on this
    host, is marked FAILED, with the reason in ``failure_reason``.
    """
    active = mlflow.active_run()
    if active is None:
        return
    host = socket.gethostname()
    mlflow.set_tags({IDENTITY_TAG: identity, HOST_TAG: host, PID_TAG: str(os.getpid())})
    client = MlflowClient()
    candidates = client.search_runs(
        [active.info.experiment_id],
        filter_string=f"tags.{IDENTITY_TAG} = '{identity}' and attributes.status = 'RUNNING'",
    )
    for run in candidates:
        if run.info.run_id == active.info.run_id:
            continue
        pid = run.data.tags.get(PID_TAG, "")
        if run.data.tags.get(HOST_TAG) != host or not pid.isdigit() or _alive(int(pid)):
            continue
        client.set_tag(
            run.info.run_id,
            FAILURE_TAG,
            f"orphaned: process {pid} on {host} ended without closing the run (killed?); "
            f"training of identity {identity} continued in run {active.info.run_id}",
        )
        client.set_terminated(run.info.run_id, status="FAILED")
        logger.warning(
            "MLflow run %s of identity %s was left RUNNING by process %s, which is gone: "
            "marked FAILED; this run continues its training.",
            run.info.run_id,
            identity,
            pid,
        )


def log_epoch(result: EpochResult) -> None:
    """Stream one epoch's losses to the active run, so the UI shows training live."""
    if mlflow.active_run() is None:
        return
    metrics = {f"train_{name}": value for name, value in result.losses.items()}
    metrics["train_lr"] = result.lr
    mlflow.log_metrics(metrics, step=result.epoch)
