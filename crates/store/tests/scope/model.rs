//! Model-based property tests of scoped namespaces, quota counters, the change feed and
//! events: random operation sequences on a file store with a manual clock run against a simple
//! model, and after every operation the results, `usage()`, the physical rows, the trigger-kept
//! counters (`scope_usage`), the change feed and two watch subscriptions are compared with it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::too_many_lines)]

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use store::{
    Change, Error, ErrorKind, Event, EventKind, Kv, Quota, QuotaLimit, ScopedConfig, ScopedStore, Store,
    StoreConfig, Subscription, Usage, WatchOptions,
};

use crate::common::{Rng, START_MS, all_changes_since, raw};

// ------------------------------------------------------------------------------------------
// Universe

const NAMESPACES: [&str; 3] = ["a", "b", "c"];
fn quota_of(ns: usize) -> Quota {
    match ns {
        0 => Quota {
            max_keys: 4,
            max_groups: 2,
            max_bytes: 60,
        },
        1 => Quota {
            max_keys: 3,
            max_groups: 0,
            max_bytes: 30,
        },
        _ => Quota::default(),
    }
}
const LOCAL_GROUPS: &[&str] = &["g1", "g2", "g3", "g:x"];
const RAW_GROUPS: &[&str] = &[
    "a:g1", "a:g2", "a:g3", "a:", "a:g:x", "b:g1", "b:g2", "c:g1", "ab:g1", "a", "x", "A:g1",
];
const LOCAL_PREFIXES: &[&str] = &["", "g", "g1", "g:"];
const RAW_PREFIXES: &[&str] = &["a:", "a", "b:g", "ab", "x", ""];

/// Name `i` (wrapping) as the handle spells it and as it is stored: from `scoped` under `ns`
/// (stored as `ns:name`), else from `raw` (stored as is).
fn local_and_full(ns: Option<&str>, scoped: &[&str], raw: &[&str], i: usize) -> (String, String) {
    match ns {
        Some(ns) => {
            let local = scoped[i % scoped.len()];
            (local.to_string(), format!("{ns}:{local}"))
        }
        None => {
            let raw = raw[i % raw.len()];
            (raw.to_string(), raw.to_string())
        }
    }
}
const KEYS: &[&str] = &["k1", "k2", "k3", "ké"];
const VALUES: &[&str] = &[
    "",
    "1",
    "-3",
    "41",
    "abc",
    "xxxxx",
    "yyyyyyyyyyyy",
    "zzzzzzzzzzzzzzzzzzzzzzzzzzzzzz",
    "9223372036854775807",
    "é",
];
const DELTAS: &[i64] = &[1, -1, 0, 7, i64::MAX];

#[derive(Debug, Clone, Copy)]
enum Expect {
    Absent,
    Current,
    Guess(u64),
}

#[derive(Debug, Clone)]
enum KvOp {
    Set(usize, usize, usize),
    SetTtl(usize, usize, usize, u64),
    Cas(usize, usize, usize, Expect),
    Incr(usize, usize, usize),
    Delete(usize, usize),
    DeleteGroup(usize),
    DeletePrefix(usize),
    Purge,
    Get(usize, usize),
}

/// `Some(ns)`: a scoped handle with that namespace's quota; `None`: the raw store.
type Target = Option<usize>;

#[derive(Debug, Clone)]
enum Foreign {
    Upsert(usize, usize, usize, Option<u64>),
    Delete(usize, usize),
    Expire(usize, Option<u64>),
    Move(usize, usize),
    Rekey(usize, usize, usize),
}

#[derive(Debug, Clone)]
enum Step {
    Kv(Target, KvOp),
    Advance(u64),
}

#[derive(Debug, Clone)]
enum Op {
    Kv(Target, KvOp),
    Foreign(Foreign),
    Advance(u64),
    /// The clock steps back (a system clock may).
    Rewind(u64),
    /// Steps, then commit (`true`) or return `Err` (rollback).
    Txn(Vec<Step>, bool),
    /// Listeners are dropped; the clock's `n`-th read during the inner operation registers
    /// new ones from another thread (mid-write); if it never comes, they register afterwards.
    Late(Box<Op>, u8),
    /// 0: plain reopen; 1: counters and triggers dropped, a foreign write, reopen; 2: the delete
    /// trigger dropped, a foreign delete, reopen.
    Reopen(u8),
}

fn kv_op() -> impl Strategy<Value = KvOp> {
    let g = || 0usize..16;
    let k = || 0..KEYS.len();
    let v = || 0..VALUES.len();
    let expect = prop_oneof![
        Just(Expect::Absent),
        Just(Expect::Current),
        (1u64..4).prop_map(Expect::Guess)
    ];
    prop_oneof![
        8 => (g(), k(), v()).prop_map(|(g, k, v)| KvOp::Set(g, k, v)),
        5 => (g(), k(), v(), 0u64..6).prop_map(|(g, k, v, t)| KvOp::SetTtl(g, k, v, t)),
        3 => (g(), k(), v(), expect).prop_map(|(g, k, v, e)| KvOp::Cas(g, k, v, e)),
        3 => (g(), k(), 0..DELTAS.len()).prop_map(|(g, k, d)| KvOp::Incr(g, k, d)),
        3 => (g(), k()).prop_map(|(g, k)| KvOp::Delete(g, k)),
        1 => g().prop_map(KvOp::DeleteGroup),
        1 => (0usize..16).prop_map(KvOp::DeletePrefix),
        2 => Just(KvOp::Purge),
        3 => (g(), k()).prop_map(|(g, k)| KvOp::Get(g, k)),
    ]
}

fn target() -> impl Strategy<Value = Target> {
    prop_oneof![
        5 => Just(Some(0)),
        3 => Just(Some(1)),
        1 => Just(Some(2)),
        2 => Just(None),
    ]
}

fn foreign() -> impl Strategy<Value = Foreign> {
    let g = || 0..RAW_GROUPS.len();
    let k = || 0..KEYS.len();
    let ttl = || prop_oneof![Just(None), (0u64..6).prop_map(Some)];
    prop_oneof![
        3 => (g(), k(), 0..VALUES.len(), ttl()).prop_map(|(g, k, v, t)| Foreign::Upsert(g, k, v, t)),
        2 => (g(), k()).prop_map(|(g, k)| Foreign::Delete(g, k)),
        1 => (g(), ttl()).prop_map(|(g, t)| Foreign::Expire(g, t)),
        1 => (g(), g()).prop_map(|(a, b)| Foreign::Move(a, b)),
        1 => (g(), k(), k()).prop_map(|(g, a, b)| Foreign::Rekey(g, a, b)),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        8 => (target(), kv_op()).prop_map(|(t, o)| Step::Kv(t, o)),
        1 => (1u64..4).prop_map(Step::Advance),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        20 => (target(), kv_op()).prop_map(|(t, o)| Op::Kv(t, o)),
        3 => foreign().prop_map(Op::Foreign),
        4 => (0u64..4).prop_map(Op::Advance),
        1 => (1u64..4).prop_map(Op::Rewind),
        4 => (proptest::collection::vec(step(), 1..6), proptest::bool::weighted(0.7)).prop_map(|(s, c)| Op::Txn(s, c)),
        1 => (0u8..4).prop_map(Op::Reopen),
        3 => (prop_oneof![
                (target(), kv_op()).prop_map(|(t, o)| Op::Kv(t, o)),
                (proptest::collection::vec(step(), 1..6), proptest::bool::weighted(0.7)).prop_map(|(s, c)| Op::Txn(s, c)),
             ], 1u8..5).prop_map(|(o, n)| Op::Late(Box::new(o), n)),
    ]
}

