//! Model-based property test of the KV store: random sequences of operations (with colliding
//! groups, keys and prefixes, small TTLs on a `ManualClock`, integer and non-integer values) run
//! against a memory store and a file store, and every result is compared with a simple in-memory
//! model — values, error kinds, conflicts, version ordering and (for files) the physical rows.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use store::{Clock, Entry, Error, ErrorKind, Kv, ManualClock, Store};

/// Groups that collide under case folding and under naive `LIKE` matching.
const GROUPS: &[&str] = &["a", "a:b", "a_", "A", "a%", "ab", "a^", "aX", "b"];
const KEYS: &[&str] = &["k", "K", "k2", "é"];
const PREFIXES: &[&str] = &["", "a", "a:", "a_", "A", "a%", "a^", "b", "ab", "aX", "c"];
const VALUES: &[&str] = &[
    "",
    "0",
    "1",
    "-5",
    "41",
    "abc",
    "007",
    "-0",
    "9223372036854775807",
    "-9223372036854775808",
    "x y",
    "+1",
    "1.5",
    " 2",
];
const DELTAS: &[i64] = &[-1, 0, 1, 5, -100, i64::MAX, i64::MIN];
const OFFSETS: &[u64] = &[0, 1, 2, 3, u64::MAX];
const LIMITS: &[u64] = &[0, 1, 2, 10, u64::MAX];

#[derive(Debug, Clone)]
enum Expect {
    /// `None`: no live entry may exist.
    Absent,
    /// The version the model holds for the row (live or not), `None` if there is no row.
    Current,
    /// Some small number that may or may not match.
    Guess(u64),
}

#[derive(Debug, Clone)]
enum Op {
    Set(usize, usize, usize),
    SetTtl(usize, usize, usize, u64),
    Delete(usize, usize),
    DeleteGroup(usize),
    DeletePrefix(usize),
    Increment(usize, usize, usize),
    SetIfVersion(usize, usize, usize, Expect),
    Advance(u64),
    Get(usize, usize),
    GetWithVersion(usize, usize),
    Exists(usize, usize),
    GroupExists(usize),
    Count(usize),
    CountAll(usize),
    Groups(usize),
    GetAll(usize),
    GetPage(usize, usize, usize),
    Iter(usize),
    Purge,
}

fn op_strategy() -> impl Strategy<Value = Op> {
    let g = || 0..GROUPS.len();
    let k = || 0..KEYS.len();
    let v = || 0..VALUES.len();
    let expect = prop_oneof![
        Just(Expect::Absent),
        Just(Expect::Current),
        (1u64..6).prop_map(Expect::Guess),
    ];
    prop_oneof![
        6 => (g(), k(), v()).prop_map(|(g, k, v)| Op::Set(g, k, v)),
        4 => (g(), k(), v(), 0u64..5).prop_map(|(g, k, v, t)| Op::SetTtl(g, k, v, t)),
        2 => (g(), k()).prop_map(|(g, k)| Op::Delete(g, k)),
        1 => g().prop_map(Op::DeleteGroup),
        1 => (0..PREFIXES.len()).prop_map(Op::DeletePrefix),
        3 => (g(), k(), 0..DELTAS.len()).prop_map(|(g, k, d)| Op::Increment(g, k, d)),
        3 => (g(), k(), v(), expect).prop_map(|(g, k, v, e)| Op::SetIfVersion(g, k, v, e)),
        3 => (0u64..4).prop_map(Op::Advance),
        3 => (g(), k()).prop_map(|(g, k)| Op::Get(g, k)),
        2 => (g(), k()).prop_map(|(g, k)| Op::GetWithVersion(g, k)),
        1 => (g(), k()).prop_map(|(g, k)| Op::Exists(g, k)),
        1 => g().prop_map(Op::GroupExists),
        2 => g().prop_map(Op::Count),
        2 => (0..PREFIXES.len()).prop_map(Op::CountAll),
        2 => (0..PREFIXES.len()).prop_map(Op::Groups),
        2 => g().prop_map(Op::GetAll),
        2 => (g(), 0..OFFSETS.len(), 0..LIMITS.len()).prop_map(|(g, o, l)| Op::GetPage(g, o, l)),
        1 => g().prop_map(Op::Iter),
        1 => Just(Op::Purge),
    ]
}

