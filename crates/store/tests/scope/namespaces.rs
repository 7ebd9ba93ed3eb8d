//! SPEC §2 namespace rule (`^[A-Za-z0-9-]+$`, ≤ 64 bytes, else `InvalidInput{field:"namespace"}`)
//! for every way of making a scoped handle; case-sensitive, prefix-safe namespaces; quotas live on
//! the handle, not on disk; closed stores.

use store::{Kv, Quota, QuotaLimit, ScopedConfig, ScopedStore};

use crate::common::{expect_invalid, file_store};
use crate::support::{NS_A, expect_quota, quota, scoped};

const REJECTED: [&str; 10] = [
    "", "a:b", "a_b", "../x", "foo bar", "é", "foo.bar", "foo/bar", "tenant!", "@ns",
];

const ACCEPTED: [&str; 6] = ["abc", "ABC", "123", "a-b-c", "tenant-42", "A1-B2"];

fn rejected() -> Vec<String> {
    let mut all: Vec<String> = REJECTED.iter().map(|s| s.to_string()).collect();
    all.extend(
        [
            "foo:bar",
            "ns\0",
            "tab\there",
            "new\nline",
            "-ü-",
            "a,b",
            "*",
            "%",
            "a^b",
        ]
        .iter()
        .map(|s| s.to_string()),
    );
    all.push("a".repeat(65));
    all
}

#[test]
fn invalid_namespaces_are_rejected_with_field_namespace() {
    let f = file_store();
    for ns in rejected() {
        expect_invalid(f.store.scoped(&ns).map(drop), "namespace");
        expect_invalid(
            f.store
                .scoped_with(ScopedConfig::new(ns.clone()).with_quota(quota(1, 1, 1)))
                .map(drop),
            "namespace",
        );
    }
    f.store
        .transaction(|tx| {
            for ns in rejected() {
                expect_invalid(tx.scoped(&ns).map(drop), "namespace");
                expect_invalid(tx.scoped_with(ScopedConfig::new(ns)).map(drop), "namespace");
            }
            Ok(())
        })
        .unwrap();
    assert_eq!(f.raw_rows(), 0);
}

#[test]
fn valid_namespaces_are_accepted_and_store_under_ns_colon_group() {
    let f = file_store();
    let long = "a".repeat(64);
    let mut names: Vec<&str> = ACCEPTED.to_vec();
    names.push(&long);
    names.push("-");
    names.push("0");
    for ns in &names {
        let handle = f.store.scoped(ns).unwrap_or_else(|e| panic!("{ns:?}: {e}"));
        assert_eq!(handle.namespace(), *ns);
        handle.set("g", "k", ns).unwrap();
        assert_eq!(f.store.get(&format!("{ns}:g"), "k").unwrap(), *ns);
        assert_eq!(handle.usage().unwrap().keys, 1, "{ns:?}");
    }
    f.store
        .transaction(|tx| {
            for ns in &names {
                let view = tx.scoped(ns)?;
                assert_eq!(view.namespace(), *ns);
                assert_eq!(view.get("g", "k")?, *ns);
            }
            Ok(())
        })
        .unwrap();
}

#[test]
fn namespaces_are_case_sensitive() {
    let f = file_store();
    let lower = scoped(&f.store, "tenant-a", quota(1, 0, 0));
    let upper = scoped(&f.store, "Tenant-A", quota(1, 0, 0));
    lower.set("g", "k", "lower").unwrap();
    upper.set("g", "k", "upper").unwrap();
    assert_eq!(lower.get("g", "k").unwrap(), "lower");
    assert_eq!(upper.get("g", "k").unwrap(), "upper");
    assert_eq!(lower.count_all("").unwrap(), 1);
    expect_quota(lower.set("g", "k2", "v"), "tenant-a", QuotaLimit::Keys, 1, 2);
    assert_eq!(upper.delete_prefix("").unwrap(), 1);
    assert_eq!(lower.get("g", "k").unwrap(), "lower");
}

#[test]
fn a_namespace_that_prefixes_another_never_sees_it() {
    let f = file_store();
    let short = scoped(&f.store, "tenant", quota(2, 0, 0));
    let longer = f.store.scoped("tenant-a").unwrap();
    let longest = f.store.scoped("tenant-a-b").unwrap();
    longer.set("g", "k", "v").unwrap();
    longer.set("h", "k", "v").unwrap();
    longest.set("g", "k", "v").unwrap();
    f.store.set("tenant", "k", "v").unwrap();
    assert_eq!(short.usage().unwrap().keys, 0);
    assert!(short.groups("").unwrap().is_empty());
    short.set("g", "k", "v").unwrap();
    short.set("g", "k2", "v").unwrap();
    assert_eq!(short.count_all("").unwrap(), 2);
    assert_eq!(short.delete_prefix("").unwrap(), 2);
    assert_eq!(longer.count_all("").unwrap(), 2);
    assert_eq!(longest.count_all("").unwrap(), 1);
    assert_eq!(longer.usage().unwrap().keys, 2);
    assert_eq!(longest.usage().unwrap().keys, 1);
}