// ------------------------------------------------------------------------------------------
// Model

#[derive(Debug, Clone, PartialEq, Eq)]
struct Row {
    value: String,
    version: u64,
    expires_at: Option<i64>,
}

/// One expected change row / event.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Exp {
    kind: EventKind,
    group: String,
    key: Option<String>,
    value: Option<String>,
    expires_at: Option<i64>,
    version: Option<u64>,
    at: i64,
}

#[derive(Debug, Clone)]
struct Model {
    rows: BTreeMap<(String, String), Row>,
    now: i64,
    pending: Vec<Exp>,
    last_version: u64,
    /// Where in `pending` the events of a purge that followed a checked write begin: that
    /// purge commits on its own, so a listener registering between the two commits gets
    /// only the purge's events.
    purge_commit: Option<usize>,
    /// Inside a transaction (the model's copy `run_txn` works on): no purge follows a write.
    in_txn: bool,
}

impl Model {
    fn live(&self, r: &Row) -> bool {
        r.expires_at.is_none_or(|t| t > self.now)
    }
    fn live_row(&self, g: &str, k: &str) -> Option<&Row> {
        self.rows
            .get(&(g.to_string(), k.to_string()))
            .filter(|r| self.live(r))
    }
    fn usage(&self, ns: &str) -> Usage {
        let prefix = format!("{ns}:");
        let mut u = Usage::default();
        let mut groups = BTreeSet::new();
        for ((g, k), r) in &self.rows {
            if g.starts_with(&prefix) && self.live(r) {
                u.keys += 1;
                u.bytes += (k.len() + r.value.len()) as u64;
                groups.insert(g.clone());
            }
        }
        u.groups = groups.len() as u64;
        u
    }
    fn group_live(&self, g: &str) -> bool {
        self.rows.iter().any(|((rg, _), r)| rg == g && self.live(r))
    }
    /// Usage as the counters record it: expired rows not purged yet still count.
    fn recorded_usage(&self, ns: &str) -> Usage {
        let prefix = format!("{ns}:");
        let mut u = Usage::default();
        let mut groups = BTreeSet::new();
        for ((g, k), r) in self.rows.iter().filter(|((g, _), _)| g.starts_with(&prefix)) {
            u.keys += 1;
            u.bytes += (k.len() + r.value.len()) as u64;
            groups.insert(g.clone());
        }
        u.groups = groups.len() as u64;
        u
    }
    /// SPEC §6 quota rule, first failure wins.
    fn quota_check(&self, ns: &str, q: Quota, g: &str, k: &str, v: &str) -> Option<(QuotaLimit, u64, u64)> {
        self.quota_check_on(self.usage(ns), q, g, k, v)
    }
    /// Whether a quota-checked autocommit write counts the namespace's expired rows, and so
    /// purges them once it is done: the recorded usage fails the check, and the namespace
    /// holds at least 128 expired rows (the library's `PURGE_AFTER_COUNTING`) besides the one
    /// at (`g`, `k`), which the write replaces. (This model's namespaces never hold so many:
    /// here it only keeps the rule written down.)
    fn counts_expired(&self, ns: &str, q: Quota, g: &str, k: &str, v: &str) -> bool {
        let prefix = format!("{ns}:");
        let expired = self
            .rows
            .iter()
            .filter(|((rg, rk), r)| rg.starts_with(&prefix) && !self.live(r) && (rg != g || rk != k))
            .count();
        !self.in_txn && expired >= 128 && self.quota_check_on(self.recorded_usage(ns), q, g, k, v).is_some()
    }
    /// Removes the expired rows of groups under `prefix`, recording `Expired` for each.
    fn purge(&mut self, prefix: &str) -> u64 {
        let now = self.now;
        let gone: Vec<(String, String)> = self
            .rows
            .iter()
            .filter(|((g, _), r)| g.starts_with(prefix) && r.expires_at.is_some_and(|t| t <= now))
            .map(|(id, _)| id.clone())
            .collect();
        for (g, k) in &gone {
            self.rows.remove(&(g.clone(), k.clone()));
            self.removal(EventKind::Expired, g, Some(k));
        }
        gone.len() as u64
    }
    /// The purge a checked write that counted expired rows runs after its commit, as a
    /// commit of its own.
    fn purge_after_write(&mut self, prefix: &str) {
        let start = self.pending.len();
        self.purge(prefix);
        self.purge_commit.get_or_insert(start);
    }
    fn quota_check_on(
        &self,
        u: Usage,
        q: Quota,
        g: &str,
        k: &str,
        v: &str,
    ) -> Option<(QuotaLimit, u64, u64)> {
        if q.is_unlimited() {
            return None;
        }
        let existing = self.live_row(g, k);
        let update = existing.is_some();
        if !update && q.max_keys > 0 && u.keys + 1 > q.max_keys {
            return Some((QuotaLimit::Keys, q.max_keys, u.keys + 1));
        }
        if !update && q.max_groups > 0 && !self.group_live(g) && u.groups + 1 > q.max_groups {
            return Some((QuotaLimit::Groups, q.max_groups, u.groups + 1));
        }
        let new = (k.len() + v.len()) as i64;
        let old = existing.map_or(0, |r| (k.len() + r.value.len()) as i64);
        let delta = new - old;
        if q.max_bytes > 0 && delta > 0 && u.bytes + delta as u64 > q.max_bytes {
            return Some((QuotaLimit::Bytes, q.max_bytes, u.bytes + delta as u64));
        }
        None
    }
    fn set_event(&mut self, g: &str, k: &str, v: &str, version: u64, expires_at: Option<i64>) {
        self.rows.insert(
            (g.to_string(), k.to_string()),
            Row {
                value: v.to_string(),
                version,
                expires_at,
            },
        );
        self.pending.push(Exp {
            kind: EventKind::Set,
            group: g.to_string(),
            key: Some(k.to_string()),
            value: Some(v.to_string()),
            expires_at,
            version: Some(version),
            at: self.now,
        });
    }
    fn removal(&mut self, kind: EventKind, g: &str, k: Option<&str>) {
        self.pending.push(Exp {
            kind,
            group: g.to_string(),
            key: k.map(str::to_string),
            value: None,
            expires_at: None,
            version: None,
            at: self.now,
        });
    }
}

