//! SPEC §2: input validation (names, prefixes, values, settings) and exact value round trips.

use std::time::Duration;

use store::{ErrorKind, Kv, MAX_NAME_BYTES, MAX_VALUE_BYTES, Store, StoreConfig};

use crate::common::{both, expect_invalid, file_store_with, memory_store_with};

#[test]
fn key_of_4096_bytes_is_accepted_and_4097_bytes_rejected() {
    for (kind, store, _, _dir) in both() {
        let ok = "k".repeat(MAX_NAME_BYTES);
        store.set("g", &ok, "v").unwrap();
        assert_eq!(store.get("g", &ok).unwrap(), "v", "{kind}");
        assert_eq!(store.get_all("g").unwrap().keys().next().unwrap(), &ok, "{kind}");

        let too_long = "k".repeat(MAX_NAME_BYTES + 1);
        expect_invalid(store.set("g", &too_long, "v"), "key");
        expect_invalid(store.get("g", &too_long), "key");
        assert_eq!(
            store.count("g").unwrap(),
            1,
            "{kind}: the rejected key was written"
        );
    }
}

#[test]
fn name_limits_count_bytes_not_characters() {
    let (store, _) = memory_store_with(|c| c);
    let ok = "é".repeat(MAX_NAME_BYTES / 2); // 4096 bytes, 2048 chars
    store.set(&ok, &ok, "v").unwrap();
    assert_eq!(store.get(&ok, &ok).unwrap(), "v");
    let too_long = format!("{ok}a"); // 4097 bytes
    expect_invalid(store.set("g", &too_long, "v"), "key");
    expect_invalid(store.set(&too_long, "k", "v"), "group");
}

#[test]
fn key_or_group_containing_nul_is_rejected() {
    for (_, store, _, _dir) in both() {
        expect_invalid(store.set("g", "a\0b", "v"), "key");
        expect_invalid(store.set("g", "\0", "v"), "key");
        expect_invalid(store.set("g\0", "k", "v"), "group");
        expect_invalid(store.get("g", "a\0b"), "key");
        expect_invalid(store.count("g\0"), "group");
        assert_eq!(store.count_all("").unwrap(), 0);
    }
}

#[test]
fn over_long_group_is_rejected_and_4096_byte_group_accepted() {
    for (_, store, _, _dir) in both() {
        let ok = "g".repeat(MAX_NAME_BYTES);
        store.set(&ok, "k", "v").unwrap();
        assert_eq!(store.groups("").unwrap(), std::slice::from_ref(&ok));
        let too_long = "g".repeat(MAX_NAME_BYTES + 1);
        expect_invalid(store.set(&too_long, "k", "v"), "group");
        expect_invalid(store.count(&too_long), "group");
        expect_invalid(store.delete_group(&too_long), "group");
        assert_eq!(store.count_all("").unwrap(), 1);
    }
}

#[test]
fn empty_group_is_invalid_input_naming_group_for_every_operation() {
    let (store, _) = memory_store_with(|c| c);
    expect_invalid(store.get("", "k"), "group");
    expect_invalid(store.get_with_version("", "k"), "group");
    expect_invalid(store.get_json::<i32>("", "k"), "group");
    expect_invalid(store.exists("", "k"), "group");
    expect_invalid(store.group_exists(""), "group");
    expect_invalid(store.set("", "k", "v"), "group");
    expect_invalid(store.set_with_ttl("", "k", "v", Duration::from_secs(1)), "group");
    expect_invalid(store.set_json("", "k", &1), "group");
    expect_invalid(store.set_if_version("", "k", "v", None), "group");
    expect_invalid(store.increment("", "k", 1), "group");
    expect_invalid(store.delete("", "k"), "group");
    expect_invalid(store.delete_group(""), "group");
    expect_invalid(store.count(""), "group");
    expect_invalid(store.get_all(""), "group");
    expect_invalid(store.get_page("", 0, 10), "group");
    expect_invalid(store.render("x", ""), "group");
    expect_invalid(store.get_split("", "k", ","), "group");
    expect_invalid(store.get_fields("", "k"), "group");
    let mut it = store.iter("");
    expect_invalid(it.next().expect("one error"), "group");
    assert!(
        it.next().is_none(),
        "the iterator yields its error once, then ends"
    );
    assert_eq!(store.count_all("").unwrap(), 0, "nothing was written");
}

