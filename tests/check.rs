//! `mobiked check FILE` as a process: every broken file ends in exit status 1 with one
//! line per problem on stderr (file, line, column, key, what is wrong, the fix), never in
//! a panic (status 101), whatever the bytes.

use std::path::{Path, PathBuf};
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_mobiked");

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(name)
}

/// Runs `mobiked check` on `bytes`; the exit code, stdout and stderr.
fn check(dir: &Path, name: &str, bytes: &[u8]) -> (Option<i32>, String, String) {
    let file = dir.join(name);
    std::fs::write(&file, bytes).unwrap();
    let out = Command::new(BIN).arg("check").arg(&file).output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn check_reports_broken_files_and_never_panics() {
    let dir = std::env::temp_dir().join(format!("mobiked-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let good = std::fs::read_to_string(example("static-a.yaml")).unwrap();

    let (code, out, _) = check(&dir, "good.yaml", good.as_bytes());
    assert_eq!(code, Some(0));
    assert!(out.contains("ok: 1 path, 1 tunnel, 2 SAs"), "{out}");

    // A second document used to pass as `ok`, its errors unread.
    let two = format!("{good}---\ndataplane:\n  burst: 9999\n");
    let (code, out, err) = check(&dir, "two.yaml", two.as_bytes());
    let line = good.lines().count() + 1;
    assert_eq!(code, Some(1), "{out}{err}");
    assert!(out.is_empty(), "{out}");
    assert!(
        err.contains(&format!(
            "two.yaml: line {line}, column 1: `---` starts a second YAML document"
        )),
        "{err}"
    );

    // Bytes that are no configuration: each gets a message and status 1.
    let mut noise = Vec::new();
    let mut x: u32 = 0x2545_f491;
    for _ in 0..4096 {
        // xorshift32: fixed bytes of every value, the same on every run.
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        noise.push(x as u8);
    }
    let deep = format!("dataplane: {}{}\n", "[".repeat(300), "]".repeat(300));
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("empty.yaml", Vec::new(), "examples/client.yaml"),
        ("noise.bin", noise, "not UTF-8 text"),
        (
            "nul.yaml",
            good.replace("burst: 64", "burst: 6\0 4").into_bytes(),
            "NUL byte",
        ),
        ("deep.yaml", deep.into_bytes(), "nest deeper than 64 levels"),
        (
            "tab.yaml",
            good.replace("  burst: 64", "\tburst: 64").into_bytes(),
            "indent with spaces",
        ),
        ("utf16.yaml", [0xff, 0xfe, b'a', 0].to_vec(), "UTF-16"),
    ];
    for (name, bytes, says) in cases {
        let (code, out, err) = check(&dir, name, &bytes);
        assert_eq!(code, Some(1), "{name}: {out}{err}");
        assert!(err.contains(says), "{name}: {err}");
        assert!(
            err.lines()
                .all(|l| l.starts_with(&dir.join(name).display().to_string())),
            "{name}: {err}"
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
