//! SPEC §6 `max_bytes`: usage is the UTF-8 bytes of live keys plus values (group names excluded);
//! a write fails when its growth would take usage over the limit, with `requested` = usage after
//! the write; exactly at the limit passes; shrinking always passes; every checked write is checked.

use std::time::Duration;

use store::{Kv, QuotaLimit};

use crate::common::file_store;
use crate::support::{NS_A, bytes_value, expect_quota, quota, scoped, usage};

#[test]
fn spec_scenario_key_plus_99_byte_value_fills_max_bytes_100() {
    let f = file_store();
    let ns = scoped(&f.store, NS_A, quota(0, 0, 100));
    ns.set("g", "k", &bytes_value(99)).unwrap();
    assert_eq!(ns.usage().unwrap(), usage(1, 1, 100));
    let err = ns.set("g", "x", "").unwrap_err();
    assert!(
        err.to_string()
            .contains("would hold 101 bytes, over max_bytes 100"),
        "{err}"
    );
    expect_quota(Err::<(), _>(err), NS_A, QuotaLimit::Bytes, 100, 101);
    expect_quota(ns.set("other", "x", ""), NS_A, QuotaLimit::Bytes, 100, 101);
    expect_quota(ns.set_key("xy", "z"), NS_A, QuotaLimit::Bytes, 100, 103);

    // Shrink, then regrow within the limit.
    ns.set("g", "k", &bytes_value(49)).unwrap();
    assert_eq!(ns.usage().unwrap().bytes, 50);
    ns.set("g", "k", &bytes_value(99)).unwrap();
    expect_quota(
        ns.set("g", "k", &bytes_value(100)),
        NS_A,
        QuotaLimit::Bytes,
        100,
        101,
    );
    assert_eq!(
        ns.get("g", "k").unwrap().len(),
        99,
        "the rejected value was not written"
    );

    // Raw writes count.
    ns.set("g", "k", &bytes_value(49)).unwrap();
    f.store.set("tenant-a:raw", "r", &bytes_value(40)).unwrap();
    assert_eq!(ns.usage().unwrap().bytes, 91);
    ns.set("g", "n", &bytes_value(8)).unwrap();
    expect_quota(ns.set("g", "m", ""), NS_A, QuotaLimit::Bytes, 100, 101);
}

#[test]
fn bytes_are_utf8_bytes_of_key_and_value_and_exclude_the_group() {
    let f = file_store();
    let ns = scoped(&f.store, NS_A, quota(0, 0, 0));
    let long_group = "g".repeat(4000);
    ns.set(&long_group, "k", "").unwrap();
    assert_eq!(ns.usage().unwrap(), usage(1, 1, 1));
    ns.set("g", "é", "日本").unwrap(); // 2 + 6
    ns.set("g", "crab", "🦀").unwrap(); // 4 + 4
    ns.set("g", "ar", "مرحبا").unwrap(); // 2 + 10
    assert_eq!(ns.usage().unwrap(), usage(4, 2, 1 + 8 + 8 + 12));
}

#[test]
fn multi_byte_characters_count_bytes_not_characters() {
    let f = file_store();
    let ns = scoped(&f.store, NS_A, quota(0, 0, 10));
    ns.set("g", "k", "éééé").unwrap(); // 1 + 8
    assert_eq!(ns.usage().unwrap().bytes, 9);
    // Six characters, eleven bytes.
    expect_quota(ns.set("g", "k", "ééééé"), NS_A, QuotaLimit::Bytes, 10, 11);
    ns.set("g", "k", "ééééa").unwrap(); // 1 + 9: exactly at the limit
    assert_eq!(ns.usage().unwrap().bytes, 10);
    expect_quota(ns.set("g", "k", "éééé🦀"), NS_A, QuotaLimit::Bytes, 10, 13);
    // A multi-byte key counts its bytes too.
    ns.delete("g", "k").unwrap();
    ns.set("g", "ключ", "").unwrap(); // 8
    ns.set("g", "é", "").unwrap(); // 2: exactly at the limit
    expect_quota(ns.set("g", "x", ""), NS_A, QuotaLimit::Bytes, 10, 11);
}

#[test]
fn growing_values_are_rejected_when_over_with_requested_as_usage_after_the_write() {
    let f = file_store();
    let ns = scoped(&f.store, NS_A, quota(0, 0, 50));
    ns.set("g", "a", &bytes_value(10)).unwrap(); // 11
    ns.set("h", "b", &bytes_value(20)).unwrap(); // 21
    assert_eq!(ns.usage().unwrap().bytes, 32);
    ns.set("g", "a", &bytes_value(28)).unwrap(); // 29: total exactly 50
    assert_eq!(ns.usage().unwrap().bytes, 50);
    expect_quota(
        ns.set("g", "a", &bytes_value(29)),
        NS_A,
        QuotaLimit::Bytes,
        50,
        51,
    );
    expect_quota(
        ns.set("g", "a", &bytes_value(40)),
        NS_A,
        QuotaLimit::Bytes,
        50,
        62,
    );
    expect_quota(ns.set("g", "c", ""), NS_A, QuotaLimit::Bytes, 50, 51);
    assert_eq!(ns.get("g", "a").unwrap().len(), 28);
    // Same size is no growth.
    ns.set("g", "a", &"y".repeat(28)).unwrap();
    assert_eq!(ns.usage().unwrap(), usage(2, 2, 50));
}

