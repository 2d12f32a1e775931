//! `hangar-scheduler`'s command line.

use std::process::Command;

#[test]
fn check_config_reports_problems_and_exits_1() {
    let out = Command::new(env!("CARGO_BIN_EXE_hangar-scheduler"))
        .env_clear()
        .env("HANGAR_REPAIR_INTERVAL_SECS", "0")
        .arg("check-config")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("HANGAR_DATABASE_URL: missing"), "{text}");
    assert!(
        text.contains("HANGAR_REPAIR_INTERVAL_SECS: 0 is out of range"),
        "{text}"
    );
}

#[test]
fn help_names_the_subcommands() {
    let out = Command::new(env!("CARGO_BIN_EXE_hangar-scheduler"))
        .arg("--help")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    for sub in ["run", "repair-once", "check-config"] {
        assert!(text.contains(sub), "{sub}: {text}");
    }
}
