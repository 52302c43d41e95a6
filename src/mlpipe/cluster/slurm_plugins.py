"""Work-arounds for two bugs of Snakemake's SLURM plugins (snakemake-executor-plugin-slurm 2.8.0 and
snakemake-executor-plugin-slurm-jobstep 0.6.1, the latest), applied when the workflow is parsed.
Remove each once its plugin is fixed; tests/test_cluster.py fails without them.

1. ``sacct`` reports a job cancelled with ``scancel`` (by the user, an admin or a preemption that does
   not requeue) as ``CANCELLED by <uid>``. The submitting plugin compares the state with ``CANCELLED``
   and so takes the job for still running: Snakemake neither retries it nor ends, ever. Its status
   query is wrapped so that each state is its first word.
2. Of a job array, the jobstep plugin runs every task in a job step (``srun``) but the first, which it
   runs in the batch step: that task gets no ``--signal`` warning before its walltime (SLURM signals
   the job steps only), and neither its partition nor its cores in its environment. The first task is
   run like a plain job instead: in a job step, with the job's cores and GPUs.

Each work-around touches the plugin's own functions; a plugin that no longer has them is left as it is.
"""

from __future__ import annotations

import os

PATCHED = "mlpipe_patched"  # marks a wrapped function: the workflow may be parsed more than once per process


def patch_slurm_plugins(executor: str) -> None:
    """Apply the work-around of the plugin that ``executor`` runs jobs with."""
    if executor == "slurm":
        _see_cancelled_jobs()
    elif executor == "slurm-jobstep":
        _run_the_first_array_task_in_a_job_step()


def _see_cancelled_jobs() -> None:
    import snakemake_executor_plugin_slurm as plugin

    query = getattr(plugin, "query_job_status", None)
    if query is None or getattr(query, PATCHED, False):
        return

    async def query_job_status(command: str, logger):
        states, seconds = await query(command, logger)
        if states is not None:
            states = {job: state.split(" ", 1)[0] for job, state in states.items()}
        return states, seconds

    setattr(query_job_status, PATCHED, True)
    plugin.query_job_status = query_job_status


def _run_the_first_array_task_in_a_job_step() -> None:
    import snakemake_executor_plugin_slurm_jobstep as jobstep

    run_job = jobstep.Executor.run_job
    if getattr(run_job, PATCHED, False) or not hasattr(jobstep, "_is_first_array_task"):
        return

    def run_job_in_a_step(self, job):
        task = os.environ.get("SLURM_ARRAY_TASK_ID")
        if task is not None and jobstep._is_first_array_task(int(task)):
            self.job_array_task = False  # the plugin's path for a plain job: srun with the job's cores and GPUs
        return run_job(self, job)

    setattr(run_job_in_a_step, PATCHED, True)
    jobstep.Executor.run_job = run_job_in_a_step