#[test]
fn shrinking_is_always_allowed_even_over_the_limit() {
    let f = file_store();
    let ns = scoped(&f.store, NS_A, quota(0, 0, 100));
    for k in ["a", "b", "c"] {
        f.store.set("tenant-a:g", k, &bytes_value(39)).unwrap(); // 40 each, raw: unchecked
    }
    assert_eq!(ns.usage().unwrap().bytes, 120);
    ns.set("g", "a", &bytes_value(30)).unwrap();
    assert_eq!(ns.usage().unwrap().bytes, 111);
    ns.set("g", "b", &"z".repeat(39)).unwrap(); // same size: no growth, allowed
    expect_quota(
        ns.set("g", "b", &bytes_value(40)),
        NS_A,
        QuotaLimit::Bytes,
        100,
        112,
    );
    ns.set_json("g", "c", &"").unwrap(); // `""`: 1 + 2
    ns.increment("g", "b", 0).unwrap_err(); // not an integer: InvalidInput, not quota
    assert_eq!(ns.usage().unwrap().bytes, 31 + 40 + 3);
    ns.set("g", "a", &bytes_value(56)).unwrap();
    assert_eq!(ns.usage().unwrap().bytes, 100);
}

#[test]
fn every_checked_write_is_checked_against_max_bytes() {
    let f = file_store();
    let ns = scoped(&f.store, NS_A, quota(0, 0, 3));
    ns.set("g", "n", "99").unwrap(); // 3
    expect_quota(ns.increment("g", "n", 1), NS_A, QuotaLimit::Bytes, 3, 4);
    assert_eq!(ns.get("g", "n").unwrap(), "99", "nothing written");
    assert_eq!(ns.increment("g", "n", -90).unwrap(), 9); // shrinks
    assert_eq!(ns.increment("g", "n", 90).unwrap(), 99); // regrows within the limit
    assert_eq!(ns.increment("g", "n", -1).unwrap(), 98); // same size
    expect_quota(ns.increment("g", "n", 1000), NS_A, QuotaLimit::Bytes, 3, 5);
    let v = ns.get_with_version("g", "n").unwrap().version;
    expect_quota(
        ns.set_if_version("g", "n", "1234", Some(v)),
        NS_A,
        QuotaLimit::Bytes,
        3,
        5,
    );
    expect_quota(ns.set_json("g", "n", &"ab"), NS_A, QuotaLimit::Bytes, 3, 5);
    expect_quota(
        ns.set_with_ttl("g", "n", "abcd", Duration::from_secs(9)),
        NS_A,
        QuotaLimit::Bytes,
        3,
        5,
    );
    expect_quota(ns.set("g", "n", "abcd"), NS_A, QuotaLimit::Bytes, 3, 5);
    expect_quota(ns.set_key("n", ""), NS_A, QuotaLimit::Bytes, 3, 4);
    assert_eq!(
        ns.get_with_version("g", "n").unwrap().version,
        v,
        "nothing written"
    );
    ns.set_if_version("g", "n", "ab", Some(v)).unwrap();
    ns.set_json("g", "n", &1).unwrap();
    ns.set_with_ttl("g", "n", "ab", Duration::from_secs(9)).unwrap();
    assert_eq!(ns.usage().unwrap().bytes, 3);
}

#[test]
fn rewriting_an_expired_key_counts_its_full_size_as_new() {
    let f = file_store();
    let ns = scoped(&f.store, NS_A, quota(0, 0, 10));
    ns.set_with_ttl("g", "a", &bytes_value(9), Duration::from_secs(1))
        .unwrap();
    f.clock.advance(Duration::from_secs(1));
    assert_eq!(ns.usage().unwrap().bytes, 0);
    ns.set("g", "b", "1").unwrap(); // 2
    // Were it an update of a same-sized value, the delta would be 0; it is new: 2 + 10.
    expect_quota(ns.set("g", "a", &bytes_value(9)), NS_A, QuotaLimit::Bytes, 10, 12);
    ns.set("g", "a", &bytes_value(7)).unwrap(); // 2 + 8 = 10
    assert_eq!(ns.usage().unwrap(), usage(2, 1, 10));
}

#[test]
fn max_bytes_zero_is_unlimited() {
    let f = file_store();
    let ns = scoped(&f.store, NS_A, quota(10, 10, 0));
    ns.set("g", "big", &bytes_value(1 << 20)).unwrap();
    ns.set("g", "big2", &bytes_value(1 << 20)).unwrap();
    assert_eq!(ns.usage().unwrap().bytes, 2 * (1 << 20) + 3 + 4);
}