#[test]
fn empty_key_is_invalid_input_naming_key_for_every_operation() {
    let (store, _) = memory_store_with(|c| c);
    expect_invalid(store.get("g", ""), "key");
    expect_invalid(store.get_with_version("g", ""), "key");
    expect_invalid(store.get_json::<i32>("g", ""), "key");
    expect_invalid(store.exists("g", ""), "key");
    expect_invalid(store.set("g", "", "v"), "key");
    expect_invalid(store.set_with_ttl("g", "", "v", Duration::from_secs(1)), "key");
    expect_invalid(store.set_json("g", "", &1), "key");
    expect_invalid(store.set_if_version("g", "", "v", None), "key");
    expect_invalid(store.increment("g", "", 1), "key");
    expect_invalid(store.delete("g", ""), "key");
    expect_invalid(store.get_split("g", "", ","), "key");
    expect_invalid(store.get_fields("g", ""), "key");
    assert_eq!(store.count_all("").unwrap(), 0, "nothing was written");
}

#[test]
fn invalid_input_names_the_operation() {
    let (store, _) = memory_store_with(|c| c);
    assert_eq!(store.set("g", "", "v").unwrap_err().op(), "Store::set");
    assert_eq!(store.get("", "k").unwrap_err().op(), "Store::get");
    assert_eq!(
        store.delete_prefix("a\0").unwrap_err().op(),
        "Store::delete_prefix"
    );
    let msg = store.set("g", "", "v").unwrap_err().to_string();
    assert!(msg.starts_with("Store::set: invalid key"), "{msg}");
}

#[test]
fn prefix_may_be_empty_but_not_over_long_or_contain_nul() {
    for (_, store, _, _dir) in both() {
        store.set("g", "k", "v").unwrap();
        assert_eq!(store.count_all("").unwrap(), 1);
        assert_eq!(store.groups("").unwrap(), ["g"]);
        let long = "p".repeat(MAX_NAME_BYTES + 1);
        expect_invalid(store.count_all(&long), "prefix");
        expect_invalid(store.groups(&long), "prefix");
        expect_invalid(store.delete_prefix(&long), "prefix");
        expect_invalid(store.count_all("a\0"), "prefix");
        expect_invalid(store.groups("a\0"), "prefix");
        expect_invalid(store.delete_prefix("a\0"), "prefix");
        let mut it = store.groups_iter("a\0");
        expect_invalid(it.next().expect("one error"), "prefix");
        assert!(it.next().is_none());
        // A 4096-byte prefix is fine.
        assert_eq!(store.count_all(&"p".repeat(MAX_NAME_BYTES)).unwrap(), 0);
        assert_eq!(
            store.count("g").unwrap(),
            1,
            "rejected delete_prefix removed nothing"
        );
    }
}

/// The values SPEC §2 requires to round-trip exactly.
fn awkward_values() -> Vec<(&'static str, String)> {
    vec![
        ("empty", String::new()),
        ("padded spaces", "  padded  ".to_string()),
        ("newline and tab", "\n\t".to_string()),
        ("accents", "àéîõü ÀÉÎÕÜ ç ñ".to_string()),
        ("emoji", "😀🎉👩‍👩‍👧‍👦🏳️‍🌈".to_string()),
        ("CJK", "日本語 中文 한국어".to_string()),
        ("Arabic", "مرحبا بالعالم".to_string()),
        ("NUL", "a\0b\0".to_string()),
        ("SQL injection", "'; DROP TABLE entries; --".to_string()),
        ("backslash", "\\".to_string()),
        ("percent", "%".to_string()),
        ("underscore", "_".to_string()),
        ("quotes", "\"'`".to_string()),
        ("100k characters", "x".repeat(50_000) + &"é".repeat(50_000)),
    ]
}

#[test]
fn values_round_trip_exactly_through_every_read() {
    for (kind, store, _, _dir) in both() {
        let values = awkward_values();
        for (name, value) in &values {
            store.set("values", name, value).unwrap();
        }
        for (name, value) in &values {
            assert_eq!(
                &store.get("values", name).unwrap(),
                value,
                "{kind}: {name} via get"
            );
            assert_eq!(
                &store.get_with_version("values", name).unwrap().value,
                value,
                "{kind}: {name}"
            );
        }
        let all = store.get_all("values").unwrap();
        let page = store.get_page("values", 0, u64::MAX).unwrap();
        let iterated: Vec<_> = store.iter("values").collect::<Result<_, _>>().unwrap();
        assert_eq!(all.len(), values.len());
        assert_eq!(page, iterated);
        for (name, value) in &values {
            assert_eq!(&all[*name], value, "{kind}: {name} via get_all");
            let e = page.iter().find(|e| e.key == *name).unwrap();
            assert_eq!(&e.value, value, "{kind}: {name} via get_page");
        }
        assert!(
            store.group_exists("values").unwrap(),
            "the injection string dropped nothing"
        );
    }
}