#[test]
fn config_quota_and_namespace_accessors() {
    let f = file_store();
    let q = Quota {
        max_keys: 7,
        max_groups: 3,
        max_bytes: 1024,
    };
    let config = ScopedConfig::new("app").with_quota(q);
    assert_eq!((config.namespace.as_str(), config.quota), ("app", q));
    assert!(ScopedConfig::new("app").quota.is_unlimited());
    assert!(Quota::default().is_unlimited());
    assert!(!quota(0, 0, 1).is_unlimited());
    let ns = f.store.scoped_with(config).unwrap();
    assert_eq!(ns.namespace(), "app");
    assert_eq!(ns.quota(), q);
    assert!(f.store.scoped("app").unwrap().quota().is_unlimited());
    assert!(!ns.store().is_closed());
    assert_eq!(store::DEFAULT_GROUP, "default");
}

#[test]
fn quotas_live_on_the_handle_not_on_disk() {
    let f = file_store();
    let limited = scoped(&f.store, NS_A, quota(1, 0, 0));
    let unlimited = f.store.scoped(NS_A).unwrap();
    limited.set("g", "a", "v").unwrap();
    expect_quota(limited.set("g", "b", "v"), NS_A, QuotaLimit::Keys, 1, 2);
    unlimited.set("g", "b", "v").unwrap();
    // Another handle on the same namespace with a different quota.
    let roomier = scoped(&f.store, NS_A, quota(3, 0, 0));
    roomier.set("g", "c", "v").unwrap();
    expect_quota(roomier.set("g", "d", "v"), NS_A, QuotaLimit::Keys, 3, 4);
    // Clones share the quota.
    let clone = limited.clone();
    expect_quota(clone.set("g", "d", "v"), NS_A, QuotaLimit::Keys, 1, 4);
    drop(limited);
    drop(clone);
    drop(roomier);
    drop(unlimited);

    // Reopened: no quota was persisted.
    let reopened = f.reopen();
    let again = reopened.scoped(NS_A).unwrap();
    assert!(again.quota().is_unlimited());
    again.set("g", "e", "v").unwrap();
    assert_eq!(again.usage().unwrap().keys, 4);
}

#[test]
fn scoped_handles_are_cheap_send_sync_clones() {
    fn assert_send_sync_clone<T: Send + Sync + Clone>() {}
    assert_send_sync_clone::<ScopedStore>();
    let f = file_store();
    let ns = f.store.scoped(NS_A).unwrap();
    let clone = ns.clone();
    std::thread::spawn(move || clone.set("g", "k", "v").map(drop))
        .join()
        .unwrap()
        .unwrap();
    assert_eq!(ns.get("g", "k").unwrap(), "v");
}

#[test]
fn scoped_calls_after_close_return_closed() {
    let f = file_store();
    let ns = scoped(&f.store, NS_A, quota(5, 5, 5));
    ns.set("g", "k", "v").unwrap();
    f.store.close().unwrap();
    assert!(ns.usage().unwrap_err().is_closed());
    assert!(ns.set("g", "k2", "v").unwrap_err().is_closed());
    assert!(ns.get("g", "k").unwrap_err().is_closed());
    assert!(ns.delete_prefix("").unwrap_err().is_closed());
    assert!(ns.watch("*").unwrap_err().is_closed());
    assert!(ns.on_change(|_| {}).unwrap_err().is_closed());
    assert!(ns.transaction(|_| Ok(())).unwrap_err().is_closed());
    // A view made after close (no I/O needed to make it) reports Closed when used.
    if let Ok(late) = f.store.scoped(NS_A) {
        assert!(late.count_all("").unwrap_err().is_closed());
    }
}

/// The group limit (4096 bytes) applies to the stored name `ns:group`: a local group fits if the
/// prefix still fits with it, and a longer one is refused instead of being stored under a name
/// the unscoped store would then refuse to read.
#[test]
fn a_scoped_group_must_fit_the_group_limit_with_its_prefix() {
    let f = file_store();
    let ns = f.store.scoped("tenant").unwrap();
    let longest = "g".repeat(4096 - "tenant:".len());
    ns.set(&longest, "k", "v").unwrap();
    let stored = f.store.groups("").unwrap();
    assert_eq!(stored, [format!("tenant:{longest}")]);
    assert_eq!(f.store.count(&stored[0]).unwrap(), 1);
    assert_eq!(ns.groups("").unwrap(), std::slice::from_ref(&longest));

    let too_long = format!("{longest}g");
    expect_invalid(ns.set(&too_long, "k", "v"), "group");
    expect_invalid(
        ns.set_with_ttl(&too_long, "k", "v", std::time::Duration::from_secs(60)),
        "group",
    );
    expect_invalid(ns.set_if_version(&too_long, "k", "v", None), "group");
    expect_invalid(ns.increment(&too_long, "k", 1), "group");
    // Reads and deletes still name such a group (a file written before this rule may hold one).
    assert!(ns.get(&too_long, "k").unwrap_err().is_not_found());
    assert_eq!(ns.count(&too_long).unwrap(), 0);
    let err = ns.set(&"g".repeat(4096), "k", "v").unwrap_err();
    assert!(err.to_string().contains("4089"), "says how long it may be: {err}");
    assert_eq!(f.store.count_all("").unwrap(), 1);
}