fn parse_integer(text: &str) -> Option<i64> {
    let digits = text.strip_prefix('-').unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

fn fail(ctx: &str, what: impl std::fmt::Display) -> TestCaseError {
    TestCaseError::fail(format!("{ctx}: {what}"))
}

fn ok<T>(ctx: &str, r: store::Result<T>) -> Result<T, TestCaseError> {
    r.map_err(|e| fail(ctx, format!("unexpected error {e}")))
}

fn expect_quota<T: std::fmt::Debug>(
    ctx: &str,
    got: store::Result<T>,
    ns: &str,
    want: (QuotaLimit, u64, u64),
) -> Result<(), TestCaseError> {
    match got {
        Err(Error::QuotaExceeded {
            namespace,
            limit,
            max,
            requested,
            ..
        }) => {
            prop_assert_eq!(
                (namespace.as_str(), limit, max, requested),
                (ns, want.0, want.1, want.2),
                "{}",
                ctx
            );
            Ok(())
        }
        other => Err(fail(
            ctx,
            format!("expected QuotaExceeded {want:?}, got {other:?}"),
        )),
    }
}

fn expect_not_found<T: std::fmt::Debug>(
    ctx: &str,
    got: store::Result<T>,
    g: &str,
    k: &str,
) -> Result<(), TestCaseError> {
    match got {
        Err(Error::NotFound { group, key, .. }) if group == g && key == k => Ok(()),
        other => Err(fail(ctx, format!("expected NotFound({g},{k}), got {other:?}"))),
    }
}

fn new_version(m: &mut Model, v: u64, ctx: &str) -> Result<(), TestCaseError> {
    prop_assert!(
        v > m.last_version,
        "{}: version {} not above {}",
        ctx,
        v,
        m.last_version
    );
    m.last_version = v;
    Ok(())
}

/// Applies one KV operation to handle `h` (scoped to `scope` or raw) and to the model.
fn apply<K: Kv>(
    h: &K,
    scope: Option<usize>,
    op: &KvOp,
    m: &mut Model,
    ctx: &str,
) -> Result<(), TestCaseError> {
    let (ns, quota) = match scope {
        Some(i) => (Some(NAMESPACES[i]), quota_of(i)),
        None => (None, Quota::default()),
    };
    let names = |g: usize| local_and_full(ns, LOCAL_GROUPS, RAW_GROUPS, g);
    let check = |m: &Model, full: &str, k: &str, v: &str| match ns {
        Some(ns) => m.quota_check(ns, quota, full, k, v),
        None => None,
    };
    // A checked write that counted the namespace's expired rows purges them afterwards.
    let counts_expired = |m: &Model, full: &str, k: &str, v: &str| match ns {
        Some(ns) => m.counts_expired(ns, quota, full, k, v).then(|| format!("{ns}:")),
        None => None,
    };
    match *op {
        KvOp::Set(g, k, v) | KvOp::SetTtl(g, k, v, _) => {
            let (local, full) = names(g);
            let (k, v) = (KEYS[k], VALUES[v]);
            let ttl = if let KvOp::SetTtl(_, _, _, t) = *op {
                Some(t)
            } else {
                None
            };
            let want = check(m, &full, k, v);
            let purge = counts_expired(m, &full, k, v);
            let got = match ttl {
                None => h.set(&local, k, v),
                Some(t) => h.set_with_ttl(&local, k, v, Duration::from_millis(t)),
            };
            match want {
                Some(w) => expect_quota(ctx, got, ns.unwrap(), w)?,
                None => {
                    let ver = ok(ctx, got)?;
                    new_version(m, ver, ctx)?;
                    let at = ttl.map(|t| m.now + t as i64);
                    m.set_event(&full, k, v, ver, at);
                }
            }
            if let Some(prefix) = purge {
                m.purge_after_write(&prefix);
            }
        }
        KvOp::Cas(g, k, v, expect) => {
            let (local, full) = names(g);
            let (k, v) = (KEYS[k], VALUES[v]);
            let id = (full.clone(), k.to_string());
            let expected = match expect {
                Expect::Absent => None,
                Expect::Current => m.rows.get(&id).map(|r| r.version),
                Expect::Guess(n) => Some(n),
            };
            let actual = m.live_row(&full, k).map(|r| r.version);
            let got = h.set_if_version(&local, k, v, expected);
            if actual != expected {
                match got {
                    Err(Error::Conflict {
                        group,
                        key,
                        expected: e,
                        actual: a,
                        ..
                    }) => {
                        prop_assert_eq!(
                            (group.as_str(), key.as_str(), e, a),
                            (local.as_str(), k, expected, actual),
                            "{}",
                            ctx
                        );
                    }
                    other => return Err(fail(ctx, format!("expected Conflict, got {other:?}"))),
                }
            } else {
                let purge = counts_expired(m, &full, k, v);
                if let Some(w) = check(m, &full, k, v) {
                    expect_quota(ctx, got, ns.unwrap(), w)?;
                } else {
                    let ver = ok(ctx, got)?;
                    new_version(m, ver, ctx)?;
                    m.set_event(&full, k, v, ver, None);
                }
                if let Some(prefix) = purge {
                    m.purge_after_write(&prefix);
                }
            }
        }
        KvOp::Incr(g, k, d) => {
            let (local, full) = names(g);
            let (k, delta) = (KEYS[k], DELTAS[d]);
            let current = m.live_row(&full, k).cloned();
            let base = match &current {
                None => Some(0),
                Some(r) => parse_integer(&r.value),
            };
            let result = base.and_then(|b| b.checked_add(delta));
            let got = h.increment(&local, k, delta);
            match result {
                None => match got {
                    Err(e) if e.kind() == ErrorKind::InvalidInput && e.field() == Some("value") => {}
                    other => return Err(fail(ctx, format!("expected InvalidInput(value), got {other:?}"))),
                },
                Some(n) => {
                    let text = n.to_string();
                    let purge = counts_expired(m, &full, k, &text);
                    if let Some(w) = check(m, &full, k, &text) {
                        expect_quota(ctx, got, ns.unwrap(), w)?;
                    } else {
                        prop_assert_eq!(ok(ctx, got)?, n, "{}", ctx);
                        // The model's own read: not part of the operation for the hook clock.
                        HOOK_PAUSED.store(true, std::sync::atomic::Ordering::SeqCst);
                        let v = h.get_with_version(&local, k);
                        HOOK_PAUSED.store(false, std::sync::atomic::Ordering::SeqCst);
                        let v = ok(ctx, v)?;
                        prop_assert_eq!(&v.value, &text, "{}", ctx);
                        let expires_at = current.and_then(|r| r.expires_at);
                        prop_assert_eq!(v.expires_at, expires_at, "{}: increment keeps the TTL", ctx);
                        new_version(m, v.version, ctx)?;
                        m.set_event(&full, k, &text, v.version, expires_at);
                    }
                    if let Some(prefix) = purge {
                        m.purge_after_write(&prefix);
                    }
                }
            }
        }
        KvOp::Delete(g, k) => {
            let (local, full) = names(g);
            let k = KEYS[k];
            let id = (full.clone(), k.to_string());
            let got = ok(ctx, h.delete(&local, k))?;
            let want = match m.rows.remove(&id) {
                None => false,
                Some(r) => {
                    let live = r.expires_at.is_none_or(|t| t > m.now);
                    m.removal(
                        if live {
                            EventKind::Delete
                        } else {
                            EventKind::Expired
                        },
                        &full,
                        Some(k),
                    );
                    live
                }
            };
            prop_assert_eq!(got, want, "{}", ctx);
        }
        KvOp::DeleteGroup(g) => {
            let (local, full) = names(g);
            let got = ok(ctx, h.delete_group(&local))?;
            let want = remove_groups(m, |x| x == full);
            prop_assert_eq!(got, want, "{}", ctx);
        }
        KvOp::DeletePrefix(p) => {
            let (local, full) = local_and_full(ns, LOCAL_PREFIXES, RAW_PREFIXES, p);
            let got = ok(ctx, h.delete_prefix(&local))?;
            let want = remove_groups(m, |x| x.starts_with(full.as_str()));
            prop_assert_eq!(got, want, "{}", ctx);
        }
        KvOp::Purge => {
            let prefix = ns.map(|ns| format!("{ns}:")).unwrap_or_default();
            let got = ok(ctx, h.purge_expired())?;
            let want = m.purge(&prefix);
            prop_assert_eq!(got, want, "{}", ctx);
        }
        KvOp::Get(g, k) => {
            let (local, full) = names(g);
            let k = KEYS[k];
            let got = h.get(&local, k);
            let id = (full.clone(), k.to_string());
            match m.rows.get(&id).cloned() {
                Some(r) if m.live(&r) => prop_assert_eq!(ok(ctx, got)?, r.value, "{}", ctx),
                Some(_) => {
                    expect_not_found(ctx, got, &local, k)?;
                    m.rows.remove(&id);
                    m.removal(EventKind::Expired, &full, Some(k));
                }
                None => expect_not_found(ctx, got, &local, k)?,
            }
        }
    }
    Ok(())
}

/// Removes every row of the groups matching `pred`, group by group ascending: an `Expired` per
/// expired row by key, then one `DeleteGroup` per group with any row; returns the live rows
/// removed.
fn remove_groups(m: &mut Model, pred: impl Fn(&str) -> bool) -> u64 {
    let groups: BTreeSet<String> = m
        .rows
        .keys()
        .filter(|(g, _)| pred(g))
        .map(|(g, _)| g.clone())
        .collect();
    let now = m.now;
    let mut live = 0;
    for g in groups {
        // `rows` is ordered by (group, key), so a group's expired keys come out ascending.
        let (mut expired, mut live_here) = (Vec::new(), 0);
        for ((_, k), r) in m.rows.iter().filter(|((rg, _), _)| *rg == g) {
            if r.expires_at.is_none_or(|t| t > now) {
                live_here += 1;
            } else {
                expired.push(k.clone());
            }
        }
        for k in &expired {
            m.removal(EventKind::Expired, &g, Some(k));
        }
        m.removal(EventKind::DeleteGroup, &g, None);
        live += live_here;
    }
    m.rows.retain(|(g, _), _| !pred(g));
    live
}

// ------------------------------------------------------------------------------------------
// Raw database

type RawRow = (String, String, String, Option<i64>, i64);

fn raw_rows(path: &Path) -> Vec<RawRow> {
    let conn = raw(path);
    let mut stmt = conn
        .prepare("SELECT group_name, entry_key, entry_value, expires_at, version FROM entries ORDER BY group_name, entry_key")
        .unwrap();
    stmt.query_map([], |r| {
        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
    })
    .unwrap()
    .collect::<Result<_, _>>()
    .unwrap()
}

/// Live usage of `ns` from the raw rows at `now` (as tests/scope/support.rs `truth`).
fn truth(rows: &[RawRow], ns: &str, now: i64) -> Usage {
    let prefix = format!("{ns}:");
    let mut u = Usage::default();
    let mut groups = BTreeSet::new();
    for (g, k, v, exp, _) in rows {
        if g.starts_with(&prefix) && exp.is_none_or(|t| t > now) {
            u.keys += 1;
            u.bytes += (k.len() + v.len()) as u64;
            groups.insert(g.clone());
        }
    }
    u.groups = groups.len() as u64;
    u
}

/// (keys, bytes, ttl_keys, groups) per namespace as the counters should hold them: every
/// physical row (expired included) whose group has its first ':' at byte 2..=65 (1-based).
fn expected_counters(rows: &[RawRow]) -> BTreeMap<String, (i64, i64, i64, i64)> {
    let mut out: BTreeMap<String, (i64, i64, i64, BTreeSet<String>)> = BTreeMap::new();
    for (g, k, v, exp, _) in rows {
        let Some(pos) = g.find(':') else { continue };
        if !(1..=64).contains(&pos) {
            continue;
        }
        let e = out.entry(g[..pos].to_string()).or_default();
        e.0 += 1;
        e.1 += (k.len() + v.len()) as i64;
        e.2 += i64::from(exp.is_some());
        e.3.insert(g.clone());
    }
    out.into_iter()
        .map(|(ns, (a, b, c, d))| (ns, (a, b, c, d.len() as i64)))
        .collect()
}

fn raw_counters(path: &Path) -> BTreeMap<String, (i64, i64, i64, i64)> {
    let conn = raw(path);
    let mut stmt = conn
        .prepare("SELECT namespace, keys, bytes, ttl_keys, groups FROM scope_usage")
        .unwrap();
    stmt.query_map([], |r| {
        Ok((r.get(0)?, (r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))
    })
    .unwrap()
    .collect::<Result<BTreeMap<String, _>, _>>()
    .unwrap()
    .into_iter()
    .filter(|(_, v)| *v != (0, 0, 0, 0))
    .collect()
}

fn apply_foreign(path: &Path, op: &Foreign, m: &mut Model) {
    let conn = raw(path);
    match *op {
        Foreign::Upsert(g, k, v, ttl) => {
            let (g, k, v) = (RAW_GROUPS[g], KEYS[k], VALUES[v]);
            let exp = ttl.map(|t| m.now + t as i64);
            conn.execute(
                "INSERT INTO entries (group_name, entry_key, entry_value, expires_at, version) VALUES (?1, ?2, ?3, ?4, 0)
                 ON CONFLICT (group_name, entry_key) DO UPDATE SET entry_value = excluded.entry_value,
                   expires_at = excluded.expires_at, version = 0",
                rusqlite::params![g, k, v, exp],
            )
            .unwrap();
            m.rows.insert(
                (g.into(), k.into()),
                Row {
                    value: v.into(),
                    version: 0,
                    expires_at: exp,
                },
            );
        }
        Foreign::Delete(g, k) => {
            let (g, k) = (RAW_GROUPS[g], KEYS[k]);
            conn.execute(
                "DELETE FROM entries WHERE group_name = ?1 AND entry_key = ?2",
                [g, k],
            )
            .unwrap();
            m.rows.remove(&(g.into(), k.into()));
        }
        Foreign::Expire(g, ttl) => {
            let g = RAW_GROUPS[g];
            let exp = ttl.map(|t| m.now + t as i64);
            conn.execute(
                "UPDATE entries SET expires_at = ?2 WHERE group_name = ?1",
                rusqlite::params![g, exp],
            )
            .unwrap();
            // Like any foreign update of the value or expiry, this resets the version to 0.
            for ((rg, _), r) in m.rows.iter_mut() {
                if rg == g {
                    r.expires_at = exp;
                    r.version = 0;
                }
            }
        }
        Foreign::Move(a, b) => {
            let (a, b) = (RAW_GROUPS[a], RAW_GROUPS[b]);
            conn.execute(
                "UPDATE OR IGNORE entries SET group_name = ?2 WHERE group_name = ?1",
                [a, b],
            )
            .unwrap();
            if a != b {
                let keys: Vec<String> = m
                    .rows
                    .keys()
                    .filter(|(g, _)| g == a)
                    .map(|(_, k)| k.clone())
                    .collect();
                for k in keys {
                    if !m.rows.contains_key(&(b.to_string(), k.clone())) {
                        let r = m.rows.remove(&(a.to_string(), k.clone())).unwrap();
                        m.rows.insert((b.to_string(), k), r);
                    }
                }
            }
        }
        Foreign::Rekey(g, k1, k2) => {
            let (g, k1, k2) = (RAW_GROUPS[g], KEYS[k1], KEYS[k2]);
            conn.execute(
                "UPDATE OR IGNORE entries SET entry_key = ?3 WHERE group_name = ?1 AND entry_key = ?2",
                [g, k1, k2],
            )
            .unwrap();
            if k1 != k2
                && !m.rows.contains_key(&(g.to_string(), k2.to_string()))
                && let Some(r) = m.rows.remove(&(g.to_string(), k1.to_string()))
            {
                m.rows.insert((g.to_string(), k2.to_string()), r);
            }
        }
    }
}

// ------------------------------------------------------------------------------------------
// Harness

/// A manual clock that can run a hook on its `n`-th read.
#[derive(Default)]
struct HookClock {
    now: std::sync::atomic::AtomicI64,
    hook: std::sync::Mutex<Option<ClockHook>>,
}

/// Runs on the clock's `n`-th read: (`n`, the hook).
type ClockHook = (u8, Box<dyn FnOnce() + Send>);

impl std::fmt::Debug for HookClock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HookClock")
    }
}

