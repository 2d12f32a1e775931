//! The binaries' command lines: `--help` and `check-config`.

use std::process::Command;

fn check_config(bin: &str, vars: &[(&str, &str)]) -> (i32, String) {
    let out = Command::new(bin)
        .env_clear()
        .envs(vars.iter().copied())
        .arg("check-config")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn check_config_reports_every_bad_variable_and_exits_1() {
    let (code, report) = check_config(
        env!("CARGO_BIN_EXE_hangar-api"),
        &[
            ("HANGAR_REDIS_URL", "localhost"),
            ("HANGAR_DB_MAX_CONNECTIONS", "0"),
            ("HANGAR_QUEUES", "sync=many"),
            ("HANGAR_LOG_FORMAT", "xml"),
        ],
    );
    assert_eq!(code, 1, "{report}");
    for var in [
        "HANGAR_DATABASE_URL: missing",
        "HANGAR_DB_MAX_CONNECTIONS: 0 is out of range",
        "HANGAR_REDIS_URL: not a URL",
        "HANGAR_QUEUES:",
        "HANGAR_LOG_FORMAT:",
    ] {
        assert!(report.contains(var), "{var} not in:\n{report}");
    }
}

/// check-config judges the Redis URL with the parser that connects: a list
/// of nodes has the right scheme and used to pass ("configuration OK")
/// before `serve` exited with "Redis URL did not parse".
#[test]
fn check_config_refuses_a_redis_url_the_processes_could_not_open() {
    let (code, report) = check_config(
        env!("CARGO_BIN_EXE_hangar-api"),
        &[
            ("HANGAR_DATABASE_URL", "postgres://hangar@db/hangar"),
            ("HANGAR_REDIS_URL", "redis://a:7000,http://b:7001"),
        ],
    );
    assert_eq!(code, 1, "{report}");
    assert!(
        report.contains("HANGAR_REDIS_URL: Redis cannot open it"),
        "{report}"
    );
    // Several redis:// URLs are a cluster's seed nodes, and the summary says
    // which mode was read.
    let (code, report) = check_config(
        env!("CARGO_BIN_EXE_hangar-api"),
        &[
            ("HANGAR_DATABASE_URL", "postgres://hangar@db/hangar"),
            ("HANGAR_REDIS_URL", "redis://a,redis://b"),
        ],
    );
    assert_eq!(code, 0, "{report}");
    assert!(
        report.contains("redis: <redacted url> (cluster, 2 seed nodes)"),
        "{report}"
    );
}

#[test]
fn check_config_accepts_a_valid_environment_without_printing_secrets() {
    let (code, report) = check_config(
        env!("CARGO_BIN_EXE_hangar-api"),
        &[
            ("HANGAR_DATABASE_URL", "postgres://hangar:s3cret@db/hangar"),
            ("HANGAR_REDIS_URL", "redis://:pw@r:6379"),
        ],
    );
    assert_eq!(code, 0, "{report}");
    assert!(report.starts_with("configuration OK"));
    assert!(!report.contains("s3cret") && !report.contains(":pw@"), "{report}");
}

#[test]
fn help_describes_the_subcommands() {
    hangar_tests::assert_help_lists(
        env!("CARGO_BIN_EXE_hangar-api"),
        &["serve", "migrate", "check-config", "create-api-key", "openapi"],
    );
}
