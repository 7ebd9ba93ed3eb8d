//! SPEC §6 `max_groups`: the 4th group under `max_groups` 3 fails while new keys in existing
//! groups pass; an all-expired group is not counted; limits are checked in the order keys, groups,
//! bytes, so with both set the group limit trips first when the key limit is not yet reached.

use std::time::Duration;

use store::{Kv, QuotaLimit};

use crate::common::file_store;
use crate::support::{NS_A, expect_quota, quota, scoped, usage};

#[test]
fn fourth_group_exceeds_max_groups_3_and_keys_in_existing_groups_pass() {
    let f = file_store();
    let ns = scoped(&f.store, NS_A, quota(0, 3, 0));
    ns.set("a", "k", "v").unwrap();
    ns.set("b", "k", "v").unwrap();
    ns.set_key("k", "v").unwrap();
    let rows = f.raw_rows();
    let err = ns.set("d", "k", "v").unwrap_err();
    assert!(
        err.to_string().contains("would hold 4 groups, over max_groups 3"),
        "{err}"
    );
    expect_quota(Err::<(), _>(err), NS_A, QuotaLimit::Groups, 3, 4);
    expect_quota(ns.set_json("d", "k", &1), NS_A, QuotaLimit::Groups, 3, 4);
    expect_quota(ns.increment("d", "k", 1), NS_A, QuotaLimit::Groups, 3, 4);
    expect_quota(
        ns.set_if_version("d", "k", "v", None),
        NS_A,
        QuotaLimit::Groups,
        3,
        4,
    );
    expect_quota(
        ns.set_with_ttl("d", "k", "v", Duration::from_secs(1)),
        NS_A,
        QuotaLimit::Groups,
        3,
        4,
    );
    assert_eq!(f.raw_rows(), rows, "nothing written");
    assert!(!ns.group_exists("d").unwrap());

    for i in 0..20 {
        ns.set("a", &format!("more{i}"), "v").unwrap();
        ns.set_key(&format!("more{i}"), "v").unwrap();
    }
    assert_eq!(ns.usage().unwrap().groups, 3);
    assert_eq!(ns.groups("").unwrap(), ["a", "b", "default"]);
}

#[test]
fn deleting_the_last_key_of_a_group_frees_a_group_slot() {
    let f = file_store();
    let ns = scoped(&f.store, NS_A, quota(0, 2, 0));
    ns.set("a", "k1", "v").unwrap();
    ns.set("a", "k2", "v").unwrap();
    ns.set("b", "k", "v").unwrap();
    expect_quota(ns.set("c", "k", "v"), NS_A, QuotaLimit::Groups, 2, 3);
    ns.delete("a", "k1").unwrap();
    expect_quota(ns.set("c", "k", "v"), NS_A, QuotaLimit::Groups, 2, 3);
    ns.delete("a", "k2").unwrap();
    ns.set("c", "k", "v").unwrap();
    ns.delete_group("b").unwrap();
    ns.set("d", "k", "v").unwrap();
    assert_eq!(ns.groups("").unwrap(), ["c", "d"]);
}

#[test]
fn an_all_expired_group_is_not_counted() {
    let f = file_store();
    let ns = scoped(&f.store, NS_A, quota(0, 3, 0));
    ns.set("a", "k", "v").unwrap();
    ns.set("b", "k", "v").unwrap();
    ns.set_with_ttl("sessions", "s1", "v", Duration::from_secs(5))
        .unwrap();
    ns.set_with_ttl("sessions", "s2", "v", Duration::from_secs(10))
        .unwrap();
    expect_quota(ns.set("d", "k", "v"), NS_A, QuotaLimit::Groups, 3, 4);

    // One of two entries expired: the group is still live.
    f.clock.advance(Duration::from_secs(5));
    assert_eq!(ns.usage().unwrap(), usage(3, 3, 7));
    expect_quota(ns.set("d", "k", "v"), NS_A, QuotaLimit::Groups, 3, 4);

    // All expired (nothing purged): the group no longer counts.
    f.clock.advance(Duration::from_secs(5));
    assert_eq!(f.raw_rows(), 4);
    assert_eq!(ns.usage().unwrap(), usage(2, 2, 4));
    ns.set("d", "k", "v").unwrap();
    assert_eq!(ns.groups("").unwrap(), ["a", "b", "d"]);
    // Writing into the expired group makes it count again, as a new group.
    expect_quota(ns.set("sessions", "s3", "v"), NS_A, QuotaLimit::Groups, 3, 4);
    ns.delete_group("d").unwrap();
    ns.set("sessions", "s3", "v").unwrap();
    assert_eq!(ns.usage().unwrap(), usage(3, 3, 7));
}

#[test]
fn with_both_limits_the_group_limit_trips_first_before_the_key_limit_is_reached() {
    let f = file_store();
    let ns = scoped(&f.store, NS_A, quota(10, 2, 0));
    ns.set("a", "k", "v").unwrap();
    ns.set("b", "k", "v").unwrap();
    assert_eq!(ns.usage().unwrap().keys, 2, "far below max_keys");
    expect_quota(ns.set("c", "k", "v"), NS_A, QuotaLimit::Groups, 2, 3);
    // Keys in the existing groups fill up to max_keys, then the key limit trips.
    for i in 0..8 {
        ns.set(if i % 2 == 0 { "a" } else { "b" }, &format!("x{i}"), "v")
            .unwrap();
    }
    expect_quota(ns.set("a", "y", "v"), NS_A, QuotaLimit::Keys, 10, 11);
}

#[test]
fn when_several_limits_would_be_exceeded_the_first_in_order_keys_groups_bytes_wins() {
    let f = file_store();
    // Keys and groups both exceeded: Keys.
    let ns = scoped(&f.store, NS_A, quota(2, 2, 4));
    ns.set("a", "k", "v").unwrap();
    ns.set("b", "k", "v").unwrap();
    expect_quota(ns.set("c", "k", "vvvvv"), NS_A, QuotaLimit::Keys, 2, 3);
    // Groups and bytes both exceeded (keys fine): Groups.
    let ns = scoped(&f.store, NS_A, quota(3, 2, 4));
    expect_quota(ns.set("c", "k", "vvvvv"), NS_A, QuotaLimit::Groups, 2, 3);
    // Only bytes exceeded.
    expect_quota(ns.set("a", "k2", "v"), NS_A, QuotaLimit::Bytes, 4, 7);
}

#[test]
fn group_count_is_per_namespace_and_ignores_raw_groups_outside_it() {
    let f = file_store();
    let ns = scoped(&f.store, NS_A, quota(0, 1, 0));
    for g in [
        "config",
        "tenant-a",
        "tenant-ab:x",
        "tenant-b:config",
        "Tenant-A:x",
    ] {
        f.store.set(g, "k", "v").unwrap();
    }
    ns.set("config", "k", "v").unwrap();
    expect_quota(ns.set("other", "k", "v"), NS_A, QuotaLimit::Groups, 1, 2);
    // A raw write into a new group of the namespace is unchecked but counts.
    f.store.set("tenant-a:raw", "k", "v").unwrap();
    assert_eq!(ns.usage().unwrap().groups, 2);
    expect_quota(ns.set("other", "k", "v"), NS_A, QuotaLimit::Groups, 1, 3);
    ns.set("raw", "k2", "v").unwrap();
}
