//! SPEC §3.5: the `Kv` operations — upsert, lookups, deletes, counts, pages, prefixes,
//! iterators and JSON.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use store::{Entry, Error, ErrorKind, Kv};

use crate::common::{both, expect_not_found, file_store};

#[test]
fn upsert_replaces_the_value_and_keeps_count_one() {
    for (kind, store, _, _dir) in both() {
        store.set("g", "k", "one").unwrap();
        store.set("g", "k", "two").unwrap();
        store.set("g", "k", "three").unwrap();
        assert_eq!(store.count("g").unwrap(), 1, "{kind}");
        assert_eq!(store.get("g", "k").unwrap(), "three", "{kind}");
        assert_eq!(store.count_all("").unwrap(), 1, "{kind}");
    }
}

#[test]
fn missing_key_or_group_is_not_found_naming_both() {
    for (kind, store, _, _dir) in both() {
        store.set("config", "present", "v").unwrap();
        expect_not_found(store.get("config", "missing"), "config", "missing");
        expect_not_found(store.get("nogroup", "present"), "nogroup", "present");
        expect_not_found(store.get_with_version("config", "missing"), "config", "missing");
        expect_not_found(store.get_json::<i32>("config", "missing"), "config", "missing");
        expect_not_found(store.get_split("config", "missing", ","), "config", "missing");
        expect_not_found(store.get_fields("config", "missing"), "config", "missing");

        let err = store.get("config", "missing").unwrap_err();
        assert!(err.is_not_found(), "{kind}");
        assert_eq!(err.kind(), ErrorKind::NotFound);
        assert_eq!(err.kind().as_str(), "not_found");
        assert_eq!(err.op(), "Store::get");
        let msg = err.to_string();
        assert!(msg.starts_with("Store::get: "), "{msg}");
        assert!(msg.contains("\"config\"") && msg.contains("\"missing\""), "{msg}");
    }
}

#[test]
fn five_hundred_sets_give_count_500() {
    for (kind, store, _, _dir) in both() {
        for i in 0..500 {
            store.set("bulk", &format!("key-{i}"), &i.to_string()).unwrap();
        }
        assert_eq!(store.count("bulk").unwrap(), 500, "{kind}");
        assert_eq!(store.count_all("").unwrap(), 500, "{kind}");
        assert_eq!(store.get_all("bulk").unwrap().len(), 500, "{kind}");
        assert_eq!(store.get("bulk", "key-499").unwrap(), "499");
    }
}

#[test]
fn same_key_in_two_groups_is_independent_including_delete() {
    for (kind, store, _, _dir) in both() {
        store.set("a", "k", "in-a").unwrap();
        store.set("b", "k", "in-b").unwrap();
        assert_eq!(store.get("a", "k").unwrap(), "in-a", "{kind}");
        assert_eq!(store.get("b", "k").unwrap(), "in-b", "{kind}");
        store.set("a", "k", "in-a-2").unwrap();
        assert_eq!(store.get("b", "k").unwrap(), "in-b", "{kind}");
        assert!(store.delete("a", "k").unwrap());
        assert!(!store.exists("a", "k").unwrap());
        assert_eq!(store.get("b", "k").unwrap(), "in-b", "{kind}");
        assert_eq!(store.delete_group("b").unwrap(), 1);
        assert!(!store.exists("b", "k").unwrap());
    }
}

#[test]
fn delete_returns_true_then_false() {
    for (kind, store, _, _dir) in both() {
        store.set("g", "k", "v").unwrap();
        store.set("g", "other", "v").unwrap();
        assert!(store.delete("g", "k").unwrap(), "{kind}");
        assert!(!store.delete("g", "k").unwrap(), "{kind}");
        assert!(!store.delete("never", "k").unwrap(), "{kind}");
        expect_not_found(store.get("g", "k"), "g", "k");
        assert_eq!(store.count("g").unwrap(), 1);
    }
}

