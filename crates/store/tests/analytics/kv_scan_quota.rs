//! The `kv_entries` scan under (h182's stress hunt, adopted) concurrent writers on other handles of the file (other
//! connections, as other processes), with short real-clock TTLs expiring during the run: every
//! scan of a namespace with a quota stays within it, and no busy/locked error leaks out.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use store::analytics::{Analytics, Value};
use store::{Kv, Quota, ScopedConfig, Store, StoreConfig};

use crate::common::{Rng, patient};

const Q: Quota = Quota {
    max_keys: 25,
    max_groups: 4,
    max_bytes: 600,
};

fn int(v: &Value) -> i64 {
    match v {
        Value::Int(i) => *i,
        Value::Null => 0,
        other => panic!("not an integer: {other:?}"),
    }
}

#[test]
fn kv_entries_scans_never_see_more_than_the_quota_while_entries_expire() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let config = || patient(StoreConfig::file(&path).with_purge_interval(Duration::from_millis(20)));
    let reader = Store::open_with(config()).unwrap();
    let writers: Vec<Store> = (0..2).map(|_| Store::open_with(config()).unwrap()).collect();
    let db = Analytics::in_memory().unwrap();
    db.attach_kv(&reader).unwrap();
    let stop = AtomicBool::new(false);
    let scans = AtomicU64::new(0);
    let mut violations = Vec::new();
    let mut errors = Vec::new();
    std::thread::scope(|s| {
        for (i, w) in writers.iter().enumerate() {
            for t in 0..2u64 {
                let (stop, w) = (&stop, w);
                s.spawn(move || {
                    let ns = w.scoped_with(ScopedConfig::new("hunt").with_quota(Q)).unwrap();
                    let mut rng = Rng::new(i as u64 * 10 + t + 1);
                    while !stop.load(Ordering::Relaxed) {
                        let (g, k) = (format!("g{}", rng.below(6)), format!("k{}", rng.below(20)));
                        let v = "v".repeat(1 + rng.below(40) as usize);
                        let r = match rng.below(4) {
                            0 | 1 => ns
                                .set_with_ttl(&g, &k, &v, Duration::from_millis(5 + rng.below(46)))
                                .map(drop),
                            2 => ns.set(&g, &k, &v).map(drop),
                            _ => ns.delete(&g, &k).map(drop),
                        };
                        if let Err(e) = r {
                            assert!(e.is_quota_exceeded(), "write failed: {e}");
                        }
                    }
                });
            }
        }
        let started = std::time::Instant::now();
        while started.elapsed() < Duration::from_millis(1_500) {
            let row = db.query_row(
                "SELECT count(*), count(DISTINCT group_name), sum(strlen(entry_key) + strlen(entry_value))
                 FROM kv_entries WHERE starts_with(group_name, 'hunt:')",
                &[],
            );
            match row {
                Ok(Some(row)) => {
                    scans.fetch_add(1, Ordering::Relaxed);
                    let (keys, groups, bytes) =
                        (int(&row.values[0]), int(&row.values[1]), int(&row.values[2]));
                    if keys as u64 > Q.max_keys || groups as u64 > Q.max_groups || bytes as u64 > Q.max_bytes
                    {
                        violations.push((keys, groups, bytes));
                    }
                }
                Ok(None) => errors.push("no row".to_string()),
                Err(e) => errors.push(format!("{e} (busy {})", e.is_busy())),
            }
        }
        stop.store(true, Ordering::Relaxed);
    });
    eprintln!(
        "scans {} violations {violations:?} errors {errors:?}",
        scans.load(Ordering::Relaxed)
    );
    assert!(
        violations.is_empty() && errors.is_empty(),
        "violations {violations:?} errors {errors:?}"
    );
}
