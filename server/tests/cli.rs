//! The server binary's command line: it takes no arguments, and says so before touching anything.
use std::process::Command;

#[test]
fn help_lists_the_settings_and_an_unknown_argument_is_refused_before_anything_starts() {
    let dir = std::env::temp_dir().join(format!("notif-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let run = |argument: &str| {
        Command::new(env!("CARGO_BIN_EXE_server"))
            .arg(argument)
            .current_dir(&dir)
            .output()
            .unwrap()
    };

    let help = run("--help");
    assert!(help.status.success(), "{help:?}");
    let text = String::from_utf8(help.stdout).unwrap();
    for setting in [
        "LEPTOS_SITE_ADDR",
        "LEPTOS_SITE_ROOT",
        "NOTIF_DB",
        "NOTIF_REDIS_URL",
        "docs/OPERATIONS.md",
    ] {
        assert!(text.contains(setting), "{setting} missing from:\n{text}");
    }

    let refused = run("--port=8080");
    assert_eq!(refused.status.code(), Some(2), "{refused:?}");
    assert!(String::from_utf8_lossy(&refused.stderr).contains("server --help"));

    // Neither started a server: no database was created where they ran.
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
    std::fs::remove_dir(&dir).unwrap();
}