static HOOK_PAUSED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

impl store::Clock for HookClock {
    fn now_ms(&self) -> i64 {
        let now = self.now.load(std::sync::atomic::Ordering::SeqCst);
        if HOOK_PAUSED.load(std::sync::atomic::Ordering::SeqCst) {
            return now;
        }
        let run = {
            let mut hook = self.hook.lock().unwrap();
            match hook.as_mut() {
                Some((n, _)) if *n > 1 => {
                    *n -= 1;
                    None
                }
                Some(_) => hook.take().map(|(_, f)| f),
                None => None,
            }
        };
        if let Some(f) = run {
            f();
        }
        now
    }
}

impl HookClock {
    fn set(&self, ms: i64) {
        self.now.store(ms, std::sync::atomic::Ordering::SeqCst);
    }
}

type Seen = Arc<std::sync::Mutex<Vec<Event>>>;

/// A raw `*` subscription, a scoped `*` subscription on namespace `a`, and a raw callback.
struct Listeners {
    sub: Subscription,
    sub_a: Subscription,
    _guard: store::CallbackGuard,
    seen: Seen,
}

fn listen(store: &Store, a: &ScopedStore) -> store::Result<Listeners> {
    let sub = store.watch_with("*", WatchOptions { capacity: 100_000 })?;
    let sub_a = a.watch_with("*", WatchOptions { capacity: 100_000 })?;
    let seen: Seen = Arc::default();
    let s2 = seen.clone();
    let guard = store.on_change(move |e| s2.lock().unwrap().push(e.clone()))?;
    Ok(Listeners {
        sub,
        sub_a,
        _guard: guard,
        seen,
    })
}

