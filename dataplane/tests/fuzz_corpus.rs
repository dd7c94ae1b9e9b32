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
    use dataplane::esp::DecapError;
    let seeds = corpus("decap");
    assert!(seeds.len() >= 20, "corpus too small: {}", seeds.len());
    let mut ok = 0;
    // Selector bits 5-7 name the transform: every one must have a seed that decapsulates.
    let mut transforms_ok = [false; 8];
    for (name, bytes) in &seeds {
        let r = fuzz_decap(bytes);
        // Seeds named kat-* are valid packets (published, or built around published
        // payloads and keys) and must decapsulate.
        if name.contains("/kat-") {
            assert!(r.is_ok(), "{name}: {r:?}");
            transforms_ok[usize::from(bytes[0] >> 5)] = true;
        }
        // Mutated seeds of the new transforms each fail for their named reason.
        let want = [
            ("-icv", DecapError::AuthFail),
            ("-ct", DecapError::AuthFail),
            ("-noesn", DecapError::AuthFail),
            ("-esn", DecapError::AuthFail),
            ("-unaligned", DecapError::BadLength),
            ("-trunc", DecapError::Runt),
            ("-badpad", DecapError::BadPadding),
            ("-padlen", DecapError::BadPadding),
        ];
        if name.contains("/mut-chacha") || name.contains("/mut-aes") {
            if let Some((_, e)) = want.iter().find(|(suffix, _)| name.ends_with(suffix)) {
                assert_eq!(r, Err(*e), "{name}");
            }
        }
        ok += usize::from(r.is_ok());
    }
    assert!(ok >= 4);
    assert_eq!(transforms_ok, [true; 8], "a transform without a valid seed");
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
