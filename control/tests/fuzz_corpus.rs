//! Replays the committed fuzz corpus (control/fuzz/corpus) through the fuzz harnesses
//! on stable, so every seed and every crash ever found stays a regression test.

include!("../fuzz/harness.rs");

fn corpus(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| (p.display().to_string(), std::fs::read(&p).unwrap()))
        .collect()
}

/// Seeds named `valid-*` are real messages and must get through.
fn replay(target: &str, min: usize, f: impl Fn(&[u8]) -> Result<usize, String>) {
    let seeds = corpus(target);
    assert!(
        seeds.len() >= min,
        "{target}: corpus too small: {}",
        seeds.len()
    );
    let mut ok = 0;
    for (name, bytes) in &seeds {
        let r = f(bytes);
        if name.contains("/valid-") {
            assert!(r.is_ok(), "{name}: {r:?}");
        }
        ok += usize::from(r.is_ok());
    }
    assert!(ok >= 1, "{target}: no seed got through");
}

#[test]
fn ike_message_corpus() {
    replay("ike_message", 10, fuzz_ike_message);
}

#[test]
fn ike_sk_open_corpus() {
    replay("ike_sk_open", 8, fuzz_ike_sk_open);
}

#[test]
fn ike_endpoint_corpus() {
    replay("ike_endpoint", 4, fuzz_ike_endpoint);
}