#[test]
fn delete_group_returns_the_live_count_and_touches_only_that_group() {
    for (kind, store, clock, _dir) in both() {
        store.set("g", "a", "1").unwrap();
        store.set("g", "b", "2").unwrap();
        store.set_with_ttl("g", "c", "3", Duration::from_secs(1)).unwrap();
        store.set("g2", "a", "1").unwrap();
        store.set("g-longer", "a", "1").unwrap();
        clock.advance(Duration::from_secs(1));
        assert_eq!(
            store.delete_group("g").unwrap(),
            2,
            "{kind}: expired rows are not counted"
        );
        assert_eq!(store.count("g").unwrap(), 0);
        assert!(!store.group_exists("g").unwrap());
        assert_eq!(store.delete_group("g").unwrap(), 0, "{kind}");
        assert_eq!(store.delete_group("nothing-here").unwrap(), 0, "{kind}");
        assert_eq!(store.groups("").unwrap(), ["g-longer", "g2"], "{kind}");
    }
}

#[test]
fn delete_prefix_tenant_a_keeps_tenant_b() {
    for (kind, store, _, _dir) in both() {
        store.set("tenant-a:config", "k1", "v").unwrap();
        store.set("tenant-a:config", "k2", "v").unwrap();
        store.set("tenant-a:sessions", "s", "v").unwrap();
        store.set("tenant-b:config", "k1", "v").unwrap();
        store.set("tenant-a", "bare", "v").unwrap(); // does not start with "tenant-a:"
        assert_eq!(store.delete_prefix("tenant-a:").unwrap(), 3, "{kind}");
        assert_eq!(
            store.groups("").unwrap(),
            ["tenant-a", "tenant-b:config"],
            "{kind}"
        );
        assert_eq!(store.get("tenant-b:config", "k1").unwrap(), "v");
        assert_eq!(store.delete_prefix("tenant-a:").unwrap(), 0, "{kind}");
    }
}

#[test]
fn delete_prefix_empty_clears_everything() {
    for (kind, store, clock, _dir) in both() {
        for g in ["a", "b", "c:d", "%", "_"] {
            store.set(g, "k1", "v").unwrap();
            store.set(g, "k2", "v").unwrap();
        }
        store
            .set_with_ttl("e", "k", "v", Duration::from_millis(5))
            .unwrap();
        clock.advance(Duration::from_millis(5));
        assert_eq!(
            store.delete_prefix("").unwrap(),
            10,
            "{kind}: only live entries are counted"
        );
        assert_eq!(store.count_all("").unwrap(), 0, "{kind}");
        assert!(store.groups("").unwrap().is_empty(), "{kind}");
        assert_eq!(store.purge_expired().unwrap(), 0, "{kind}: expired rows went too");
    }
}

#[test]
fn delete_prefix_removes_expired_rows_of_matching_groups_too() {
    let f = file_store();
    f.store
        .set_with_ttl("p:1", "k", "v", Duration::from_millis(1))
        .unwrap();
    f.store.set("p:2", "k", "v").unwrap();
    f.store.set("q", "k", "v").unwrap();
    f.clock.advance(Duration::from_millis(1));
    assert_eq!(f.store.delete_prefix("p:").unwrap(), 1);
    assert_eq!(f.raw_rows(), 1, "only q's row remains");
}

fn keys(page: &[Entry]) -> Vec<&str> {
    page.iter().map(|e| e.key.as_str()).collect()
}

#[test]
fn get_page_walks_key_order_with_offset_and_limit() {
    for (kind, store, _, _dir) in both() {
        for k in ["charlie", "alpha", "bravo"] {
            store.set("g", k, &k.to_uppercase()).unwrap();
        }
        let page = store.get_page("g", 1, 2).unwrap();
        assert_eq!(keys(&page), ["bravo", "charlie"], "{kind}");
        assert_eq!(page[0].value, "BRAVO");
        assert_eq!(keys(&store.get_page("g", 0, 1).unwrap()), ["alpha"], "{kind}");
        assert_eq!(
            keys(&store.get_page("g", 0, 10).unwrap()),
            ["alpha", "bravo", "charlie"]
        );
        assert!(
            store.get_page("g", 0, 0).unwrap().is_empty(),
            "{kind}: limit 0 → empty"
        );
        assert!(store.get_page("g", 3, 10).unwrap().is_empty(), "{kind}");
        assert!(
            store.get_page("g", 1_000_000, 10).unwrap().is_empty(),
            "{kind}: huge offset"
        );
        assert!(
            store.get_page("g", u64::MAX, u64::MAX).unwrap().is_empty(),
            "{kind}"
        );
        assert_eq!(store.get_page("g", 2, u64::MAX).unwrap().len(), 1, "{kind}");
        assert!(store.get_page("missing", 0, 10).unwrap().is_empty());
    }
}

