"""Score workflow definitions and the Sparkflows execution strings, on a real repository
database. Running them as jobs is tests/test_jobs.py."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from conftest import FAST_SAVE

from jupyter_sparkserve.errors import InvalidInput, InvalidReference, NotFound, Remedy
from jupyter_sparkserve.workflows import (
    ExecutionRequest,
    JobRunner,
    Workflows,
    WorkflowSpec,
    execution_request,
    parse_lib_jars,
    parse_program_parameters,
    parse_spark_config,
)


def spec(**changes: object) -> WorkflowSpec:
    return WorkflowSpec.from_dict(
        {"model": "iris", "input": "/d/in.csv", "output": "/d/out.csv", **changes}
    )


# ------------------------------------------------------------------------------ the spec


def test_a_spec_from_json_normalises_lists_and_defaults() -> None:
    made = spec(
        keep_columns="id, x1",
        input_format="CSV",
        engine="spark",
        spark_config={"spark.executor.instances": 2, "spark.dynamicAllocation.enabled": True},
        lib_jars="/opt/a.jar,/opt/b.jar",
        email_on_success="a@example.com, b@example.com,a@example.com",
    )
    assert made.keep_columns == ("id", "x1")
    assert made.input_format == "csv"
    assert made.output_format is None
    assert made.spark_config == {
        "spark.executor.instances": "2",
        "spark.dynamicAllocation.enabled": "true",
    }
    assert made.lib_jars == ("/opt/a.jar", "/opt/b.jar")
    assert made.email_on_success == ("a@example.com", "b@example.com")
    assert WorkflowSpec.from_dict(made.to_dict()) == made
    assert spec(keep_columns="").keep_columns == ()  # only the predictions
    assert spec(keep_columns="*").keep_columns is None  # every input column


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"model": ""}, "model is empty: give a model reference"),
        ({"model": "bad name!"}, "Invalid model name"),
        ({"input": "  "}, "input is empty"),
        ({"output": "/d/in.csv"}, "is the input: choose another output"),
        (
            {"engine": "dask"},
            "Unknown engine 'dask': use one of local, azureml, container, sagemaker, spark",
        ),
        ({"input_format": "xlsx"}, "Unknown input format 'xlsx': use one of csv, parquet, jsonl"),
        ({"output_format": 3}, "'output_format' in the workflow must be a string or null"),
        ({"keep_columns": "a,b,a"}, "keep_columns names 'a' twice"),
        ({"keep_columns": [1]}, "keep_columns must hold strings only"),
        ({"keep_columns": "p", "prediction_column": "p"}, "also a kept input column"),
        ({"prediction_column": ""}, "prediction_column is empty"),
        ({"spark_config": {"spark.master": "local"}}, "apply to engine 'spark' only"),
        ({"engine": "spark", "spark_config": "a=b"}, "'spark_config' in the workflow must be an"),
        ({"engine": "spark", "spark_config": {"bad key": "1"}}, "Invalid Spark setting name"),
        ({"engine": "spark", "spark_config": {"k": [1]}}, "must be text"),
        ({"email_on_failure": "ops"}, "'ops' is not an e-mail address"),
        ({"colour": "red"}, "Unknown workflow setting(s) 'colour' in the workflow: the workflow"),
    ],
)
def test_bad_specs_are_refused_with_what_to_fix(changes: dict, message: str) -> None:
    with pytest.raises(InvalidInput) as raised:
        spec(**changes)
    assert message in raised.value.message


def test_a_spec_needs_model_input_and_output() -> None:
    with pytest.raises(InvalidInput, match="needs input, output"):
        WorkflowSpec.from_dict({"model": "iris"})
    with pytest.raises(InvalidInput, match="workflow must be a JSON object"):
        WorkflowSpec.from_dict(["iris"])  # type: ignore[arg-type]
    with pytest.raises(InvalidReference):
        WorkflowSpec(model="iris:x", input="a", output="b")


def test_absolute_resolves_paths_but_not_uris_or_model_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    made = WorkflowSpec(
        model="./models/m",
        input="data/*.csv",
        output="s3a://bucket/out",
        engine="spark",
        lib_jars=("jars/x.jar",),
    ).absolute()
    assert made.model == str(tmp_path / "models" / "m")
    assert made.input == str(tmp_path / "data" / "*.csv")
    assert made.output == "s3a://bucket/out"
    assert made.lib_jars == (str(tmp_path / "jars" / "x.jar"),)
    assert spec(model="iris@champion").absolute().model == "iris@champion"


# ----------------------------------------------------------------------------- the store


def test_create_list_get_update_delete(repo, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    workflows = Workflows(repo)
    first = workflows.create(
        {"model": "iris", "input": "in.csv", "output": "out.csv"}, name="daily"
    )
    second = workflows.create(spec(model="churn@champion"))
    assert (first.id, second.id) == (1, 2)
    assert first.spec.input == str(tmp_path / "in.csv")  # stored absolute
    assert [w.id for w in workflows.list()] == [1, 2]
    assert workflows.get("1") == first

    updated = workflows.update(1, {"engine": "spark", "spark_config": {"spark.master": "local[1]"}})
    assert updated.spec.engine == "spark"
    assert updated.spec.spark_config == {"spark.master": "local[1]"}
    assert updated.name == "daily"
    assert updated.updated_at >= first.updated_at
    renamed = workflows.update(1, {"spark_config": None, "engine": None}, name=" nightly ")
    assert (renamed.name, renamed.spec.engine, renamed.spec.spark_config) == (
        "nightly",
        "local",
        {},
    )
    with pytest.raises(InvalidInput, match="Unknown engine"):
        workflows.update(1, {"engine": "gpu"})
    assert workflows.get(1).spec.engine == "local"  # a refused update changes nothing

    assert workflows.delete(1).id == 1
    with pytest.raises(NotFound, match=r"No workflow 1\.") as missing:
        workflows.get(1)
    assert missing.value.remedy == Remedy("list_workflows")
    with pytest.raises(InvalidInput, match="positive integer, got 'x'"):
        workflows.get("x")
    with pytest.raises(InvalidInput, match="at most 128 characters"):
        workflows.create(spec(), name="n" * 129)
    assert workflows.create(spec()).id == 3  # ids are not reused


@pytest.mark.parametrize(
    "name", ["daily\r\nBcc: x@evil.example", "a\nb", "tab\there", "nul\x00", "a\u2028b"]
)
def test_a_workflow_name_with_control_characters_is_refused(repo, name: str) -> None:
    workflows = Workflows(repo)
    with pytest.raises(InvalidInput, match="single line of text without control characters"):
        workflows.create(spec(), name=name)
    created = workflows.create(spec(), name=" Daily run: iris, é \n")  # edges are stripped
    assert created.name == "Daily run: iris, é"
    with pytest.raises(InvalidInput, match="without control characters"):
        workflows.update(created.id, {}, name=name)
    assert workflows.get(created.id).name == "Daily run: iris, é"


# -------------------------------------------------------------------- programParameters


def test_program_parameters_override_settings() -> None:
    parsed = parse_program_parameters(
        "--input '/data/may 2024.csv' --output=/x --engine spark --keep-columns id,x1 "
        "--prediction_column score --outputFormat parquet"
    )
    assert parsed.variables == {}
    assert parsed.overrides == {
        "input": "/data/may 2024.csv",
        "output": "/x",
        "engine": "spark",
        "keep_columns": "id,x1",
        "prediction_column": "score",
        "output_format": "parquet",
    }
    assert parse_program_parameters("") == ({}, {})
    assert parse_program_parameters(None) == ({}, {})
    assert parse_program_parameters("--format=jsonl --model=iris:2").overrides == {
        "output_format": "jsonl",
        "model": "iris:2",
    }


def test_program_parameters_fill_variables() -> None:
    parsed = parse_program_parameters(
        "--var inputPath=/data/may.csv --var 'outputPath=/out/may 2024.parquet' "
        "--var=day=2024-05-01 --var empty= --engine spark --var x_1=a=b"
    )
    assert parsed.overrides == {"engine": "spark"}
    assert parsed.variables == {
        "inputPath": "/data/may.csv",
        "outputPath": "/out/may 2024.parquet",
        "day": "2024-05-01",
        "empty": "",
        "x_1": "a=b",
    }


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("--var1 value1", "unknown key --var1; known keys: --model, --input, --output,"),
        ("--input", "--input has no value"),
        ("--input --output /x", "--input has no value"),
        ("/a.csv", "expected --KEY VALUE, got '/a.csv'"),
        ("--input a --input b", "--input is given twice"),
        ("--input 'a", "cannot be read: No closing quotation"),
        ("--var inputPath", "--var takes NAME=VALUE (NAME: letters, digits and _), such as"),
        ("--var in-put=x", "got 'in-put=x'"),
        ("--var 1st=x", "--var takes NAME=VALUE"),
        ("--var", "--var has no value"),
        ("--var a=1 --var a=2", "--var a is given twice"),
        (
            "--bogus 1",
            "known keys: --model, --input, --output, --input-format, --output-format, "
            "--format, --keep-columns, --engine, --prediction-column, --var NAME=VALUE.",
        ),
    ],
)
def test_bad_program_parameters(text: str, message: str) -> None:
    with pytest.raises(InvalidInput) as raised:
        parse_program_parameters(text)
    assert message in raised.value.message
    assert raised.value.message.startswith("programParameters")


def test_spark_config_strings() -> None:
    text = 'spark.executor.memory=4g spark.master=local[2],spark.jars="a.jar,b.jar"\nk="v w"'
    assert parse_spark_config(text) == {
        "spark.executor.memory": "4g",
        "spark.master": "local[2]",
        "spark.jars": "a.jar,b.jar",
        "k": "v w",
    }
    assert parse_spark_config("spark.driver.extraJavaOptions='-Da=1 -Db=2'") == {
        "spark.driver.extraJavaOptions": "-Da=1 -Db=2"
    }
    assert parse_spark_config("  ") == {}
    assert parse_spark_config({"spark.executor.cores": 2}) == {"spark.executor.cores": "2"}
    for bad, message in [
        ("spark.master", "'spark.master' is not key=value"),
        ("=4g", "'=4g' is not key=value"),
        ("a=1 a=2", "a is given twice"),
        ('a="1', "cannot be read"),
        (3, "string of key=value settings"),
    ]:
        with pytest.raises(InvalidInput, match="sparkConfig") as raised:
            parse_spark_config(bad)  # type: ignore[arg-type]
        assert message in raised.value.message


def test_spark_config_in_spark_submit_style() -> None:
    text = (
        "--executor-memory 4g --driver-memory=2g --executor-cores 2 --num-executors 3 "
        '--master local[2] --conf spark.sql.shuffle.partitions=8 --conf "spark.x=a b" '
        "--name nightly --driver-cores 1 --jars /opt/a.jar,/opt/b.jar "
        "--conf=spark.y=1,2 spark.z=3,spark.w='c,d'"
    )
    assert parse_spark_config(text) == {
        "spark.executor.memory": "4g",
        "spark.driver.memory": "2g",
        "spark.executor.cores": "2",
        "spark.executor.instances": "3",
        "spark.master": "local[2]",
        "spark.sql.shuffle.partitions": "8",
        "spark.x": "a b",
        "spark.app.name": "nightly",
        "spark.driver.cores": "1",
        "spark.jars": "/opt/a.jar,/opt/b.jar",
        "spark.y": "1,2",  # an option's value is not split at commas
        "spark.z": "3",
        "spark.w": "c,d",
    }
    assert parse_spark_config("a=1,--master local , b=2") == {
        "a": "1",
        "spark.master": "local",
        "b": "2",
    }


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "--deploy-mode cluster",
            "unknown option --deploy-mode; the spark-submit options understood are --master, "
            "--name, --driver-memory, --driver-cores, --executor-memory, --executor-cores, "
            "--num-executors, --jars, --conf KEY=VALUE; anything else is written key=value",
        ),
        ("--verbose --master local", "--verbose has no value"),
        ("--master", "--master has no value"),
        ("--conf spark.x", "--conf 'spark.x' is not KEY=VALUE, such as --conf spark.sql"),
        ("--conf =1", "--conf '=1' is not KEY=VALUE"),
        (
            "--executor-memory 4g spark.executor.memory=2g",
            "spark.executor.memory is given twice ('--executor-memory 4g' and "
            "'spark.executor.memory=2g')",
        ),
        ("--conf spark.master=yarn --master local", "spark.master is given twice"),
        ("--master 'local", "cannot be read: No closing quotation"),
        ("--master local stray", "'stray' is not key=value"),
    ],
)
def test_bad_spark_submit_style_spark_config(text: str, message: str) -> None:
    with pytest.raises(InvalidInput) as raised:
        parse_spark_config(text)
    assert message in raised.value.message
    assert raised.value.message.startswith("sparkConfig")


def test_lib_jars() -> None:
    assert parse_lib_jars("/opt/a.jar, /opt/b.jar,,") == ("/opt/a.jar", "/opt/b.jar")
    assert parse_lib_jars(["hdfs:///jars/c.jar"]) == ("hdfs:///jars/c.jar",)
    assert parse_lib_jars(None) == ()
    with pytest.raises(InvalidInput, match="separate jars with commas, not spaces"):
        parse_lib_jars("/opt/a.jar /opt/b.jar")
    with pytest.raises(InvalidInput, match="libJars must be a list"):
        parse_lib_jars(3)  # type: ignore[arg-type]


# -------------------------------------------------------------------- the execute body


def test_execution_request_is_checked_and_applied() -> None:
    request = execution_request(
        {
            "workflowId": "7",
            "programParameters": "--input /d/june.csv --engine spark",
            "sparkConfig": "spark.executor.memory=4g",
            "libJars": "/opt/extra.jar",
            "emailOnSuccess": "",  # Sparkflows sends "" for a field not used
            "emailOnFailure": "ops@example.com",
        }
    )
    assert request == ExecutionRequest(
        workflow_id=7,
        overrides={"input": "/d/june.csv", "engine": "spark"},
        variables={},
        spark_config={"spark.executor.memory": "4g"},
        lib_jars=("/opt/extra.jar",),
        email_on_success=None,
        email_on_failure=("ops@example.com",),
    )
    saved = spec(
        engine="spark",
        spark_config={"spark.master": "local[1]", "spark.executor.memory": "1g"},
        lib_jars=["/opt/base.jar"],
        email_on_success=["team@example.com"],
    )
    applied = request.apply(saved)
    assert applied.input == "/d/june.csv"
    assert applied.output == saved.output
    assert applied.spark_config == {"spark.master": "local[1]", "spark.executor.memory": "4g"}
    assert applied.lib_jars == ("/opt/base.jar", "/opt/extra.jar")
    assert applied.email_on_success == ("team@example.com",)  # not given: the workflow's
    assert applied.email_on_failure == ("ops@example.com",)
    assert execution_request({"workflowId": 1}).apply(saved) == saved
    assert request.to_dict()["lib_jars"] == ["/opt/extra.jar"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ([1], "must be a JSON object"),
        ({}, "workflowId is required"),
        ({"workflowId": ""}, "workflowId is required"),
        ({"workflowId": "abc"}, "positive integer, got 'abc'"),
        ({"workflowId": True}, "'workflowId' in the execute request must be an integer or a"),
        ({"workflowId": 0}, "positive integer, got 0"),
        ({"workflowId": 1, "programParams": "x"}, "Unknown field(s) 'programParams' in the"),
        ({"workflowId": 1, "programParameters": ["--input"]}, "'programParameters' in the"),
        ({"workflowId": 1, "programParameters": "--bogus 1"}, "unknown key --bogus"),
        ({"workflowId": 1, "sparkConfig": "oops"}, "'oops' is not key=value"),
        ({"workflowId": 1, "libJars": 5}, "'libJars' in the execute request must be a string"),
        ({"workflowId": 1, "emailOnSuccess": "me@"}, "emailOnSuccess: 'me@' is not an e-mail"),
        ({"workflowId": 1, "emailOnFailure": 42}, "'emailOnFailure' in the execute request"),
    ],
)
def test_bad_execute_bodies(body: object, message: str) -> None:
    with pytest.raises(InvalidInput) as raised:
        execution_request(body)
    assert message in raised.value.message


def test_jars_in_spark_config_are_added_like_lib_jars() -> None:
    request = execution_request(
        {
            "workflowId": 1,
            "sparkConfig": "--jars /opt/b.jar,/opt/c.jar --executor-memory 4g",
            "libJars": "/opt/a.jar,/opt/b.jar",
        }
    )
    assert request.spark_config == {"spark.executor.memory": "4g"}
    assert request.lib_jars == ("/opt/a.jar", "/opt/b.jar", "/opt/c.jar")
    applied = request.apply(spec(engine="spark", lib_jars=["/opt/base.jar"]))
    assert applied.lib_jars == ("/opt/base.jar", "/opt/a.jar", "/opt/b.jar", "/opt/c.jar")
    assert "spark.jars" not in applied.spark_config
    keyed = execution_request({"workflowId": 1, "sparkConfig": {"spark.jars": "/opt/d.jar"}})
    assert (keyed.spark_config, keyed.lib_jars) == ({}, ("/opt/d.jar",))
    with pytest.raises(InvalidInput) as raised:
        execution_request({"workflowId": 1, "sparkConfig": "--jars '/opt/a b.jar'"})
    assert raised.value.message.startswith("sparkConfig spark.jars: '/opt/a b.jar' is not one")


def test_overrides_are_checked_when_applied() -> None:
    request = execution_request({"workflowId": 1, "programParameters": "--engine gpu"})
    with pytest.raises(InvalidInput, match="Unknown engine 'gpu'"):
        request.apply(spec())
    spark_only = execution_request({"workflowId": 1, "sparkConfig": "spark.master=local"})
    with pytest.raises(InvalidInput, match="engine 'spark' only"):
        spark_only.apply(spec())


# ------------------------------------------------------------------- ${NAME} variables


def templated(**changes: object) -> WorkflowSpec:
    return spec(**{"input": "/data/${inputPath}", "output": "/out/${outputPath}", **changes})


def run(workflow_id: int, parameters: str) -> ExecutionRequest:
    return execution_request({"workflowId": workflow_id, "programParameters": parameters})


def test_variables_are_filled_by_var() -> None:
    saved = templated(model="${model}@champion", output="/out/${outputPath}/${day}-$$v.parquet")
    assert saved.variables() == {
        "model": ("model",),
        "input": ("inputPath",),
        "output": ("outputPath", "day"),
    }
    request = run(
        3,
        "--var inputPath=may.csv --var outputPath=may --var day=01 --var model=churn "
        "--engine spark",
    )
    assert request.variables == {
        "inputPath": "may.csv",
        "outputPath": "may",
        "day": "01",
        "model": "churn",
    }
    applied = request.apply(saved)
    assert (applied.model, applied.input, applied.output, applied.engine) == (
        "churn@champion",
        "/data/may.csv",
        "/out/may/01-$v.parquet",  # $$ is a literal $
        "spark",
    )
    # A value is taken as it is: no variables inside it.
    assert run(3, "--var inputPath=${x} --var outputPath=$$").apply(templated()).output == (
        "/out/$$"
    )
    # An overridden setting's variables need no --var.
    assert run(3, "--input /d/june.csv --var outputPath=june").apply(templated()).input == (
        "/d/june.csv"
    )
    # $$ alone is unescaped too.
    assert execution_request({"workflowId": 3}).apply(spec(output="/out/$$x")).output == "/out/$x"
    assert request.to_dict()["variables"]["day"] == "01"


@pytest.mark.parametrize(
    ("parameters", "message"),
    [
        (
            "",
            "Workflow 3 needs --var inputPath=... --var outputPath=... in programParameters: "
            "its input is '/data/${inputPath}', its output is '/out/${outputPath}'.",
        ),
        (
            "--var inputPath=a.csv",
            "Workflow 3 needs --var outputPath=... in programParameters: its output is "
            "'/out/${outputPath}'.",
        ),
        (
            "--var inputPath=a --var outputPath=b --var inptPath=c",
            "programParameters: --var inptPath matches no ${inptPath} in workflow 3; its "
            "variables: inputPath, outputPath.",
        ),
        (
            "--input /a.csv --var inputPath=a --var outputPath=b",
            "programParameters: --var inputPath is not used: --input replaces workflow 3's "
            "input, which holds ${inputPath}.",
        ),
    ],
)
def test_unfilled_and_unused_variables_are_refused(parameters: str, message: str) -> None:
    with pytest.raises(InvalidInput) as raised:
        run(3, parameters).apply(templated())
    assert raised.value.message == message


def test_a_var_for_a_workflow_without_variables_is_refused() -> None:
    with pytest.raises(InvalidInput) as raised:
        run(4, "--var day=01").apply(spec())
    assert raised.value.message == (
        "programParameters: --var day matches no ${day}: workflow 4 has no variables."
    )


def test_a_filled_spec_is_checked_like_any_other() -> None:
    with pytest.raises(InvalidInput, match="is the input: choose another output"):
        run(3, "--var inputPath=x.csv --var outputPath=../data/x.csv").apply(templated())
    with pytest.raises(InvalidReference):
        run(3, "--var m=iris:x --var inputPath=a --var outputPath=b").apply(templated(model="${m}"))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"input": "/d/$month.csv"},
            "The workflow's input '/d/$month.csv' has a $ that is neither ${NAME} nor $$: write "
            "${NAME} for a variable filled by --var NAME=VALUE, $$ for a literal $.",
        ),
        ({"output": "/o/${day"}, "The workflow's output '/o/${day' has a $ that is neither"),
        (
            {"output": "/o/${1day}"},
            "The workflow's output '/o/${1day}' has an invalid variable ${1day}: a name is "
            "letters, digits and _, not starting with a digit (write $$ for a literal $).",
        ),
        ({"model": "${}"}, "The workflow's model '${}' has an invalid variable ${}"),
        ({"input": "/d/${in put}"}, "invalid variable ${in put}"),
    ],
)
def test_bad_variables_are_refused_when_saved(repo, changes: dict, message: str) -> None:
    workflows = Workflows(repo)
    with pytest.raises(InvalidInput) as raised:
        workflows.create(spec(**changes))
    assert message in raised.value.message
    saved = workflows.create(spec())
    with pytest.raises(InvalidInput) as raised:
        workflows.update(saved.id, changes)
    assert message in raised.value.message
    assert workflows.get(saved.id).spec == saved.spec


def test_variables_are_stored_as_written(repo, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    saved = Workflows(repo).create(
        {"model": "${model}", "input": "data/${day}.csv", "output": "${outputPath}"}
    )
    assert saved.spec.model == "${model}"  # checked as a reference once filled
    assert saved.spec.input == str(tmp_path / "data" / "${day}.csv")  # made absolute now
    assert saved.spec.output == "${outputPath}"  # made absolute when it runs
    assert Workflows(repo).get(saved.id).spec.variables() == {
        "model": ("model",),
        "input": ("day",),
        "output": ("outputPath",),
    }


@pytest.mark.timeout(300)
@pytest.mark.filterwarnings("ignore:Add type hints to the `predict` method:UserWarning")
def test_a_workflow_with_variables_runs_as_a_job(repo, iris, iris_model, tmp_path: Path) -> None:
    saved_ref = repo.save(iris_model, "iris", input_example=iris[0].head(3), **FAST_SAVE).ref
    (tmp_path / "data").mkdir()
    iris[0].to_csv(tmp_path / "data" / "may.csv", index=False)
    workflow = Workflows(repo).create(
        {
            "model": "iris",
            "input": str(tmp_path / "data" / "${inputPath}"),
            "output": "${outputPath}",
            "keep_columns": "",
        }
    )
    output = tmp_path / "out" / "may $1.parquet"
    output.parent.mkdir()
    runner = JobRunner(repo)
    job = runner.execute(
        execution_request(
            {
                "workflowId": workflow.id,
                "programParameters": f"--var inputPath=may.csv --var 'outputPath={output}'",
            }
        )
    )
    assert (job.spec.input, job.spec.output) == (str(tmp_path / "data" / "may.csv"), str(output))
    assert job.spec.model == saved_ref
    done = runner.wait(job.id, timeout=240)
    assert done.status == "succeeded", done.error
    assert done.output_path == str(output)
    scored = pd.read_parquet(output)
    assert scored["prediction"].tolist() == iris_model.predict(iris[0]).tolist()
    assert list(scored.columns) == ["prediction"]