#[derive(Debug, Clone)]
struct Row {
    value: String,
    version: u64,
    expires_at: Option<i64>,
}

/// What the store should hold: every physical row, live or expired.
#[derive(Debug)]
struct Model {
    rows: BTreeMap<(String, String), Row>,
    now: i64,
    /// Highest version any write has returned so far.
    last_version: u64,
}

impl Model {
    fn is_live(&self, row: &Row) -> bool {
        row.expires_at.is_none_or(|t| t > self.now)
    }

    fn live(&self, g: &str, k: &str) -> Option<&Row> {
        self.rows
            .get(&(g.to_string(), k.to_string()))
            .filter(|r| self.is_live(r))
    }

    fn live_in_group(&self, g: &str) -> Vec<(&str, &Row)> {
        self.rows
            .iter()
            .filter(|((rg, _), r)| rg == g && self.is_live(r))
            .map(|((_, k), r)| (k.as_str(), r))
            .collect()
    }

    fn live_count_where(&self, pred: impl Fn(&str) -> bool) -> u64 {
        self.rows
            .iter()
            .filter(|((g, _), r)| pred(g) && self.is_live(r))
            .count() as u64
    }

    /// Removes every row whose group matches; returns how many of them were live.
    fn remove_groups_where(&mut self, pred: impl Fn(&str) -> bool) -> u64 {
        let live = self.live_count_where(&pred);
        self.rows.retain(|(g, _), _| !pred(g));
        live
    }

    /// A lazy read: an expired row is deleted; the live row, if any.
    fn read(&mut self, g: &str, k: &str) -> Option<Row> {
        let id = (g.to_string(), k.to_string());
        match self.rows.get(&id) {
            Some(r) if self.is_live(r) => Some(r.clone()),
            Some(_) => {
                self.rows.remove(&id);
                None
            }
            None => None,
        }
    }

    fn put(&mut self, g: &str, k: &str, value: &str, version: u64, expires_at: Option<i64>) {
        let row = Row {
            value: value.to_string(),
            version,
            expires_at,
        };
        self.rows.insert((g.to_string(), k.to_string()), row);
    }
}