struct World {
    path: PathBuf,
    clock: Arc<HookClock>,
    store: Store,
    scoped: Vec<ScopedStore>,
    listeners: Option<Listeners>,
    /// Whether the listeners should have this op's events.
    deliver: bool,
    feed_seq: u64,
}

fn config(path: &Path, clock: &Arc<HookClock>) -> StoreConfig {
    StoreConfig::file(path)
        .with_clock(clock.clone())
        .with_purge_interval(Duration::ZERO)
}

fn open(path: &Path, clock: &Arc<HookClock>) -> (Store, Vec<ScopedStore>, Listeners) {
    let store = Store::open_with(config(path, clock)).expect("open");
    let scoped: Vec<ScopedStore> = (0..3)
        .map(|i| {
            store
                .scoped_with(ScopedConfig::new(NAMESPACES[i]).with_quota(quota_of(i)))
                .unwrap()
        })
        .collect();
    let l = listen(&store, &scoped[0]).unwrap();
    (store, scoped, l)
}

/// The whole feed after `after`, which nothing has pruned (a gap after `after` would also be
/// one after any later seq).
fn all_changes(store: &Store, after: u64) -> Vec<Change> {
    assert!(!store.changes_since(after, 1).expect("changes_since").gap);
    all_changes_since(store, after)
}

fn drain(sub: &Subscription) -> Vec<Event> {
    std::iter::from_fn(|| sub.try_recv()).collect()
}

