//! `summary.json` names every number: the figures the code keeps as tuples and arrays
//! (cheap to fill and index) are written as objects with named fields, through these
//! `serialize_with` functions.

use std::collections::BTreeMap;

use serde::{Serialize, Serializer};

/// `[p50, p90, p99, 100 %]` of the replicas Running, seconds.
pub fn running_curve<S: Serializer>(v: &[Option<f64>; 4], s: S) -> Result<S::Ok, S::Error> {
    #[derive(Serialize)]
    struct Curve {
        half_s: Option<f64>,
        p90_s: Option<f64>,
        p99_s: Option<f64>,
        all_s: Option<f64>,
    }
    Curve {
        half_s: v[0],
        p90_s: v[1],
        p99_s: v[2],
        all_s: v[3],
    }
    .serialize(s)
}

/// `[back-offs, at the cap]`.
pub fn backoffs<S: Serializer>(v: &[u64; 2], s: S) -> Result<S::Ok, S::Error> {
    #[derive(Serialize)]
    struct Backoffs {
        total: u64,
        at_cap: u64,
    }
    Backoffs {
        total: v[0],
        at_cap: v[1],
    }
    .serialize(s)
}

/// A client's `(requests, total throttle wait s, longest wait s)`, by client.
pub fn api_clients<S: Serializer>(
    v: &BTreeMap<String, (u64, f64, f64)>,
    s: S,
) -> Result<S::Ok, S::Error> {
    #[derive(Serialize)]
    struct Client {
        requests: u64,
        throttle_wait_s: f64,
        longest_wait_s: f64,
    }
    let m: BTreeMap<&str, Client> = v
        .iter()
        .map(|(k, (n, w, l))| {
            (
                k.as_str(),
                Client {
                    requests: *n,
                    throttle_wait_s: *w,
                    longest_wait_s: *l,
                },
            )
        })
        .collect();
    m.serialize(s)
}

/// The authorizer graph's `(events applied, longest queue)`.
pub fn authz_graph<S: Serializer>(v: &(u64, usize), s: S) -> Result<S::Ok, S::Error> {
    #[derive(Serialize)]
    struct Graph {
        events_applied: u64,
        longest_queue: usize,
    }
    Graph {
        events_applied: v.0,
        longest_queue: v.1,
    }
    .serialize(s)
}

/// `(events simulated, lines logged, bytes of events.jsonl)`.
pub fn events<S: Serializer>(v: &(u64, u64, u64), s: S) -> Result<S::Ok, S::Error> {
    #[derive(Serialize)]
    struct Events {
        simulated: u64,
        logged: u64,
        file_bytes: u64,
    }
    Events {
        simulated: v.0,
        logged: v.1,
        file_bytes: v.2,
    }
    .serialize(s)
}

/// `[p50, p99, max]` in microseconds, by method.
pub fn latency_us<S: Serializer>(v: &BTreeMap<String, [u64; 3]>, s: S) -> Result<S::Ok, S::Error> {
    #[derive(Serialize)]
    struct Latency {
        p50_us: u64,
        p99_us: u64,
        max_us: u64,
    }
    let m: BTreeMap<&str, Latency> = v
        .iter()
        .map(|(k, l)| {
            (
                k.as_str(),
                Latency {
                    p50_us: l[0],
                    p99_us: l[1],
                    max_us: l[2],
                },
            )
        })
        .collect();
    m.serialize(s)
}

/// `[p50, p99, max]` of file sizes, bytes.
pub fn size_bytes<S: Serializer>(v: &[u64; 3], s: S) -> Result<S::Ok, S::Error> {
    #[derive(Serialize)]
    struct Sizes {
        p50_bytes: u64,
        p99_bytes: u64,
        max_bytes: u64,
    }
    Sizes {
        p50_bytes: v[0],
        p99_bytes: v[1],
        max_bytes: v[2],
    }
    .serialize(s)
}

/// `[directories, files]`.
pub fn dirs_files<S: Serializer>(v: &[u64; 2], s: S) -> Result<S::Ok, S::Error> {
    #[derive(Serialize)]
    struct Entries {
        dirs: u64,
        files: u64,
    }
    Entries {
        dirs: v[0],
        files: v[1],
    }
    .serialize(s)
}

/// A CDF's `(seconds, fraction done)` points.
pub fn cdf<S: Serializer>(v: &[(f64, f64)], s: S) -> Result<S::Ok, S::Error> {
    #[derive(Serialize)]
    struct Point {
        s: f64,
        fraction: f64,
    }
    let points: Vec<Point> = v
        .iter()
        .map(|(t, q)| Point {
            s: *t,
            fraction: *q,
        })
        .collect();
    points.serialize(s)
}

#[cfg(test)]
mod tests {
    #[derive(serde::Serialize)]
    struct S {
        #[serde(serialize_with = "super::backoffs")]
        backoffs: [u64; 2],
        #[serde(serialize_with = "super::events")]
        events: (u64, u64, u64),
        #[serde(serialize_with = "super::cdf")]
        cdf: Vec<(f64, f64)>,
    }

    #[test]
    fn arrays_are_written_as_named_fields() {
        let v = serde_json::to_value(S {
            backoffs: [7, 2],
            events: (100, 40, 4000),
            cdf: vec![(1.5, 0.5)],
        })
        .unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "backoffs": {"total": 7, "at_cap": 2},
                "events": {"simulated": 100, "logged": 40, "file_bytes": 4000},
                "cdf": [{"s": 1.5, "fraction": 0.5}],
            })
        );
    }
}
