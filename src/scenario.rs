//! A benchmark scenario (`mobiked bench SCENARIO.yaml`): the topology the rig builds,
//! the clients and their traffic, and the events of each repetition. Every value is
//! checked here; a wrong one names its key and the fix.

use serde::Deserialize;
use std::time::Duration;

/// What a repetition does at a given time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Remove the client's address on the path in use (break-before-make).
    RemoveAddress,
    /// Put every client address back.
    Restore,
    /// MOBIKE: the client moves its IKE SAs to the next path (make-before-break).
    Move,
    /// Take the client's link of the path in use down / every link up.
    LinkDown,
    LinkUp,
    /// The gateway silently drops the path in use (both ways) / drops nothing.
    Blackhole,
    Unblackhole,
}

impl Action {
    const NAMES: [(&'static str, Action); 7] = [
        ("remove-address", Action::RemoveAddress),
        ("restore", Action::Restore),
        ("move", Action::Move),
        ("link-down", Action::LinkDown),
        ("link-up", Action::LinkUp),
        ("blackhole", Action::Blackhole),
        ("unblackhole", Action::Unblackhole),
    ];

    /// Whether the action makes the client change paths (a handover to time).
    pub fn triggers(self) -> bool {
        matches!(
            self,
            Action::RemoveAddress | Action::Move | Action::LinkDown | Action::Blackhole
        )
    }

    pub fn name(self) -> &'static str {
        Self::NAMES
            .iter()
            .find(|(_, a)| *a == self)
            .map_or("?", |(n, _)| n)
    }
}

#[derive(Clone, Debug)]
pub struct Event {
    pub at: Duration,
    pub action: Action,
}