/// Every check of the brief, after one top-level operation.
fn check_all(w: &mut World, m: &mut Model, ctx: &str) -> Result<(), TestCaseError> {
    // (c) the feed: exactly the model's pending mutations, in order.
    let changes = all_changes(&w.store, w.feed_seq);
    let pending = std::mem::take(&mut m.pending);
    let purge_commit = m.purge_commit.take();

    let got: Vec<Exp> = changes
        .iter()
        .map(|c| Exp {
            kind: c.kind,
            group: c.group.clone(),
            key: c.key.clone(),
            value: c.value.clone(),
            expires_at: c.expires_at,
            version: (c.kind == EventKind::Set).then_some(c.seq),
            at: c.at_ms,
        })
        .collect();
    prop_assert_eq!(&got, &pending, "{}: change feed", ctx);
    let mut last = w.feed_seq;
    for c in &changes {
        prop_assert!(c.seq > last, "{}: seq {} not above {}", ctx, c.seq, last);
        last = c.seq;
    }
    w.feed_seq = last;
    if last > 0 {
        prop_assert_eq!(ok(ctx, w.store.last_seq())?, last, "{}: last_seq", ctx);
    }
    // (d) the subscriptions and the callback saw the same sequence.
    let want: Vec<Event> = if w.deliver {
        changes
            .iter()
            .map(|c| Event {
                kind: c.kind,
                group: c.group.clone(),
                key: c.key.clone(),
                value: c.value.clone(),
                version: (c.kind == EventKind::Set).then_some(c.seq),
                seq: c.seq,
                at_ms: c.at_ms,
            })
            .collect()
    } else {
        Vec::new()
    };
    w.deliver = true;
    let l = w.listeners.as_ref().expect("listeners");
    let events = drain(&l.sub);
    // A listener that registered during the op may have missed a write that committed before
    // the purge following it (see `Model::purge_commit`), never part of either.
    let want = match purge_commit {
        Some(i) if i <= want.len() && events.len() == want.len() - i => want[i..].to_vec(),
        _ => want,
    };
    prop_assert_eq!(&events, &want, "{}: raw * subscription", ctx);
    prop_assert_eq!(l.sub.dropped(), 0, "{}", ctx);
    let called = std::mem::take(&mut *l.seen.lock().unwrap());
    prop_assert_eq!(&called, &want, "{}: on_change callback", ctx);
    let events_a = drain(&l.sub_a);
    let want_a: Vec<Event> = want
        .iter()
        .filter(|e| e.group.starts_with("a:"))
        .map(|e| Event {
            group: e.group["a:".len()..].to_string(),
            ..e.clone()
        })
        .collect();
    prop_assert_eq!(&events_a, &want_a, "{}: scoped a * subscription", ctx);
    // Physical rows.
    let rows = raw_rows(&w.path);
    let want_rows: Vec<RawRow> = m
        .rows
        .iter()
        .map(|((g, k), r)| {
            (
                g.clone(),
                k.clone(),
                r.value.clone(),
                r.expires_at,
                r.version as i64,
            )
        })
        .collect();
    prop_assert_eq!(&rows, &want_rows, "{}: physical rows", ctx);
    // (b) usage = truth from the rows = model.
    for (i, ns) in w.scoped.iter().enumerate() {
        let t = truth(&rows, NAMESPACES[i], m.now);
        prop_assert_eq!(t, m.usage(NAMESPACES[i]), "{}: model vs truth", ctx);
        prop_assert_eq!(ok(ctx, ns.usage())?, t, "{}: usage() of {:?}", ctx, NAMESPACES[i]);
    }
    // Counters kept by the triggers.
    prop_assert_eq!(
        raw_counters(&w.path),
        expected_counters(&rows),
        "{}: scope_usage counters",
        ctx
    );
    Ok(())
}

fn run_txn(w: &World, m: &mut Model, steps: &[Step], commit: bool, ctx: &str) -> Result<(), TestCaseError> {
    let failure: RefCell<Option<TestCaseError>> = RefCell::new(None);
    let mut tm = m.clone();
    tm.in_txn = true;
    let clock = w.clock.clone();
    let result = w.store.transaction(|tx| {
        let scoped: Vec<_> = (0..3)
            .map(|i| tx.scoped_with(ScopedConfig::new(NAMESPACES[i]).with_quota(quota_of(i))))
            .collect::<store::Result<_>>()?;
        for (j, s) in steps.iter().enumerate() {
            let sctx = format!("{ctx} / step #{j} {s:?}");
            let r = match s {
                Step::Kv(None, o) => apply(tx, None, o, &mut tm, &sctx),
                Step::Kv(Some(n), o) => apply(&scoped[*n], Some(*n), o, &mut tm, &sctx),
                Step::Advance(ms) => {
                    tm.now += *ms as i64;
                    clock.set(tm.now);
                    Ok(())
                }
            };
            let r = r.and_then(|()| {
                for (i, ns) in scoped.iter().enumerate() {
                    let u = ok(&sctx, ns.usage())?;
                    prop_assert_eq!(
                        u,
                        tm.usage(NAMESPACES[i]),
                        "{}: tx usage of {}",
                        sctx,
                        NAMESPACES[i]
                    );
                }
                Ok(())
            });
            if let Err(e) = r {
                *failure.borrow_mut() = Some(e);
                return Err(Error::NotFound {
                    op: "model",
                    group: "failed".into(),
                    key: "check".into(),
                });
            }
        }
        if commit {
            Ok(())
        } else {
            Err(Error::NotFound {
                op: "model",
                group: "rollback".into(),
                key: "k".into(),
            })
        }
    });
    if let Some(e) = failure.into_inner() {
        return Err(e);
    }
    // Time advanced inside the closure stays advanced.
    m.now = tm.now;
    if commit {
        ok(ctx, result)?;
        *m = tm;
        m.in_txn = false;
    } else {
        match result {
            Err(Error::NotFound { group, .. }) if group == "rollback" => {}
            other => return Err(fail(ctx, format!("expected the rollback error, got {other:?}"))),
        }
    }
    Ok(())
}

fn run_op(w: &mut World, m: &mut Model, op: &Op, ctx: &str) -> Result<(), TestCaseError> {
    match op {
        Op::Kv(None, o) => apply(&w.store, None, o, m, ctx)?,
        Op::Kv(Some(n), o) => apply(&w.scoped[*n].clone(), Some(*n), o, m, ctx)?,
        Op::Foreign(f) => apply_foreign(&w.path, f, m),
        Op::Rewind(ms) => {
            m.now -= *ms as i64;
            w.clock.set(m.now);
        }
        Op::Advance(ms) => {
            m.now += *ms as i64;
            w.clock.set(m.now);
        }
        Op::Txn(steps, commit) => run_txn(w, m, steps, *commit, ctx)?,
        Op::Late(inner, n) => {
            // Feed check first, so this op's expectations start clean.
            check_all(w, m, ctx)?;
            w.listeners = None;
            let slot: Arc<std::sync::Mutex<Option<store::Result<Listeners>>>> = Arc::default();
            let blocked = Arc::new(std::sync::atomic::AtomicBool::new(false));
            {
                let (store, a, slot, blocked) = (
                    w.store.clone(),
                    w.scoped[0].clone(),
                    slot.clone(),
                    blocked.clone(),
                );
                *w.clock.hook.lock().unwrap() = Some((
                    *n,
                    Box::new(move || {
                        let (tx, rx) = std::sync::mpsc::channel();
                        let slot2 = slot.clone();
                        std::thread::spawn(move || {
                            let l = listen(&store, &a);
                            *slot2.lock().unwrap() = Some(l);
                            let _ = tx.send(());
                        });
                        if rx.recv_timeout(Duration::from_secs(10)).is_err() {
                            blocked.store(true, std::sync::atomic::Ordering::SeqCst);
                        }
                    }),
                ));
            }
            let r = run_op(w, m, inner, ctx);
            let fired = w.clock.hook.lock().unwrap().take().is_none();
            r?;
            prop_assert!(
                !blocked.load(std::sync::atomic::Ordering::SeqCst),
                "{}: registering a listener during the write blocked for 10 s",
                ctx
            );
            let registered = slot.lock().unwrap().take();
            match registered {
                Some(l) => {
                    w.listeners = Some(ok(ctx, l)?);
                    w.deliver = true;
                }
                None => {
                    prop_assert!(!fired, "{}: hook fired but nothing registered", ctx);
                    w.listeners = Some(ok(ctx, listen(&w.store, &w.scoped[0]))?);
                    w.deliver = false;
                }
            }
        }
        Op::Reopen(mode) => {
            check_all(w, m, ctx)?;
            w.store.close().map_err(|e| fail(ctx, e))?;
            let l = w.listeners.take().unwrap();
            prop_assert!(
                l.sub.recv().is_none(),
                "{}: subscription disconnected on close",
                ctx
            );
            drop(l);
            let conn = raw(&w.path);
            match mode {
                1 => {
                    conn.execute_batch(
                        "DROP TRIGGER IF EXISTS scope_usage_insert; DROP TRIGGER IF EXISTS scope_usage_delete;
                         DROP TRIGGER IF EXISTS scope_usage_update; DROP TRIGGER IF EXISTS scope_usage_rekey;
                         DROP TRIGGER IF EXISTS scope_usage_move; DROP TABLE IF EXISTS scope_usage;
                         DELETE FROM store_meta WHERE name = 'scope_usage_triggers';",
                    )
                    .unwrap();
                    drop(conn);
                    apply_foreign(&w.path, &Foreign::Upsert(1, 0, 4, None), m);
                    apply_foreign(&w.path, &Foreign::Upsert(5, 1, 6, Some(2)), m);
                }
                2 => {
                    conn.execute_batch("DROP TRIGGER scope_usage_delete;").unwrap();
                    drop(conn);
                    apply_foreign(&w.path, &Foreign::Delete(0, 0), m);
                    apply_foreign(&w.path, &Foreign::Delete(0, 1), m);
                }
                3 => {
                    // A legacy `kv` table written by an older program: migrated on open with
                    // INSERT OR IGNORE (existing rows win), version 0.
                    conn.execute_batch(
                        "CREATE TABLE kv (grp TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, expires_at INTEGER,
                           PRIMARY KEY (grp, key));",
                    )
                    .unwrap();
                    let legacy: [(&str, &str, &str, Option<i64>); 4] = [
                        ("a:g1", "k1", "legacy", None),
                        ("a:g3", "k3", "zzzzzzzzzz", Some(m.now + 2)),
                        ("b:g2", "k2", "q", None),
                        ("ab:g1", "k1", "x", Some(m.now)),
                    ];
                    for (g, k, v, e) in legacy {
                        conn.execute(
                            "INSERT INTO kv VALUES (?1, ?2, ?3, ?4)",
                            rusqlite::params![g, k, v, e],
                        )
                        .unwrap();
                        m.rows.entry((g.to_string(), k.to_string())).or_insert(Row {
                            value: v.to_string(),
                            version: 0,
                            expires_at: e,
                        });
                    }
                    drop(conn);
                }
                _ => drop(conn),
            }
            let (store, scoped, l) = open(&w.path, &w.clock);
            w.store = store;
            w.scoped = scoped;
            w.listeners = Some(l);
        }
    }
    Ok(())
}

