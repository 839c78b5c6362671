"""The warm scorer for real: a preloaded server process, `sparkserve score` typed in a shell
and run in its forked child, jobs forked from it, signals, a vanished client, stale code."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from _api import server_config  # noqa: F401 (fixture)
from _files import no_partial_outputs, wait_until

from jupyter_sparkserve import processes
from jupyter_sparkserve.launcher import command_name
from jupyter_sparkserve.warm import client, protocol
from jupyter_sparkserve.workflows import JobRunner, WorkflowSpec

pytestmark = [
    pytest.mark.timeout(300),
    pytest.mark.filterwarnings("ignore:Add type hints to the `predict` method:UserWarning"),
]

SPARKSERVE = str(Path(sys.executable).with_name("sparkserve"))


@pytest.fixture
def run_dir(warm_run_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Warm scorers are used, never started unless a test says so."""
    monkeypatch.setenv(protocol.MODE_ENV, "use")
    return warm_run_dir


@pytest.fixture
def warm(run_dir: Path) -> dict[str, Any]:
    """A running warm scorer, as `sparkserve scorer start` leaves it."""
    started = sparkserve("scorer", "start", "--idle-timeout", "600", "--json")
    assert started.returncode == 0, started.stderr
    status = json.loads(started.stdout)
    assert status["running"] and status["socket"].startswith(str(run_dir))
    return status


def sparkserve(
    *args: str, mode: str | None = None, env_extra: dict[str, str] | None = None, **kwargs: Any
) -> subprocess.CompletedProcess:
    # The test's environment, as its own job runners and the warm scorer have it.
    env = {**os.environ, **(env_extra or {})}
    if mode is not None:
        env[protocol.MODE_ENV] = mode
    return subprocess.run(
        [SPARKSERVE, *args], capture_output=True, text=True, env=env, timeout=240, **kwargs
    )


def recent_runs() -> list[dict[str, Any]]:
    status = client.status()
    assert status is not None
    return status["recent"]