/// A checked scenario.
#[derive(Clone, Debug)]
pub struct Scenario {
    pub name: String,
    pub description: String,
    pub paths: u8,
    /// Paths that are IPv6, as a bit mask (`topology.v6`: a list of path numbers).
    pub v6: u8,
    pub clients: u32,
    pub rotate: Duration,
    pub dpd: Duration,
    pub rate: u64,
    pub size: usize,
    pub reps: u32,
    pub rep: Duration,
    pub warmup: Duration,
    pub events: Vec<Event>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    dut: Option<String>,
    #[serde(default)]
    topology: Option<RawTopology>,
    #[serde(default)]
    clients: Option<RawClients>,
    #[serde(default)]
    traffic: Option<RawTraffic>,
    #[serde(default)]
    reps: Option<u32>,
    #[serde(default)]
    rep: Option<String>,
    #[serde(default)]
    warmup: Option<String>,
    #[serde(default)]
    events: Vec<RawEvent>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTopology {
    paths: Option<u8>,
    #[serde(default)]
    v6: Vec<u8>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawClients {
    count: Option<u32>,
    rotate: Option<String>,
    dpd: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTraffic {
    rate: Option<u64>,
    size: Option<usize>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEvent {
    at: String,
    #[serde(rename = "do")]
    action: String,
}

/// `500ms`, `2s`, `1m`, or plain seconds.
fn duration(key: &str, s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{key}: `{s}` is not a duration; write e.g. 500ms, 2s or 1m"))?;
    let ms = match unit {
        "ms" => n,
        "s" => n.saturating_mul(1000),
        "m" => n.saturating_mul(60_000),
        _ => {
            return Err(format!(
                "{key}: `{s}` has an unknown unit; write e.g. 500ms, 2s or 1m"
            ))
        }
    };
    Ok(Duration::from_millis(ms))
}

fn check<T: PartialOrd + std::fmt::Display>(key: &str, v: T, lo: T, hi: T) -> Result<T, String> {
    if v < lo || v > hi {
        return Err(format!("{key}: {v} is out of range; give {lo} to {hi}"));
    }
    Ok(v)
}

impl Scenario {
    /// Reads and checks a scenario file.
    pub fn load(path: &std::path::Path) -> Result<Scenario, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        Scenario::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    pub fn parse(text: &str) -> Result<Scenario, String> {
        let r: Raw = serde_saphyr::from_str(text).map_err(|e| e.to_string())?;
        if let Some(d) = r.dut.as_deref().filter(|d| *d != "mobiked") {
            return Err(format!(
                "dut: `{d}` is not supported by the rig yet; give `mobiked` (scripts/handover.sh runs the strongSwan scenarios)"
            ));
        }
        let topo = r.topology.unwrap_or(RawTopology {
            paths: None,
            v6: Vec::new(),
        });
        let paths = check("topology.paths", topo.paths.unwrap_or(2), 1, 8)?;
        let mut v6 = 0u8;
        for p in &topo.v6 {
            if *p >= paths {
                return Err(format!(
                    "topology.v6: path {p} does not exist; give path numbers below topology.paths ({paths})"
                ));
            }
            v6 |= 1 << p;
        }
        let cl = r.clients.unwrap_or(RawClients {
            count: None,
            rotate: None,
            dpd: None,
        });
        let tr = r.traffic.unwrap_or(RawTraffic {
            rate: None,
            size: None,
        });
        let mut events = Vec::new();
        for (i, e) in r.events.iter().enumerate() {
            let key = format!("events[{i}]");
            let action = Action::NAMES
                .iter()
                .find(|(n, _)| *n == e.action)
                .map(|(_, a)| *a)
                .ok_or_else(|| {
                    format!(
                        "{key}.do: `{}` is not an action; give one of {}",
                        e.action,
                        Action::NAMES.map(|(n, _)| n).join(", ")
                    )
                })?;
            events.push(Event {
                at: duration(&format!("{key}.at"), &e.at)?,
                action,
            });
        }
        events.sort_by_key(|e| e.at);
        let s = Scenario {
            name: r.name,
            description: r.description,
            paths,
            v6,
            clients: check("clients.count", cl.count.unwrap_or(1), 1, 20_000)?,
            rotate: duration("clients.rotate", cl.rotate.as_deref().unwrap_or("0"))?,
            dpd: duration("clients.dpd", cl.dpd.as_deref().unwrap_or("30s"))?,
            rate: check("traffic.rate", tr.rate.unwrap_or(1000), 1, 100_000)?,
            size: check("traffic.size", tr.size.unwrap_or(256), 64, 9000)?,
            reps: check("reps", r.reps.unwrap_or(20), 1, 100_000)?,
            rep: duration("rep", r.rep.as_deref().unwrap_or("1s"))?,
            warmup: duration("warmup", r.warmup.as_deref().unwrap_or("2s"))?,
            events,
        };
        if s.name.is_empty()
            || !s
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-')
        {
            return Err(format!(
                "name: `{}`: give letters, digits and dashes (it names files and namespaces)",
                s.name
            ));
        }
        if s.rep < Duration::from_millis(100) {
            return Err("rep: give at least 100ms".into());
        }
        if let Some(e) = s.events.iter().find(|e| e.at >= s.rep) {
            return Err(format!(
                "events: `{}` at {:?} is not inside one repetition (rep: {:?}); make rep longer",
                e.action.name(),
                e.at,
                s.rep
            ));
        }
        if s.events.iter().any(|e| e.action.triggers()) && s.paths < 2 {
            return Err("topology.paths: a handover needs a second path; give 2 or more".into());
        }
        if s.events.is_empty() && s.rotate.is_zero() {
            return Err(
                "events: nothing happens; add events or clients.rotate (a rotation lifetime)"
                    .into(),
            );
        }
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scenario_parses_with_defaults_and_bad_ones_name_the_key() {
        let s = Scenario::parse(
            "name: bbm\nevents:\n  - { at: 0ms, do: remove-address }\n  - { at: 700ms, do: restore }\n",
        )
        .unwrap();
        assert_eq!((s.paths, s.clients, s.rate, s.reps), (2, 1, 1000, 20));
        assert_eq!(s.events[1].action, Action::Restore);
        assert_eq!(s.v6, 0);
        let s = Scenario::parse(
            "name: v\ntopology: { paths: 3, v6: [1, 2] }\nevents: [{ at: 0ms, do: move }]\n",
        )
        .unwrap();
        assert_eq!(s.v6, 0b110);
        for (text, key) in [
            ("name: x\nfoo: 1\nevents: [{ at: 0ms, do: move }]\n", "foo"),
            ("name: x\nevents: [{ at: 0ms, do: jump }]\n", "events[0].do"),
            ("name: x\nevents: [{ at: 2s, do: move }]\n", "rep"),
            ("name: x\nevents: [{ at: 5x, do: move }]\n", "events[0].at"),
            (
                "name: x\ntraffic: { rate: 0 }\nevents: [{ at: 0ms, do: move }]\n",
                "traffic.rate",
            ),
            (
                "name: x\ntopology: { paths: 1 }\nevents: [{ at: 0ms, do: move }]\n",
                "topology.paths",
            ),
            (
                "name: x\ndut: strongswan\nevents: [{ at: 0ms, do: move }]\n",
                "dut",
            ),
            ("name: x y\nevents: [{ at: 0ms, do: move }]\n", "name"),
            ("name: x\n", "events"),
            (
                "name: x\ntopology: { paths: 2, v6: [2] }\nevents: [{ at: 0ms, do: move }]\n",
                "topology.v6",
            ),
        ] {
            let e = Scenario::parse(text).unwrap_err();
            assert!(e.contains(key), "{text}: {e}");
        }
    }

    #[test]
    fn the_shipped_scenarios_parse() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("perf/scenarios");
        let mut n = 0;
        for f in std::fs::read_dir(&dir).unwrap() {
            let p = f.unwrap().path();
            if p.extension().is_some_and(|e| e == "yaml") {
                Scenario::load(&p).unwrap_or_else(|e| panic!("{e}"));
                n += 1;
            }
        }
        assert!(n >= 4, "{n} scenarios in {}", dir.display());
    }
}