#[test]
fn values_round_trip_across_reopen() {
    let f = file_store_with(|c| c);
    for (name, value) in awkward_values() {
        f.store.set("values", name, &value).unwrap();
    }
    let reopened = f.reopen();
    for (name, value) in awkward_values() {
        assert_eq!(reopened.get("values", name).unwrap(), value, "{name}");
    }
}

#[test]
fn awkward_groups_and_keys_round_trip_exactly() {
    for (kind, store, _, _dir) in both() {
        let names: Vec<String> = awkward_values()
            .into_iter()
            .map(|(_, v)| v)
            .filter(|v| !v.is_empty() && !v.contains('\0') && v.len() <= MAX_NAME_BYTES)
            .collect();
        for name in &names {
            store.set(name, name, name).unwrap();
        }
        for name in &names {
            assert_eq!(&store.get(name, name).unwrap(), name, "{kind}: {name:?}");
            assert_eq!(store.count(name).unwrap(), 1, "{kind}: {name:?}");
        }
        let mut expected = names.clone();
        expected.sort();
        assert_eq!(store.groups("").unwrap(), expected, "{kind}");
    }
}

#[test]
fn max_value_bytes_1024_rejects_1025_bytes_and_writes_nothing() {
    let f = file_store_with(|c| c.with_max_value_bytes(1024));
    let (m, _) = memory_store_with(|c| c.with_max_value_bytes(1024));
    for store in [&f.store, &m] {
        let ok = "v".repeat(1024);
        let v1 = store.set("g", "kept", &ok).unwrap();
        assert_eq!(store.get("g", "kept").unwrap(), ok);

        let big = "v".repeat(1025);
        expect_invalid(store.set("g", "new", &big), "value");
        expect_invalid(
            store.set_with_ttl("g", "new", &big, Duration::from_secs(60)),
            "value",
        );
        expect_invalid(store.set_if_version("g", "new", &big, None), "value");
        // 1023 characters JSON-encode to 1025 bytes (with the quotes).
        expect_invalid(store.set_json("g", "new", &"v".repeat(1023)), "value");
        assert!(!store.exists("g", "new").unwrap());

        // Overwriting an existing entry with a too-big value leaves it untouched.
        expect_invalid(store.set("g", "kept", &big), "value");
        expect_invalid(store.set_if_version("g", "kept", &big, Some(v1)), "value");
        let got = store.get_with_version("g", "kept").unwrap();
        assert_eq!((got.value, got.version), (ok, v1));
        assert_eq!(store.count_all("").unwrap(), 1);
    }
    assert_eq!(f.raw_rows(), 1, "no row was written to the file");
}

#[test]
fn multibyte_values_are_measured_in_bytes() {
    let (store, _) = memory_store_with(|c| c.with_max_value_bytes(1024));
    store.set("g", "ok", &"é".repeat(512)).unwrap(); // 1024 bytes
    expect_invalid(store.set("g", "big", &format!("{}a", "é".repeat(512))), "value");
}

#[test]
fn readers_65_is_invalid_input_and_64_is_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = StoreConfig::file(dir.path().join("a.db"));
    config.readers = 65;
    let err = Store::open_with(config).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    assert_eq!(err.field(), Some("readers"));
    assert_eq!(err.op(), "Store::open");
    assert!(
        !dir.path().join("a.db").exists(),
        "validation runs before any I/O"
    );

    let mut config = StoreConfig::memory();
    config.readers = 65;
    assert_eq!(Store::open_with(config).unwrap_err().field(), Some("readers"));

    let mut config = StoreConfig::file(dir.path().join("b.db")).with_purge_interval(Duration::ZERO);
    config.readers = 64;
    let store = Store::open_with(config).unwrap();
    store.set("g", "k", "v").unwrap();
    assert_eq!(store.get("g", "k").unwrap(), "v");
}