def test_score_runs_in_a_child_of_the_warm_scorer_with_the_same_output(
    warm, iris, iris_model, iris_csv, iris_saved, tmp_path
):
    cold = sparkserve("score", "iris", str(iris_csv), str(tmp_path / "cold.parquet"), mode="off")
    assert cold.returncode == 0, cold.stderr
    assert recent_runs() == []

    output = tmp_path / "warm.parquet"
    result = sparkserve("score", "iris", str(iris_csv), str(output), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Scored 150 rows from 1 file into")
    assert "Starting a warm scorer" not in result.stderr
    [run] = recent_runs()
    assert run["command"] == ["score", "iris"] and run["exit_code"] == 0 and not run["detached"]
    assert 0 < run["peak_mb"] < 1000
    warm_frame = pd.read_parquet(output)
    pd.testing.assert_frame_equal(warm_frame, pd.read_parquet(tmp_path / "cold.parquet"))
    assert warm_frame["prediction"].tolist() == iris_model.predict(iris[0]).tolist()

    # The run had this shell's directory and environment, not the server's.
    relative = sparkserve("score", "iris", "iris.csv", "relative.csv", cwd=iris_csv.parent)
    assert relative.returncode == 0, relative.stderr
    assert len(pd.read_csv(iris_csv.parent / "relative.csv")) == 150
    assert len(recent_runs()) == 2


def test_errors_read_and_exit_as_in_a_fresh_process(warm, iris_saved, tmp_path):
    args = ("score", "iris", str(tmp_path / "missing.csv"), str(tmp_path / "out.csv"))
    cold, warm_run = sparkserve(*args, mode="off"), sparkserve(*args)
    assert (warm_run.returncode, warm_run.stderr) == (cold.returncode, cold.stderr)
    assert warm_run.returncode == 1 and "missing.csv" in warm_run.stderr
    cold_json, warm_json = sparkserve(*args, "--json", mode="off"), sparkserve(*args, "--json")
    assert warm_json.stdout == cold_json.stdout and json.loads(warm_json.stdout)["error"]
    assert [run["exit_code"] for run in recent_runs()] == [1, 1]


def start_slow_run(slow_model, csv_folder: Path, output: Path) -> subprocess.Popen:
    ref = slow_model(0.5)  # 40 batches: 20 s unless stopped
    process = subprocess.Popen(
        [SPARKSERVE, "score", ref, str(csv_folder), str(output)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_until(lambda: bool((client.status() or {}).get("in_progress")), timeout=60)
    return process


def test_ctrl_c_reaches_the_warm_run_which_leaves_no_output(warm, slow_model, csv_folder, tmp_path):
    output = tmp_path / "scored.csv"
    process = start_slow_run(slow_model, csv_folder, output)
    wait_until(lambda: (tmp_path / "predicting").exists())
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 1, stderr
    assert "Aborted" in stderr
    assert not output.exists() and no_partial_outputs(output)
    [run] = recent_runs()
    assert run["exit_code"] == 1 and run["seconds"] < 15


def test_a_client_killed_outright_has_its_run_stopped(warm, slow_model, csv_folder, tmp_path):
    output = tmp_path / "scored.csv"
    process = start_slow_run(slow_model, csv_folder, output)
    wait_until(lambda: (tmp_path / "predicting").exists())
    process.kill()
    process.wait()
    wait_until(lambda: not client.status()["in_progress"], timeout=30)
    [run] = recent_runs()
    assert run["exit_code"] == 1 and run["seconds"] < 15  # SIGTERM unwound it: cleaned up
    assert not output.exists() and no_partial_outputs(output)


def test_a_job_forks_from_the_warm_scorer(
    warm, repo, iris, iris_model, iris_csv, iris_saved, tmp_path
):
    runner = JobRunner(repo)
    output = tmp_path / "scored.parquet"
    job = runner.submit(WorkflowSpec.from_dict(
        {"model": "iris", "input": str(iris_csv), "output": str(output)}
    ))  # fmt: skip
    done = runner.wait(job.id, timeout=120)
    assert done.status == "succeeded", done.error
    assert pd.read_parquet(output)["prediction"].tolist() == iris_model.predict(iris[0]).tolist()
    [run] = recent_runs()
    assert run["entry"] == "job" and run["detached"] and run["pid"] == job.pid
    log = runner.log(job.id)
    assert f"(forked by the warm scorer as pid {job.pid})" in log
    assert f"Job {job.id} succeeded." in log
    assert f"process {job.pid} exited with code 0" in log


def test_a_warm_job_killed_with_sigkill_is_failed_with_how_it_died(
    warm, repo, slow_model, csv_folder, tmp_path
):
    runner = JobRunner(repo)
    output = tmp_path / "scored.csv"
    job = runner.submit(WorkflowSpec.from_dict(
        {"model": slow_model(120), "input": str(csv_folder), "output": str(output)}
    ))  # fmt: skip
    wait_until(lambda: (tmp_path / "predicting").exists())
    assert processes.pid_alive(job.pid)
    os.killpg(job.pid, signal.SIGKILL)  # a session of its own, like any job
    wait_until(lambda: runner.get(job.id).finished, timeout=30)
    failed = runner.get(job.id)
    assert failed.status == "failed"
    assert f"The job's process {job.pid} was killed by SIGKILL" in failed.error
    assert not output.exists() and no_partial_outputs(output)


def test_a_request_for_other_code_or_an_unknown_entry_is_refused(warm):
    with socket.socket(socket.AF_UNIX) as sock:
        sock.connect(warm["socket"])
        protocol.send(sock, {"op": "run", "stamp": "0" * 16, "entry": "cli", "argv": ["status"],
                             "cwd": "/", "env": {}})  # fmt: skip
        answer = protocol.Reader(sock).read()
    assert answer["stale"] is True and "other code" in answer["error"]
    with socket.socket(socket.AF_UNIX) as sock:
        sock.connect(warm["socket"])
        protocol.send(sock, {"op": "run", "stamp": warm["stamp"], "entry": "python",
                             "argv": [], "cwd": "/", "env": {}})  # fmt: skip
        assert "Unknown entry" in protocol.Reader(sock).read()["error"]
    assert recent_runs() == []


def test_without_a_warm_scorer_score_runs_in_its_own_process(
    run_dir, iris_saved, iris_csv, tmp_path
):
    result = sparkserve("score", "iris", str(iris_csv), str(tmp_path / "out.csv"))  # mode use
    assert result.returncode == 0, result.stderr
    assert client.status() is None  # "use" never starts one


def test_a_fresh_score_in_auto_mode_leaves_a_warm_scorer_for_the_next(
    run_dir, iris_saved, iris_csv, tmp_path
):
    result = sparkserve("score", "iris", str(iris_csv), str(tmp_path / "a.csv"), mode="auto")
    assert result.returncode == 0, result.stderr
    assert "Starting a warm scorer" in result.stderr
    wait_until(lambda: client.status() is not None, timeout=120)
    assert client.status()["idle_timeout"] == protocol.DEFAULT_IDLE_SECONDS
    again = sparkserve("score", "iris", str(iris_csv), str(tmp_path / "b.csv"), mode="auto")
    assert again.returncode == 0 and "Starting a warm scorer" not in again.stderr
    assert [run["command"] for run in recent_runs()] == [["score", "iris"]]


def test_the_scorer_stops_when_idle_and_when_its_parent_is_gone(run_dir):
    parent = subprocess.Popen(["sleep", "300"])
    status = client.start(idle_timeout=0, parent_pid=parent.pid)
    assert status["parent_pid"] == parent.pid and status["idle_timeout"] == 0
    parent.kill()
    parent.wait()
    wait_until(lambda: not processes.pid_alive(status["pid"]), timeout=30)
    assert not Path(status["socket"]).exists()

    idle = client.start(idle_timeout=1)
    wait_until(lambda: not processes.pid_alive(idle["pid"]), timeout=30)
    assert client.status() is None


def test_stop_waits_for_runs_and_reports_what_it_stopped(warm):
    assert sparkserve("scorer", "status").stdout.startswith(f"Warm scorer pid {warm['pid']}")
    stopped = sparkserve("scorer", "stop", "--json")
    assert json.loads(stopped.stdout) == {"stopped": [warm["pid"]]}
    assert not processes.pid_alive(warm["pid"]) and not Path(warm["socket"]).exists()
    assert "No warm scorer is running (mode: use)" in sparkserve("scorer", "status").stdout


def test_the_socket_folder_must_be_private(monkeypatch, tmp_path):
    folder = tmp_path / "shared"
    folder.mkdir(mode=0o755)
    folder.chmod(0o755)
    monkeypatch.setenv(protocol.RUN_DIR_ENV, str(folder))
    with pytest.raises(PermissionError, match="chmod 700"):
        protocol.run_dir()
    assert client.status() is None  # and no client trusts it


@pytest.fixture
def auto_mode(run_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(protocol.MODE_ENV, "auto")


async def test_the_jupyter_server_keeps_a_warm_scorer_while_it_runs(auto_mode, jp_fetch):
    response = await jp_fetch("sparkserve", "api", "v1", "status")
    assert response.code == 200
    wait_until(lambda: client.status() is not None, timeout=120)
    status = client.status()
    assert status["parent_pid"] == os.getpid()  # the server runs in the test's process
    assert status["idle_timeout"] == 0


def test_the_command_is_found_after_the_group_options():
    assert command_name(["--home", "score", "list"]) == "list"
    assert command_name(["--home=/x", "score", "a", "b", "c"]) == "score"
    assert command_name(["--version"]) is None


def test_messages_survive_being_split_and_carry_descriptors():
    left, right = socket.socketpair()
    with left, right:
        read_end, write_end = os.pipe()
        protocol.send(left, {"op": "run", "argv": ["x" * 200_000]}, [write_end])
        os.close(write_end)
        reader = protocol.Reader(right)
        assert reader.read()["argv"] == ["x" * 200_000]
        [received] = reader.fds
        os.write(received, b"hi")
        os.close(received)
        assert os.read(read_end, 2) == b"hi"
        os.close(read_end)


# ---------------------------------------------------------------- what must not break it


def start_run_request(warm: dict[str, Any], argv: list[str]) -> tuple[socket.socket, int]:
    """A connected client that has sent a run of `sparkserve ARGV` and read its pid."""
    sock = socket.socket(socket.AF_UNIX)
    sock.connect(warm["socket"])
    request = {
        "op": "run", "stamp": warm["stamp"], "entry": "cli", "argv": argv,
        "cwd": os.getcwd(), "env": dict(os.environ), **protocol.process_context(),
    }  # fmt: skip
    reader = protocol.Reader(sock)
    protocol.send(sock, request)
    assert reader.read() == {"ready": True}
    with open(os.devnull, "w") as null:
        protocol.send(sock, {"op": "streams"}, [0, null.fileno(), null.fileno()])
    return sock, int(reader.read()["pid"])


def test_a_signal_sent_the_moment_a_run_starts_reaches_the_run_not_the_scorer(
    warm, iris_saved, iris_csv, tmp_path
):
    for index in range(5):
        argv = ["score", "iris", str(iris_csv), str(tmp_path / f"{index}.csv")]
        sock, pid = start_run_request(warm, argv)
        os.kill(pid, signal.SIGINT)
        with sock:
            ended = protocol.Reader(sock).read()
        assert ended is not None and ended["pid"] == pid
    status = client.status()
    assert status is not None and status["pid"] == warm["pid"]
    assert len(status["recent"]) == 5


def test_a_client_gone_before_its_run_started_has_it_stopped(
    warm, slow_model, csv_folder, tmp_path
):
    output = tmp_path / "scored.csv"
    ref = slow_model(0.5)
    sock, _pid = start_run_request(warm, ["score", ref, str(csv_folder), str(output)])
    sock.close()  # as a Ctrl-C before the client read its answer
    wait_until(lambda: len(recent_runs()) == 1, timeout=30)
    assert recent_runs()[0]["seconds"] < 15
    assert not output.exists() and no_partial_outputs(output)


def test_a_malformed_request_is_answered_and_the_scorer_goes_on(warm):
    read_end, write_end = os.pipe()
    with socket.socket(socket.AF_UNIX) as sock:
        sock.connect(warm["socket"])
        socket.send_fds(sock, [b"[" * 200_000 + b"\n"], [write_end])
        os.close(write_end)
        assert "Bad request" in protocol.Reader(sock).read()["error"]
    assert os.read(read_end, 1) == b""  # the descriptor it was sent is closed, not kept
    os.close(read_end)
    assert client.status()["pid"] == warm["pid"]


def test_a_run_killed_by_a_signal_kills_its_client_the_same_way(
    warm, slow_model, csv_folder, tmp_path
):
    process = start_slow_run(slow_model, csv_folder, tmp_path / "scored.csv")
    wait_until(lambda: (tmp_path / "predicting").exists())
    [run] = client.status()["in_progress"]
    os.kill(run["pid"], signal.SIGKILL)
    process.communicate(timeout=60)
    assert process.returncode == -signal.SIGKILL


def test_a_client_started_differently_runs_its_command_itself(warm, iris_saved, iris_csv, tmp_path):
    output = tmp_path / "out.csv"
    other = sparkserve(
        "score", "iris", str(iris_csv), str(output), env_extra={"PYTHONHASHSEED": "7"}
    )
    assert other.returncode == 0, other.stderr
    assert recent_runs() == []  # refused: a fork cannot change its hash seed
    nicer = subprocess.run(
        ["nice", "-n", "5", SPARKSERVE, "score", "iris", str(iris_csv), str(output)],
        capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert nicer.returncode == 0, nicer.stderr
    assert len(recent_runs()) == 1  # a lower priority it can give
    gone = tmp_path / "gone"
    gone.mkdir()
    in_deleted = subprocess.Popen(
        ["sh", "-c", f'rmdir "{gone}" && exec "$0" "$@"', SPARKSERVE, "score", "iris",
         str(iris_csv), str(output)],
        cwd=gone, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    _, stderr = in_deleted.communicate(timeout=240)
    assert in_deleted.returncode == 0, stderr  # no working folder to give: run here


def test_a_wedged_scorer_does_not_hang_the_command(warm, iris_saved, iris_csv, tmp_path):
    os.kill(warm["pid"], signal.SIGSTOP)
    try:
        started = time.monotonic()
        result = sparkserve("score", "iris", str(iris_csv), str(tmp_path / "out.csv"))
        assert result.returncode == 0, result.stderr
        assert time.monotonic() - started < client.ANSWER_TIMEOUT + 60
    finally:
        os.kill(warm["pid"], signal.SIGCONT)


def test_a_stopping_scorer_lets_a_new_one_start_while_its_runs_finish(
    warm, slow_model, csv_folder, tmp_path
):
    process = start_slow_run(slow_model, csv_folder, tmp_path / "scored.csv")
    with socket.socket(socket.AF_UNIX) as sock:
        sock.connect(warm["socket"])
        protocol.send(sock, {"op": "stop"})
        assert protocol.Reader(sock).read()["stopping"]
    successor = client.start(idle_timeout=600)
    assert successor["pid"] != warm["pid"] and processes.pid_alive(warm["pid"])
    process.send_signal(signal.SIGINT)
    process.communicate(timeout=60)
    wait_until(lambda: not processes.pid_alive(warm["pid"]), timeout=30)


def test_running_jobs_keep_an_idle_scorer_alive(run_dir, repo, slow_model, csv_folder,
                                               tmp_path):  # fmt: skip
    status = client.start(idle_timeout=1)
    runner = JobRunner(repo)
    job = runner.submit(WorkflowSpec.from_dict(
        {"model": slow_model(0.5), "input": str(csv_folder), "output": str(tmp_path / "o.csv")}
    ))  # fmt: skip
    assert client.status()["in_progress"][0]["pid"] == job.pid
    time.sleep(4)
    assert processes.pid_alive(status["pid"])
    runner.cancel(job.id)
    wait_until(lambda: not processes.pid_alive(status["pid"]), timeout=30)


def test_a_fresh_score_succeeds_when_no_scorer_can_be_started(
    monkeypatch, iris_saved, iris_csv, tmp_path
):
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o755)
    monkeypatch.setenv(protocol.RUN_DIR_ENV, str(shared))
    result = sparkserve("score", "iris", str(iris_csv), str(tmp_path / "o.csv"), mode="auto")
    assert result.returncode == 0, result.stderr
    assert "warm scorer" not in result.stderr


def test_sigterm_unwinds_a_fresh_run_as_it_does_a_warm_one(slow_model, csv_folder, tmp_path):
    output = tmp_path / "scored.csv"
    process = subprocess.Popen(
        [SPARKSERVE, "score", slow_model(0.5), str(csv_folder), str(output)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip (SPARKSERVE_WARM_SCORER=off: a process of its own)
    wait_until(lambda: (tmp_path / "predicting").exists())
    process.terminate()
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 1 and "Aborted" in stderr
    assert not output.exists() and no_partial_outputs(output)
