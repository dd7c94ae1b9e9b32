//! Replays the committed fuzz corpus (dataplane/fuzz/corpus) through the fuzz harnesses on
//! stable, so every seed and every crash ever added stays a regression test.

use mobiked_dataplane as dataplane;

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

#[test]
fn decap_corpus() {
    let seeds = corpus("decap");
    assert!(seeds.len() >= 20, "corpus too small: {}", seeds.len());
    let mut ok = 0;
    for (name, bytes) in &seeds {
        let r = fuzz_decap(bytes);
        // Seeds named kat-* are valid published packets and must decapsulate.
        if name.contains("/kat-") {
            assert!(r.is_ok(), "{name}: {r:?}");
        }
        ok += usize::from(r.is_ok());
    }
    assert!(ok >= 4);
}

#[test]
fn parse_outer_corpus() {
    let seeds = corpus("parse_outer");
    assert!(seeds.len() >= 10, "corpus too small: {}", seeds.len());
    for (name, bytes) in &seeds {
        let r = fuzz_parse_outer(bytes);
        if name.contains("/valid-") {
            assert!(r.is_ok(), "{name}: {r:?}");
        }
    }
}