#[test]
fn out_of_range_settings_are_invalid_input() {
    let mut config = StoreConfig::memory();
    config.watch_capacity = 0;
    assert_eq!(
        Store::open_with(config).unwrap_err().field(),
        Some("watch_capacity")
    );

    let config = StoreConfig::memory().with_max_value_bytes(MAX_VALUE_BYTES + 1);
    assert_eq!(
        Store::open_with(config).unwrap_err().field(),
        Some("max_value_bytes")
    );

    let config = StoreConfig::memory().with_max_value_bytes(MAX_VALUE_BYTES);
    assert!(Store::open_with(config).is_ok());

    assert_eq!(
        Store::open_with(StoreConfig::file("")).unwrap_err().field(),
        Some("path")
    );
    let dir = tempfile::tempdir().unwrap();
    let nul = dir.path().join("a\0b.db");
    assert_eq!(
        Store::open_with(StoreConfig::file(&nul)).unwrap_err().field(),
        Some("path")
    );
    assert_eq!(Store::open(&nul).unwrap_err().kind(), ErrorKind::InvalidInput);
}

#[test]
fn any_ttl_duration_is_accepted_and_huge_ones_saturate() {
    for (kind, store, _, _dir) in both() {
        store.set_with_ttl("g", "max", "v", Duration::MAX).unwrap();
        store
            .set_with_ttl("g", "long", "v", Duration::from_secs(u64::MAX / 2))
            .unwrap();
        assert_eq!(store.get("g", "max").unwrap(), "v", "{kind}");
        assert_eq!(store.count("g").unwrap(), 2, "{kind}");
        assert_eq!(
            store.get_with_version("g", "max").unwrap().expires_at,
            Some(i64::MAX),
            "{kind}"
        );
    }
}

#[test]
fn u64_max_offsets_and_limits_are_clamped_not_errors() {
    for (_, store, _, _dir) in both() {
        for k in ["a", "b", "c"] {
            store.set("g", k, k).unwrap();
        }
        assert_eq!(store.get_page("g", 0, u64::MAX).unwrap().len(), 3);
        assert!(store.get_page("g", u64::MAX, u64::MAX).unwrap().is_empty());
        assert!(store.get_page("g", u64::MAX, 1).unwrap().is_empty());
        assert!(store.get_page("g", i64::MAX as u64 + 1, 1).unwrap().is_empty());
    }
}

#[test]
fn an_increment_whose_result_outgrows_max_value_bytes_is_invalid_input_and_writes_nothing() {
    let file = file_store_with(|c| c.with_max_value_bytes(2));
    let (memory, _clock) = memory_store_with(|c| c.with_max_value_bytes(2));
    for (kind, store) in [("file", &file.store), ("memory", &memory)] {
        store.set("g", "n", "99").unwrap();
        expect_invalid(store.increment("g", "n", 1), "value");
        assert_eq!(store.get("g", "n").unwrap(), "99", "{kind}");
        assert_eq!(store.increment("g", "n", -9).unwrap(), 90, "{kind}");
        expect_invalid(store.transaction(|tx| tx.increment("g", "m", -10)), "value");
        assert!(!store.exists("g", "m").unwrap(), "{kind}");
    }
}

#[test]
fn settings_beyond_what_the_engine_takes_are_refused_or_saturated_never_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    // SQLite takes at most i32::MAX milliseconds; rusqlite panicked beyond.
    for busy in [Duration::from_secs(30 * 86_400), Duration::MAX] {
        let store = Store::open_with(StoreConfig {
            busy_timeout: busy,
            ..StoreConfig::file(dir.path().join("busy.db"))
        })
        .unwrap();
        store.set("g", "k", "v").unwrap();
        store.close().unwrap();
    }
    // A subscription's buffer is allocated whole: a huge one aborted the process.
    for capacity in [store::MAX_WATCH_CAPACITY + 1, 1 << 40, usize::MAX - 1, usize::MAX] {
        expect_invalid(
            Store::open_with(StoreConfig {
                watch_capacity: capacity,
                ..StoreConfig::memory()
            }),
            "watch_capacity",
        );
        let store = Store::in_memory().unwrap();
        // `usize::MAX` is `WatchOptions::STORE_CAPACITY`: the store's configured capacity.
        if capacity != store::WatchOptions::STORE_CAPACITY {
            expect_invalid(
                store.watch_with("*", store::WatchOptions { capacity }),
                "capacity",
            );
        }
    }
    let store = Store::in_memory().unwrap();
    let sub = store
        .watch_with(
            "*",
            store::WatchOptions {
                capacity: store::MAX_WATCH_CAPACITY,
            },
        )
        .unwrap();
    store.set("g", "k", "v").unwrap();
    assert!(sub.try_recv().is_some());
}