#[test]
fn keys_are_ordered_bytewise_and_case_sensitively() {
    for (kind, store, _, _dir) in both() {
        for k in ["b", "B", "a", "é", "Z", "_", "%", "10", "9"] {
            store.set("g", k, k).unwrap();
        }
        let mut expected = vec!["b", "B", "a", "é", "Z", "_", "%", "10", "9"];
        expected.sort(); // Rust str order is byte order
        assert_eq!(keys(&store.get_page("g", 0, 100).unwrap()), expected, "{kind}");
        let all = store.get_all("g").unwrap();
        assert_eq!(all.keys().map(String::as_str).collect::<Vec<_>>(), expected);
        assert_eq!(
            store.count("g").unwrap(),
            9,
            "{kind}: 'b' and 'B' are distinct keys"
        );
    }
}

#[test]
fn groups_lists_distinct_groups_ascending_and_skips_all_expired_groups() {
    for (kind, store, clock, _dir) in both() {
        store.set("b", "k1", "v").unwrap();
        store.set("b", "k2", "v").unwrap();
        store.set("a", "k", "v").unwrap();
        store.set_with_ttl("c", "k", "v", Duration::from_secs(1)).unwrap();
        store
            .set_with_ttl("d", "gone", "v", Duration::from_secs(1))
            .unwrap();
        store.set("d", "stays", "v").unwrap();
        assert_eq!(store.groups("").unwrap(), ["a", "b", "c", "d"], "{kind}");
        clock.advance(Duration::from_secs(1));
        assert_eq!(store.groups("").unwrap(), ["a", "b", "d"], "{kind}");
        let iterated: Vec<String> = store.groups_iter("").collect::<Result<_, _>>().unwrap();
        assert_eq!(iterated, ["a", "b", "d"], "{kind}");
        assert!(!store.group_exists("c").unwrap());
        assert!(store.group_exists("d").unwrap());
    }
}

#[test]
fn count_all_user_underscore_counts_only_literal_underscore_groups() {
    for (kind, store, _, _dir) in both() {
        store.set("user_1", "k", "v").unwrap();
        store.set("user_2", "k", "v").unwrap();
        store.set("user_2", "k2", "v").unwrap();
        store.set("userX", "k", "v").unwrap();
        store.set("user%1", "k", "v").unwrap();
        store.set("user", "k", "v").unwrap();
        store.set("users", "k", "v").unwrap();
        assert_eq!(store.count_all("user_").unwrap(), 3, "{kind}");
        assert_eq!(store.count_all("user%").unwrap(), 1, "{kind}");
        assert_eq!(store.count_all("user").unwrap(), 7, "{kind}");
        assert_eq!(store.groups("user_").unwrap(), ["user_1", "user_2"], "{kind}");
        assert_eq!(store.groups("user%").unwrap(), ["user%1"], "{kind}");
        assert_eq!(store.count_all("").unwrap(), 7, "{kind}");
    }
}

#[test]
fn prefixes_are_case_sensitive() {
    for (kind, store, _, _dir) in both() {
        store.set("tenant-a:config", "k", "v").unwrap();
        store.set("Tenant-A:config", "k", "v").unwrap();
        store.set("TENANT-a:x", "k", "v").unwrap();
        assert_eq!(store.count_all("Tenant-A:").unwrap(), 1, "{kind}");
        assert_eq!(store.groups("Tenant-A:").unwrap(), ["Tenant-A:config"], "{kind}");
        assert_eq!(store.groups("tenant-a:").unwrap(), ["tenant-a:config"], "{kind}");
        assert_eq!(store.count_all("tenant-A").unwrap(), 0, "{kind}");
        assert_eq!(store.delete_prefix("Tenant-A:").unwrap(), 1, "{kind}");
        assert!(store.exists("tenant-a:config", "k").unwrap(), "{kind}");
        assert!(store.exists("TENANT-a:x", "k").unwrap(), "{kind}");
    }
}

