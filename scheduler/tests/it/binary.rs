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
    hangar_tests::assert_help_lists(
        env!("CARGO_BIN_EXE_hangar-scheduler"),
        &["run", "repair-once", "list", "check-config"],
    );
}

#[test]
fn list_prints_every_schedule_with_its_next_fire_times_in_both_zones() {
    let dir = std::env::temp_dir().join(format!("hangar-list-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("schedules.toml");
    std::fs::write(
        &file,
        r#"
[[schedule]]
name = "nightly"
cron = "30 2 * * *"
timezone = "Europe/Berlin"
kind = "system.noop"

[[schedule]]
name = "paused"
cron = "*/15 * * * *"
kind = "system.noop"
enabled = false
"#,
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_hangar-scheduler"))
        .env_clear()
        .env("HANGAR_DATABASE_URL", "postgres://unused@127.0.0.1/none")
        .env("HANGAR_SCHEDULES_FILE", &file)
        .args(["list", "--count", "3"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("nightly  cron \"30 2 * * *\" in Europe/Berlin"),
        "{text}"
    );
    assert!(text.contains("paused") && text.contains("DISABLED"), "{text}");
    let berlin_times = text.lines().filter(|l| l.contains(" 02:30:00 CE")).count();
    assert_eq!(berlin_times, 3, "three fire times at 02:30 Berlin time: {text}");

    // A bad file: the error names the schedule and the field, exit non-zero.
    std::fs::write(
        &file,
        "[[schedule]]\nname = \"x\"\ncron = \"99 * * * *\"\nkind = \"system.noop\"\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_hangar-scheduler"))
        .env_clear()
        .env("HANGAR_DATABASE_URL", "postgres://unused@127.0.0.1/none")
        .env("HANGAR_SCHEDULES_FILE", &file)
        .arg("list")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("schedule #1 (\"x\"): cron:"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}
