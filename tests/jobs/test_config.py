import pytest

from jobs.config import ConfigError, load_config


def test_local_profile_defaults():
    cfg = load_config("local")
    assert cfg.profile == "local"
    assert cfg.storage.root_uri == "file://./var/data"
    assert cfg.spark.master == "local[2]"


def test_kubernetes_profile_uses_s3_and_vllm():
    cfg = load_config("kubernetes")
    assert cfg.storage.root_uri.startswith("s3://")
    assert cfg.generation.engine == "vllm"
    assert cfg.spark.master == ""


def test_override_is_typed():
    cfg = load_config("local", None, ["filter.min_chars=10", "generation.temperature=0.2"])
    assert cfg.filter.min_chars == 10
    assert cfg.generation.temperature == 0.2


@pytest.mark.parametrize(
    "override, key",
    [
        ("filter.min_chars=abc", "filter.min_chars"),
        ("generation.top_p=1.5", "generation.top_p"),
        ("generation.engine=llama", "generation.engine"),
        ("filter.min_charz=3", "filter.min_charz"),
        ('storage.root_uri="ftp://x"', "storage"),
    ],
)
def test_bad_value_names_the_key(override, key):
    with pytest.raises(ConfigError) as err:
        load_config("local", None, [override])
    assert key in str(err.value)


def test_unknown_profile_and_missing_file():
    with pytest.raises(ConfigError, match="profile"):
        load_config("prod")
    with pytest.raises(ConfigError, match="not found"):
        load_config("local", "/nonexistent.toml")


def test_overlay_file(tmp_path):
    overlay = tmp_path / "big.toml"
    overlay.write_text("[generation]\nmax_documents = 500\n")
    assert load_config("local", str(overlay)).generation.max_documents == 500


def test_job_exits_2_with_message_on_bad_config(capsys):
    from jobs.cli import EXIT_CONFIG, run_job

    code = run_job(
        "probe", ["--snapshot", "s1", "--set", "spark.shuffle_partitions=0"], lambda c: 0
    )
    assert code == EXIT_CONFIG
    assert "spark.shuffle_partitions" in capsys.readouterr().err


def test_snapshot_name_cannot_escape_prefix(capsys):
    from jobs.cli import EXIT_CONFIG, run_job

    assert run_job("probe", ["--snapshot", "../etc"], lambda c: 0) == EXIT_CONFIG
    assert "snapshot" in capsys.readouterr().err