/// `^-?[0-9]+$` that fits an `i64`.
fn parse_integer(text: &str) -> Option<i64> {
    let digits = text.strip_prefix('-').unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

fn err_kind<T>(r: &store::Result<T>) -> Option<ErrorKind> {
    r.as_ref().err().map(Error::kind)
}

/// Checks one write's version against the model's history and records it.
fn new_version(model: &mut Model, v: u64, ctx: &str) -> Result<u64, TestCaseError> {
    prop_assert!(
        v > model.last_version,
        "{}: version {} not above {}",
        ctx,
        v,
        model.last_version
    );
    model.last_version = v;
    Ok(v)
}

fn expect_not_found<T: std::fmt::Debug>(
    r: store::Result<T>,
    g: &str,
    k: &str,
    ctx: &str,
) -> Result<(), TestCaseError> {
    match r {
        Err(Error::NotFound { group, key, .. }) => {
            prop_assert_eq!((group.as_str(), key.as_str()), (g, k), "{}", ctx);
            Ok(())
        }
        other => Err(TestCaseError::fail(format!(
            "{ctx}: expected NotFound, got {other:?}"
        ))),
    }
}

fn run(store: &Store, clock: &ManualClock, file: Option<&Path>, ops: &[Op]) -> Result<(), TestCaseError> {
    let mut m = Model {
        rows: BTreeMap::new(),
        now: clock.now_ms(),
        last_version: 0,
    };
    for (i, op) in ops.iter().enumerate() {
        let ctx = format!("op #{i} {op:?}");
        let ctx = ctx.as_str();
        match *op {
            Op::Set(g, k, v) => {
                let (g, k, v) = (GROUPS[g], KEYS[k], VALUES[v]);
                let ver = store
                    .set(g, k, v)
                    .map_err(|e| TestCaseError::fail(format!("{ctx}: {e}")))?;
                new_version(&mut m, ver, ctx)?;
                m.put(g, k, v, ver, None);
            }
            Op::SetTtl(g, k, v, ttl) => {
                let (g, k, v) = (GROUPS[g], KEYS[k], VALUES[v]);
                let ver = store
                    .set_with_ttl(g, k, v, Duration::from_millis(ttl))
                    .map_err(|e| TestCaseError::fail(format!("{ctx}: {e}")))?;
                new_version(&mut m, ver, ctx)?;
                let at = m.now + ttl as i64;
                m.put(g, k, v, ver, Some(at));
            }
            Op::Delete(g, k) => {
                let (g, k) = (GROUPS[g], KEYS[k]);
                let expected = m.live(g, k).is_some();
                m.rows.remove(&(g.to_string(), k.to_string()));
                prop_assert_eq!(store.delete(g, k).ok(), Some(expected), "{}", ctx);
            }
            Op::DeleteGroup(g) => {
                let g = GROUPS[g];
                let expected = m.remove_groups_where(|x| x == g);
                prop_assert_eq!(store.delete_group(g).ok(), Some(expected), "{}", ctx);
            }
            Op::DeletePrefix(p) => {
                let p = PREFIXES[p];
                let expected = m.remove_groups_where(|x| x.starts_with(p));
                prop_assert_eq!(store.delete_prefix(p).ok(), Some(expected), "{}", ctx);
            }
            Op::Increment(g, k, d) => {
                let (g, k, delta) = (GROUPS[g], KEYS[k], DELTAS[d]);
                let current = m.live(g, k).cloned();
                let base = match &current {
                    None => Some(0),
                    Some(row) => parse_integer(&row.value),
                };
                let result = base.and_then(|b| b.checked_add(delta));
                let got = store.increment(g, k, delta);
                match result {
                    None => {
                        prop_assert_eq!(
                            err_kind(&got),
                            Some(ErrorKind::InvalidInput),
                            "{}: {:?}",
                            ctx,
                            got
                        );
                        prop_assert_eq!(got.unwrap_err().field(), Some("value"), "{}", ctx);
                    }
                    Some(n) => {
                        prop_assert_eq!(got.as_ref().ok(), Some(&n), "{}: {:?}", ctx, got);
                        // Learn the new version: the entry is live now, so this read deletes nothing.
                        let v = store
                            .get_with_version(g, k)
                            .map_err(|e| TestCaseError::fail(format!("{ctx}: {e}")))?;
                        prop_assert_eq!(&v.value, &n.to_string(), "{}", ctx);
                        new_version(&mut m, v.version, ctx)?;
                        let expires_at = current.and_then(|r| r.expires_at);
                        prop_assert_eq!(v.expires_at, expires_at, "{}: increment keeps the TTL", ctx);
                        m.put(g, k, &n.to_string(), v.version, expires_at);
                    }
                }
            }
            Op::SetIfVersion(g, k, v, ref expect) => {
                let (g, k, v) = (GROUPS[g], KEYS[k], VALUES[v]);
                let id = (g.to_string(), k.to_string());
                let expected = match expect {
                    Expect::Absent => None,
                    Expect::Current => m.rows.get(&id).map(|r| r.version),
                    Expect::Guess(n) => Some(*n),
                };
                let actual = m.live(g, k).map(|r| r.version);
                let got = store.set_if_version(g, k, v, expected);
                if actual == expected {
                    let ver = got.map_err(|e| TestCaseError::fail(format!("{ctx}: {e}")))?;
                    new_version(&mut m, ver, ctx)?;
                    m.put(g, k, v, ver, None);
                } else {
                    match got {
                        Err(Error::Conflict {
                            expected: e,
                            actual: a,
                            ..
                        }) => prop_assert_eq!((e, a), (expected, actual), "{}", ctx),
                        other => {
                            return Err(TestCaseError::fail(format!(
                                "{ctx}: expected Conflict, got {other:?}"
                            )));
                        }
                    }
                }
            }
            Op::Advance(ms) => {
                clock.advance(Duration::from_millis(ms));
                m.now += ms as i64;
            }
            Op::Get(g, k) => {
                let (g, k) = (GROUPS[g], KEYS[k]);
                let got = store.get(g, k);
                match m.read(g, k) {
                    Some(row) => prop_assert_eq!(got.ok(), Some(row.value), "{}", ctx),
                    None => expect_not_found(got, g, k, ctx)?,
                }
            }
            Op::GetWithVersion(g, k) => {
                let (g, k) = (GROUPS[g], KEYS[k]);
                let got = store.get_with_version(g, k);
                match m.read(g, k) {
                    Some(row) => {
                        let v = got.map_err(|e| TestCaseError::fail(format!("{ctx}: {e}")))?;
                        prop_assert_eq!(
                            (v.value, v.version, v.expires_at),
                            (row.value, row.version, row.expires_at),
                            "{}",
                            ctx
                        );
                    }
                    None => expect_not_found(got, g, k, ctx)?,
                }
            }
            Op::Exists(g, k) => {
                let (g, k) = (GROUPS[g], KEYS[k]);
                prop_assert_eq!(store.exists(g, k).ok(), Some(m.live(g, k).is_some()), "{}", ctx);
            }
            Op::GroupExists(g) => {
                let g = GROUPS[g];
                let expected = !m.live_in_group(g).is_empty();
                prop_assert_eq!(store.group_exists(g).ok(), Some(expected), "{}", ctx);
            }
            Op::Count(g) => {
                let g = GROUPS[g];
                let expected = m.live_in_group(g).len() as u64;
                prop_assert_eq!(store.count(g).ok(), Some(expected), "{}", ctx);
            }
            Op::CountAll(p) => {
                let p = PREFIXES[p];
                let expected = m.live_count_where(|g| g.starts_with(p));
                prop_assert_eq!(store.count_all(p).ok(), Some(expected), "{}", ctx);
            }
            Op::Groups(p) => {
                let p = PREFIXES[p];
                let mut expected: Vec<String> = m
                    .rows
                    .iter()
                    .filter(|((g, _), r)| g.starts_with(p) && m.is_live(r))
                    .map(|((g, _), _)| g.clone())
                    .collect();
                expected.dedup();
                prop_assert_eq!(store.groups(p).ok(), Some(expected.clone()), "{}", ctx);
                let iterated: Option<Vec<String>> = store.groups_iter(p).collect::<Result<_, _>>().ok();
                prop_assert_eq!(iterated, Some(expected), "{}: groups_iter", ctx);
            }
            Op::GetAll(g) => {
                let g = GROUPS[g];
                let expected: BTreeMap<String, String> = m
                    .live_in_group(g)
                    .into_iter()
                    .map(|(k, r)| (k.to_string(), r.value.clone()))
                    .collect();
                prop_assert_eq!(store.get_all(g).ok(), Some(expected), "{}", ctx);
            }
            Op::GetPage(g, o, l) => {
                let (g, offset, limit) = (GROUPS[g], OFFSETS[o], LIMITS[l]);
                let expected: Vec<Entry> = m
                    .live_in_group(g)
                    .into_iter()
                    .skip(usize::try_from(offset).unwrap_or(usize::MAX))
                    .take(usize::try_from(limit).unwrap_or(usize::MAX))
                    .map(|(k, r)| Entry {
                        key: k.to_string(),
                        value: r.value.clone(),
                    })
                    .collect();
                prop_assert_eq!(store.get_page(g, offset, limit).ok(), Some(expected), "{}", ctx);
            }
            Op::Iter(g) => {
                let g = GROUPS[g];
                let expected: Vec<Entry> = m
                    .live_in_group(g)
                    .into_iter()
                    .map(|(k, r)| Entry {
                        key: k.to_string(),
                        value: r.value.clone(),
                    })
                    .collect();
                let got: Option<Vec<Entry>> = store.iter(g).collect::<Result<_, _>>().ok();
                prop_assert_eq!(got, Some(expected), "{}", ctx);
            }
            Op::Purge => {
                let before = m.rows.len();
                let now = m.now;
                m.rows.retain(|_, r| r.expires_at.is_none_or(|t| t > now));
                let expected = (before - m.rows.len()) as u64;
                prop_assert_eq!(store.purge_expired().ok(), Some(expected), "{}", ctx);
            }
        }
    }
    // Final state: every live entry, and (for files) every physical row, matches the model.
    let live = m.live_count_where(|_| true);
    prop_assert_eq!(store.count_all("").ok(), Some(live), "final count_all");
    for g in GROUPS {
        let expected: BTreeMap<String, String> = m
            .live_in_group(g)
            .into_iter()
            .map(|(k, r)| (k.to_string(), r.value.clone()))
            .collect();
        prop_assert_eq!(store.get_all(g).ok(), Some(expected), "final get_all({})", g);
    }
    if let Some(path) = file {
        prop_assert_eq!(
            common::raw_rows(path),
            m.rows.len() as i64,
            "physical rows in the file"
        );
        let reopened = Store::open(path).map_err(|e| TestCaseError::fail(format!("reopen: {e}")))?;
        // The reopened store runs on the system clock, so only rows without a TTL are compared.
        for ((g, k), row) in m.rows.iter().filter(|(_, r)| r.expires_at.is_none()) {
            let v = reopened
                .get_with_version(g, k)
                .map_err(|e| TestCaseError::fail(format!("after reopen: {e}")))?;
            prop_assert_eq!(
                (v.value, v.version),
                (row.value.clone(), row.version),
                "after reopen"
            );
        }
    }
    Ok(())
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(64)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn random_operation_sequences_match_the_model(ops in proptest::collection::vec(op_strategy(), 1..60)) {
        let (memory, memory_clock) = common::memory_store();
        run(&memory, &memory_clock, None, &ops)?;

        let f = common::file_store();
        let path = f.path();
        run(&f.store, &f.clock, Some(&path), &ops)?;
    }
}

#[test]
fn the_model_agrees_on_a_fixed_tricky_sequence() {
    // A hand-written sequence exercising expiry, lazy deletes, purges and CAS on both stores.
    let ops = vec![
        Op::SetTtl(0, 0, 4, 2),
        Op::Set(3, 0, 1),
        Op::Set(4, 1, 5),
        Op::Increment(0, 0, 2),
        Op::Advance(2),
        Op::Exists(0, 0),
        Op::Count(0),
        Op::Purge,
        Op::SetTtl(2, 3, 0, 0),
        Op::Get(2, 3),
        Op::SetIfVersion(0, 0, 1, Expect::Absent),
        Op::SetIfVersion(0, 0, 1, Expect::Current),
        Op::SetIfVersion(0, 0, 1, Expect::Guess(1)),
        Op::Increment(4, 1, 3),
        Op::CountAll(1),
        Op::CountAll(3),
        Op::CountAll(5),
        Op::Groups(0),
        Op::DeletePrefix(1),
        Op::GetPage(3, 0, 4),
    ];
    let (memory, clock) = common::memory_store();
    run(&memory, &clock, None, &ops).unwrap();
    let f = common::file_store();
    run(&f.store, &f.clock, Some(&f.path()), &ops).unwrap();
}

/// Any characters (NUL and every plane included), short, or right around the 4096-byte limit.
fn name_strategy() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => proptest::collection::vec(any::<char>(), 0..10).prop_map(|v| v.into_iter().collect::<String>()),
        2 => proptest::collection::vec(prop_oneof![Just('a'), Just('%'), Just('_'), Just('^'), Just('\\'), Just('é'), Just('\0')], 0..6)
            .prop_map(|v| v.into_iter().collect::<String>()),
        1 => (4094usize..4099).prop_map(|n| "x".repeat(n)),
        1 => (0usize..2).prop_map(|extra| format!("{}{}", "é".repeat(2048), "x".repeat(extra))),
    ]
}