#[test]
fn prefixes_with_escape_wildcard_and_multibyte_characters_match_literally() {
    for (kind, store, _, _dir) in both() {
        let groups = [
            "a^b",
            "a^%",
            "a^_",
            "a^^",
            "ab",
            "a%b",
            "a_b",
            "aXb",
            "a\\b",
            "a\\\\",
            "a\\%",
            "é",
            "éa",
            "e",
            "ea",
            "f",
            "日本",
            "日本語",
            "日",
            "日x",
            "本",
            "^",
            "^^",
            "\\",
        ];
        for g in groups {
            store.set(g, "k", "v").unwrap();
        }
        let cases: &[(&str, &[&str])] = &[
            ("a^", &["a^%", "a^^", "a^_", "a^b"]),
            ("a^^", &["a^^"]),
            ("a^%", &["a^%"]),
            ("a^_", &["a^_"]),
            ("a%", &["a%b"]),
            ("a_", &["a_b"]),
            ("a\\", &["a\\%", "a\\\\", "a\\b"]),
            ("a\\\\", &["a\\\\"]),
            ("a\\%", &["a\\%"]),
            ("^", &["^", "^^"]),
            ("\\", &["\\"]),
            ("é", &["é", "éa"]),
            ("e", &["e", "ea"]),
            ("日本", &["日本", "日本語"]),
            ("日", &["日", "日x", "日本", "日本語"]),
            ("本", &["本"]),
            ("日本語", &["日本語"]),
            ("日本語x", &[]),
        ];
        for (prefix, expected) in cases {
            let mut expected: Vec<&str> = expected.to_vec();
            expected.sort();
            assert_eq!(
                store.groups(prefix).unwrap(),
                expected,
                "{kind}: groups({prefix:?})"
            );
            assert_eq!(
                store.count_all(prefix).unwrap(),
                expected.len() as u64,
                "{kind}: count_all({prefix:?})"
            );
            let iterated: Vec<String> = store.groups_iter(prefix).collect::<Result<_, _>>().unwrap();
            assert_eq!(iterated, expected, "{kind}: groups_iter({prefix:?})");
        }
        // delete_prefix matches the same way.
        assert_eq!(store.delete_prefix("a^").unwrap(), 4, "{kind}");
        assert_eq!(store.delete_prefix("a\\").unwrap(), 3, "{kind}");
        assert_eq!(store.delete_prefix("日本").unwrap(), 2, "{kind}");
        assert_eq!(store.delete_prefix("é").unwrap(), 2, "{kind}");
        let left = store.groups("").unwrap();
        for gone in ["a^b", "a\\b", "日本語", "éa"] {
            assert!(!left.iter().any(|g| g == gone), "{kind}: {gone} should be gone");
        }
        for kept in ["ab", "a%b", "a_b", "aXb", "e", "ea", "日", "日x", "本", "^", "\\"] {
            assert!(left.iter().any(|g| g == kept), "{kind}: {kept} should remain");
        }
        assert_eq!(left.len(), groups.len() - 11, "{kind}");
    }
}

#[test]
fn a_group_name_is_a_prefix_of_itself() {
    for (kind, store, _, _dir) in both() {
        store.set("tenant-a:config", "k", "v").unwrap();
        assert_eq!(store.count_all("tenant-a:config").unwrap(), 1, "{kind}");
        assert_eq!(store.count_all("tenant-a:config!").unwrap(), 0, "{kind}");
    }
}

#[test]
fn iter_over_600_keys_yields_all_in_ascending_order_without_repeats() {
    for (kind, store, _, _dir) in both() {
        for i in (0..600).rev() {
            store.set("g", &format!("key-{i:04}"), &i.to_string()).unwrap();
        }
        store.set("other", "key-0000", "x").unwrap();
        let entries: Vec<Entry> = store.iter("g").collect::<Result<_, _>>().unwrap();
        assert_eq!(entries.len(), 600, "{kind}");
        for (i, e) in entries.iter().enumerate() {
            assert_eq!(e.key, format!("key-{i:04}"), "{kind}");
            assert_eq!(e.value, i.to_string(), "{kind}");
        }
        assert!(entries.windows(2).all(|w| w[0].key < w[1].key), "{kind}");
        assert_eq!(entries, store.get_page("g", 0, u64::MAX).unwrap(), "{kind}");
    }
}