fn run(ops: &[Op]) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let clock = Arc::new(HookClock::default());
    clock.set(START_MS);
    let (store, scoped, l) = open(&path, &clock);
    let mut w = World {
        path,
        clock,
        store,
        scoped,
        listeners: Some(l),
        deliver: true,
        feed_seq: 0,
    };
    let mut m = Model {
        rows: BTreeMap::new(),
        now: START_MS,
        pending: Vec::new(),
        last_version: 0,
        purge_commit: None,
        in_txn: false,
    };
    for (i, op) in ops.iter().enumerate() {
        let ctx = format!("op #{i} {op:?}");
        run_op(&mut w, &mut m, op, &ctx)?;
        check_all(&mut w, &mut m, &ctx)?;
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
    #![proptest_config(ProptestConfig { cases: cases(), max_shrink_iters: 20_000, ..ProptestConfig::default() })]

    #[test]
    fn scoped_quota_counters_feed_and_events_match_the_model(ops in proptest::collection::vec(op(), 20..80)) {
        run(&ops)?;
    }
}

// ------------------------------------------------------------------------------------------
// Concurrent variant

const CQ: Quota = Quota {
    max_keys: 12,
    max_groups: 3,
    max_bytes: 200,
};
const CNS: &str = "q";

fn within_quota(u: Usage) -> bool {
    u.keys <= CQ.max_keys && u.groups <= CQ.max_groups && u.bytes <= CQ.max_bytes
}