/// The §2 rule for groups, keys and non-empty prefixes.
fn valid_name(s: &str) -> bool {
    !s.is_empty() && s.len() <= 4096 && !s.contains('\0')
}

#[track_caller]
fn check_invalid<T: std::fmt::Debug>(r: store::Result<T>, field: &str) -> Result<(), TestCaseError> {
    match r {
        Err(e) => {
            prop_assert_eq!(e.kind(), ErrorKind::InvalidInput, "{}", e);
            prop_assert_eq!(e.field(), Some(field));
            Ok(())
        }
        Ok(v) => Err(TestCaseError::fail(format!(
            "expected InvalidInput({field}), got Ok({v:?})"
        ))),
    }
}

fn check_arbitrary(
    store: &Store,
    group: &str,
    key: &str,
    value: &str,
    prefix: &str,
    template: &str,
    sep: &str,
) -> Result<(), TestCaseError> {
    let fail = |e: Error| TestCaseError::fail(e.to_string());
    let max = store.config().max_value_bytes;
    let set = store.set(group, key, value);
    if !valid_name(group) {
        check_invalid(set, "group")?;
        check_invalid(store.get(group, key), "group")?;
        check_invalid(store.count(group), "group")?;
        check_invalid(store.render(template, group), "group")?;
    } else if !valid_name(key) {
        check_invalid(set, "key")?;
        check_invalid(store.get(group, key), "key")?;
        check_invalid(store.get_split(group, key, sep), "key")?;
    } else if value.len() > max {
        check_invalid(set, "value")?;
    } else {
        let v = set.map_err(fail)?;
        let got = store.get_with_version(group, key).map_err(fail)?;
        prop_assert_eq!((got.value.as_str(), got.version), (value, v));
        let all = store.get_all(group).map_err(fail)?;
        prop_assert_eq!(all.get(key).map(String::as_str), Some(value));
        let expected_split: Vec<String> = if sep.is_empty() {
            value.chars().map(String::from).collect()
        } else {
            value.split(sep).map(str::to_string).collect()
        };
        prop_assert_eq!(store.get_split(group, key, sep).map_err(fail)?, expected_split);
        let fields: Vec<String> = value.split_whitespace().map(str::to_string).collect();
        prop_assert_eq!(store.get_fields(group, key).map_err(fail)?, fields);
        // A group is a prefix of itself, whatever its characters.
        prop_assert_eq!(store.count_all(group).map_err(fail)?, 1);
        prop_assert_eq!(store.groups(group).map_err(fail)?, vec![group.to_string()]);
        match store.render(template, group) {
            Ok(_) | Err(Error::Template { .. }) => {}
            Err(other) => return Err(TestCaseError::fail(format!("render: unexpected {other}"))),
        }
        // The prefix sees the group iff the group starts with it, byte for byte.
        if prefix.is_empty() || valid_name(prefix) {
            let expected = u64::from(group.starts_with(prefix));
            prop_assert_eq!(
                store.count_all(prefix).map_err(fail)?,
                expected,
                "prefix {:?}",
                prefix
            );
            prop_assert_eq!(store.groups(prefix).map_err(fail)?.len() as u64, expected);
        }
        prop_assert!(store.delete(group, key).map_err(fail)?);
        prop_assert_eq!(store.count_all("").map_err(fail)?, 0);
    }
    if !prefix.is_empty() && !valid_name(prefix) {
        check_invalid(store.count_all(prefix), "prefix")?;
        check_invalid(store.groups(prefix), "prefix")?;
        check_invalid(store.delete_prefix(prefix), "prefix")?;
    }
    prop_assert_eq!(
        store.count_all("").map_err(fail)?,
        0,
        "nothing invalid was written"
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_names_values_and_templates_follow_the_validation_rules(
        group in name_strategy(),
        key in name_strategy(),
        value in prop_oneof![
            4 => proptest::collection::vec(any::<char>(), 0..40).prop_map(|v| v.into_iter().collect::<String>()),
            1 => (1020usize..1030).prop_map(|n| "v".repeat(n)),
        ],
        prefix in name_strategy(),
        template in "\\PC{0,30}",
        sep in proptest::collection::vec(any::<char>(), 0..3).prop_map(|v| v.into_iter().collect::<String>()),
    ) {
        let (memory, _) = common::memory_store_with(|c| c.with_max_value_bytes(1024));
        check_arbitrary(&memory, &group, &key, &value, &prefix, &template, &sep)?;
        let f = common::file_store_with(|c| c.with_max_value_bytes(1024));
        check_arbitrary(&f.store, &group, &key, &value, &prefix, &template, &sep)?;
    }
}