#[test]
fn iterators_are_fused() {
    for (_, store, _, _dir) in both() {
        store.set("g", "k", "v").unwrap();
        let mut it = store.iter("g");
        assert!(it.next().is_some());
        assert!(it.next().is_none());
        assert!(it.next().is_none());
        let mut groups = store.groups_iter("");
        assert_eq!(groups.next().unwrap().unwrap(), "g");
        assert!(groups.next().is_none());
        assert!(groups.next().is_none());
        assert!(store.iter("empty").next().is_none());
    }
}

#[test]
fn groups_iter_over_600_groups_yields_all_in_ascending_order() {
    for (kind, store, _, _dir) in both() {
        for i in 0..600 {
            store.set(&format!("grp-{i:04}"), "k", "v").unwrap();
        }
        let groups: Vec<String> = store.groups_iter("grp-").collect::<Result<_, _>>().unwrap();
        assert_eq!(groups.len(), 600, "{kind}");
        assert!(groups.windows(2).all(|w| w[0] < w[1]), "{kind}");
        assert_eq!(groups, store.groups("").unwrap(), "{kind}");
        assert_eq!(groups.iter().collect::<BTreeSet<_>>().len(), 600);
    }
}

#[test]
fn iterators_yield_live_entries_only() {
    for (kind, store, clock, _dir) in both() {
        for i in 0..600 {
            let key = format!("k{i:03}");
            if i % 3 == 0 {
                store
                    .set_with_ttl("g", &key, "short", Duration::from_secs(1))
                    .unwrap();
            } else {
                store.set("g", &key, "long").unwrap();
            }
        }
        for i in 0..300 {
            let g = format!("grp{i:03}");
            if i % 2 == 0 {
                store.set_with_ttl(&g, "k", "v", Duration::from_secs(1)).unwrap();
            } else {
                store.set(&g, "k", "v").unwrap();
            }
        }
        clock.advance(Duration::from_secs(1));
        let entries: Vec<Entry> = store.iter("g").collect::<Result<_, _>>().unwrap();
        assert_eq!(entries.len(), 400, "{kind}");
        assert!(entries.iter().all(|e| e.value == "long"), "{kind}");
        assert!(entries.windows(2).all(|w| w[0].key < w[1].key), "{kind}");
        let groups: Vec<String> = store.groups_iter("grp").collect::<Result<_, _>>().unwrap();
        assert_eq!(groups.len(), 150, "{kind}");
        assert!(
            groups.iter().all(|g| g[3..].parse::<u32>().unwrap() % 2 == 1),
            "{kind}"
        );
    }
}

#[test]
fn get_all_returns_every_live_entry_by_key() {
    for (kind, store, _, _dir) in both() {
        store.set("g", "b", "2").unwrap();
        store.set("g", "a", "1").unwrap();
        store.set("h", "c", "3").unwrap();
        let expected: BTreeMap<String, String> = [
            ("a".to_string(), "1".to_string()),
            ("b".to_string(), "2".to_string()),
        ]
        .into();
        assert_eq!(store.get_all("g").unwrap(), expected, "{kind}");
        assert!(store.get_all("missing").unwrap().is_empty(), "{kind}");
    }
}

#[test]
fn exists_and_group_exists_report_presence() {
    for (_, store, _, _dir) in both() {
        assert!(!store.exists("g", "k").unwrap());
        assert!(!store.group_exists("g").unwrap());
        store.set("g", "k", "v").unwrap();
        assert!(store.exists("g", "k").unwrap());
        assert!(!store.exists("g", "K").unwrap());
        assert!(store.group_exists("g").unwrap());
        assert!(!store.group_exists("G").unwrap());
        store.delete("g", "k").unwrap();
        assert!(!store.group_exists("g").unwrap());
    }
}