/// One round: `threads` writers on two separately opened stores of one file, a clock thread,
/// a purge thread (on the second store) and a monitor checking consistent raw snapshots.
fn concurrent_round(seed: u64, threads: usize, ops_per_thread: usize) {
    use std::sync::atomic::{AtomicBool, Ordering};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let clock = Arc::new(HookClock::default());
    clock.set(START_MS);
    let s1 = Store::open_with(config(&path, &clock)).unwrap();
    let s2 = Store::open_with(
        StoreConfig::file(&path)
            .with_clock(clock.clone())
            .with_purge_interval(Duration::from_millis(3)),
    )
    .unwrap();
    let sub = s1.watch_with("*", WatchOptions { capacity: 1 << 20 }).unwrap();
    let done = Arc::new(AtomicBool::new(false));

    let ticker = {
        let (clock, done) = (clock.clone(), done.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::SeqCst) {
                clock.now.fetch_add(1, Ordering::SeqCst);
                std::thread::sleep(Duration::from_micros(300));
            }
        })
    };
    let monitor = {
        let (clock, done, path) = (clock.clone(), done.clone(), path.clone());
        std::thread::spawn(move || -> Result<usize, String> {
            let conn = raw(&path);
            let mut checks = 0;
            while !done.load(Ordering::SeqCst) {
                conn.execute_batch("BEGIN").unwrap();
                let rows: Vec<RawRow> = conn
                    .prepare("SELECT group_name, entry_key, entry_value, expires_at, version FROM entries ORDER BY 1, 2")
                    .unwrap()
                    .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))
                    .unwrap()
                    .collect::<Result<_, _>>()
                    .unwrap();
                let counters: BTreeMap<String, (i64, i64, i64, i64)> = conn
                    .prepare("SELECT namespace, keys, bytes, ttl_keys, groups FROM scope_usage")
                    .unwrap()
                    .query_map([], |r| {
                        Ok((r.get(0)?, (r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))
                    })
                    .unwrap()
                    .collect::<Result<BTreeMap<String, _>, _>>()
                    .unwrap()
                    .into_iter()
                    .filter(|(_, v)| *v != (0, 0, 0, 0))
                    .collect();
                conn.execute_batch("COMMIT").unwrap();
                let now = clock.now.load(Ordering::SeqCst);
                if counters != expected_counters(&rows) {
                    return Err(format!(
                        "counters {counters:?} != rows {:?}",
                        expected_counters(&rows)
                    ));
                }
                let t = truth(&rows, CNS, now);
                if !within_quota(t) {
                    return Err(format!("live usage {t:?} at {now} over the quota; rows {rows:?}"));
                }
                checks += 1;
            }
            Ok(checks)
        })
    };

    let mut workers = Vec::new();
    for t in 0..threads {
        let store = if t % 2 == 0 { s1.clone() } else { s2.clone() };
        let ns = store.scoped_with(ScopedConfig::new(CNS).with_quota(CQ)).unwrap();
        let from_s1 = t % 2 == 0;
        workers.push(std::thread::spawn(move || {
            let mut rng = Rng(seed.wrapping_mul(31).wrapping_add(t as u64 + 1) | 1);
            let mut sets: Vec<(u64, String, String, String)> = Vec::new();
            let mut quota_errors = 0u64;
            for _ in 0..ops_per_thread {
                let g = format!("g{}", rng.below(4));
                let k = format!("k{}", rng.below(16));
                let v = "v".repeat(rng.below(41) as usize);
                let r: store::Result<()> = match rng.below(20) {
                    0..=4 => ns
                        .set(&g, &k, &v)
                        .map(|ver| sets.push((ver, g.clone(), k.clone(), v.clone()))),
                    5..=11 => ns
                        .set_with_ttl(&g, &k, &v, Duration::from_millis(rng.below(15)))
                        .map(|ver| sets.push((ver, g.clone(), k.clone(), v.clone()))),
                    12..=14 => ns.delete(&g, &k).map(drop),
                    15..=16 => match ns.get(&g, &k) {
                        Err(e) if e.is_not_found() => Ok(()),
                        other => other.map(drop),
                    },
                    17 => ns.increment(&g, "ctr", 1).map(drop).or_else(|e| {
                        if e.kind() == ErrorKind::InvalidInput {
                            Ok(())
                        } else {
                            Err(e)
                        }
                    }),
                    18 => ns.purge_expired().map(drop),
                    _ => {
                        let k2 = format!("k{}", rng.below(30));
                        let v2 = "w".repeat(rng.below(20) as usize);
                        ns.transaction(|tx| {
                            let a = tx.set(&g, &k, &v)?;
                            let b = tx.set_with_ttl("g0", &k2, &v2, Duration::from_millis(5))?;
                            let u = tx.usage()?;
                            assert!(within_quota(u), "usage inside a transaction {u:?}");
                            Ok((a, b))
                        })
                        .map(|(a, b)| {
                            sets.push((a, g.clone(), k.clone(), v.clone()));
                            sets.push((b, "g0".into(), k2.clone(), v2.clone()));
                        })
                    }
                };
                match r {
                    Ok(()) => {}
                    Err(e) if e.is_quota_exceeded() => quota_errors += 1,
                    Err(e) => panic!("seed {seed} thread {t}: unexpected error {e}"),
                }
            }
            (from_s1, sets, quota_errors)
        }));
    }
    let results: Vec<_> = workers.into_iter().map(|h| h.join().unwrap()).collect();
    done.store(true, Ordering::SeqCst);
    ticker.join().unwrap();
    let checks = monitor
        .join()
        .unwrap()
        .unwrap_or_else(|e| panic!("seed {seed}: monitor: {e}"));
    assert!(checks > 0);
    drop(s2); // stops its purge thread
    let quota_errors: u64 = results.iter().map(|r| r.2).sum();
    assert!(quota_errors > 0, "seed {seed}: the quota was never reached");

    // Replay the feed: it must rebuild the rows exactly, and no committed state may exceed the quota.
    let changes = all_changes(&s1, 0);
    let mut state: BTreeMap<(String, String), (String, Option<i64>, u64)> = BTreeMap::new();
    let mut last = 0;
    let mut last_at = i64::MIN;
    let by_seq: BTreeMap<u64, &Change> = changes.iter().map(|c| (c.seq, c)).collect();
    for c in &changes {
        assert!(
            c.seq > last && c.at_ms >= last_at,
            "seed {seed}: feed order {c:?}"
        );
        (last, last_at) = (c.seq, c.at_ms);
        let key = || (c.group.clone(), c.key.clone().unwrap());
        match c.kind {
            EventKind::Set => {
                state.insert(key(), (c.value.clone().unwrap(), c.expires_at, c.seq));
                let rows: Vec<RawRow> = state
                    .iter()
                    .map(|((g, k), (v, e, s))| (g.clone(), k.clone(), v.clone(), *e, *s as i64))
                    .collect();
                let u = truth(&rows, CNS, c.at_ms);
                assert!(
                    within_quota(u),
                    "seed {seed}: after {c:?} the live usage is {u:?}"
                );
            }
            EventKind::Delete => assert!(
                state
                    .remove(&key())
                    .is_some_and(|r| r.1.is_none_or(|t| t > c.at_ms)),
                "seed {seed}: {c:?} of a missing or expired row"
            ),
            EventKind::Expired => assert!(
                state
                    .remove(&key())
                    .is_some_and(|r| r.1.is_some_and(|t| t <= c.at_ms)),
                "seed {seed}: {c:?} of a missing or live row"
            ),
            EventKind::DeleteGroup => state.retain(|(g, _), _| *g != c.group),
        }
    }
    let rows = raw_rows(&path);
    let replayed: Vec<RawRow> = state
        .iter()
        .map(|((g, k), (v, e, s))| (g.clone(), k.clone(), v.clone(), *e, *s as i64))
        .collect();
    assert_eq!(rows, replayed, "seed {seed}: the feed does not rebuild the rows");
    // Every successful write is in the feed under its version.
    for (_, sets, _) in &results {
        for (ver, g, k, v) in sets {
            let c = by_seq
                .get(ver)
                .unwrap_or_else(|| panic!("seed {seed}: version {ver} not in the feed"));
            assert_eq!(
                (c.kind, c.group.as_str(), c.key.as_deref(), c.value.as_deref()),
                (
                    EventKind::Set,
                    format!("{CNS}:{g}").as_str(),
                    Some(k.as_str()),
                    Some(v.as_str())
                ),
                "seed {seed}"
            );
        }
    }
    // s1's subscription: a subsequence of the feed, holding every version s1's writers got.
    let events = drain(&sub);
    let mut prev = 0;
    for e in &events {
        assert!(e.seq > prev, "seed {seed}: event order");
        prev = e.seq;
        let c = by_seq
            .get(&e.seq)
            .unwrap_or_else(|| panic!("seed {seed}: event {e:?} not in the feed"));
        assert_eq!(
            (e.kind, &e.group, &e.key, &e.value, e.at_ms),
            (c.kind, &c.group, &c.key, &c.value, c.at_ms),
            "seed {seed}"
        );
    }
    let seen: BTreeSet<u64> = events.iter().map(|e| e.seq).collect();
    for (from_s1, sets, _) in &results {
        if *from_s1 {
            for (ver, ..) in sets {
                assert!(
                    seen.contains(ver),
                    "seed {seed}: s1 subscription missed version {ver}"
                );
            }
        }
    }
    // Final usage: within the quota and equal to the rows.
    let now = clock.now.load(Ordering::SeqCst);
    let ns = s1.scoped_with(ScopedConfig::new(CNS).with_quota(CQ)).unwrap();
    let t = truth(&rows, CNS, now);
    assert!(within_quota(t), "seed {seed}: final {t:?}");
    assert_eq!(ns.usage().unwrap(), t, "seed {seed}: final usage()");
    assert_eq!(
        raw_counters(&path),
        expected_counters(&rows),
        "seed {seed}: final counters"
    );
}

#[test]
fn concurrent_scoped_writers_never_overshoot_and_the_feed_rebuilds_the_rows() {
    let rounds: u64 = std::env::var("CONCURRENT_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(4);
    for seed in 1..=rounds {
        concurrent_round(seed, 6, 400);
    }
}