#[test]
fn set_json_and_get_json_round_trip() {
    for (kind, store, _, _dir) in both() {
        let map: BTreeMap<String, Vec<i64>> =
            [("b".to_string(), vec![1, 2]), ("a".to_string(), vec![])].into();
        let v = store.set_json("g", "map", &map).unwrap();
        assert_eq!(
            store.get_json::<BTreeMap<String, Vec<i64>>>("g", "map").unwrap(),
            map,
            "{kind}"
        );
        assert_eq!(
            store.get("g", "map").unwrap(),
            r#"{"a":[],"b":[1,2]}"#,
            "{kind}: compact JSON"
        );
        assert_eq!(store.get_with_version("g", "map").unwrap().version, v);

        store
            .set_json("g", "tuple", &("text", 7u32, Some(1.5f64)))
            .unwrap();
        let t: (String, u32, Option<f64>) = store.get_json("g", "tuple").unwrap();
        assert_eq!(t, ("text".to_string(), 7, Some(1.5)));

        store.set_json("g", "str", "quote\"and\\slash").unwrap();
        assert_eq!(store.get_json::<String>("g", "str").unwrap(), "quote\"and\\slash");
        assert_eq!(store.get("g", "str").unwrap(), r#""quote\"and\\slash""#);

        // A plain value that happens to be JSON decodes too.
        store.set("g", "plain", "[1,2,3]").unwrap();
        assert_eq!(store.get_json::<Vec<u8>>("g", "plain").unwrap(), vec![1, 2, 3]);
    }
}

#[test]
fn get_json_with_a_bad_decode_is_a_json_error() {
    for (kind, store, _, _dir) in both() {
        store.set("g", "text", "not json").unwrap();
        store.set_json("g", "list", &vec!["a", "b"]).unwrap();
        for (key, result) in [
            ("text", store.get_json::<i32>("g", "text").map(|_| ())),
            ("list", store.get_json::<Vec<i32>>("g", "list").map(|_| ())),
            (
                "list as map",
                store.get_json::<BTreeMap<String, i32>>("g", "list").map(|_| ()),
            ),
        ] {
            let err = result.unwrap_err();
            assert!(matches!(err, Error::Json { .. }), "{kind} {key}: {err:?}");
            assert_eq!(err.kind(), ErrorKind::Json);
            assert_eq!(err.op(), "Store::get_json");
        }
        assert_eq!(
            store.get("g", "text").unwrap(),
            "not json",
            "{kind}: a failed decode keeps the value"
        );
    }
}

#[test]
fn set_json_that_cannot_encode_is_a_json_error_and_writes_nothing() {
    for (kind, store, _, _dir) in both() {
        // JSON object keys must be strings; tuple keys cannot be encoded.
        let bad: BTreeMap<(i32, i32), i32> = [((1, 2), 3)].into();
        let err = store.set_json("g", "k", &bad).unwrap_err();
        assert!(matches!(err, Error::Json { .. }), "{kind}: {err:?}");
        assert_eq!(err.op(), "Store::set_json");
        assert!(!store.exists("g", "k").unwrap(), "{kind}");
    }
}

#[test]
fn set_json_writes_compact_json_with_sorted_keys() {
    for (kind, store, _, _dir) in both() {
        let map: std::collections::HashMap<String, Vec<u8>> =
            (0..32).map(|i| (format!("key-{i:02}"), vec![i])).collect();
        let sorted: BTreeMap<String, Vec<u8>> = map.clone().into_iter().collect();
        store.set_json("g", "hash", &map).unwrap();
        store.set_json("g", "tree", &sorted).unwrap();
        let stored = store.get("g", "hash").unwrap();
        assert!(
            !stored.contains(' ') && !stored.contains('\n'),
            "{kind}: compact: {stored}"
        );
        assert_eq!(
            stored,
            store.get("g", "tree").unwrap(),
            "{kind}: keys are not sorted"
        );
    }
}

/// A value `set_json` cannot write as JSON (a map whose keys are not strings) is a `Json` error
/// whose fix is about that value, not about a stored one (h151: it said "check that the stored
/// value is JSON of the expected shape", and nothing was stored). `get_json` keeps that fix.
#[test]
fn a_json_error_names_the_fix_for_its_direction() {
    let store = store::Store::in_memory().unwrap();
    let mut bad = std::collections::HashMap::new();
    bad.insert((1, 2), 3);
    let err = store.set_json("g", "k", &bad).unwrap_err();
    assert_eq!(err.kind(), store::ErrorKind::Json);
    let text = err.to_string();
    assert!(!text.contains("stored value"), "{text}");
    assert!(text.contains("map keys as strings"), "{text}");
    assert!(!store.exists("g", "k").unwrap());
    store.set("g", "k", "not json").unwrap();
    let text = store.get_json::<u32>("g", "k").unwrap_err().to_string();
    assert!(text.contains("check that the stored value is JSON"), "{text}");
}
