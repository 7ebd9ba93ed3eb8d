//! SPEC §4 and §6 scoped transactions: quota checks count the transaction's pending writes (and
//! deletes), a quota error returned from the closure rolls everything back, and the same holds for
//! `Transaction::scoped` / `scoped_with` views inside a raw transaction.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Duration;

use store::{Kv, QuotaLimit, ScopedConfig};

use crate::common::{expect_invalid, file_store, memory_store_with};
use crate::support::{NS_A, NS_B, changes_since, drain, expect_quota, quota, scoped, usage};

#[test]
fn third_pending_write_exceeds_max_keys_2_and_returning_it_rolls_back_all_three() {
    let f = file_store();
    let ns = scoped(&f.store, NS_A, quota(2, 0, 0));
    let sub = ns.watch("*").unwrap();
    let seq = f.store.last_seq().unwrap();
    let err = ns
        .transaction(|tx| {
            tx.set("a", "k1", "v")?;
            tx.set_key("k2", "v")?;
            assert_eq!(tx.usage()?.keys, 2, "pending writes are counted");
            tx.set("b", "k3", "v")?;
            Ok(())
        })
        .unwrap_err();
    assert_eq!(err.op(), "ScopedTransaction::set");
    expect_quota(Err::<(), _>(err), NS_A, QuotaLimit::Keys, 2, 3);
    assert_eq!(f.raw_rows(), 0, "all three rolled back");
    assert_eq!(f.store.last_seq().unwrap(), seq);
    assert!(drain(&sub).is_empty());
    assert_eq!(ns.usage().unwrap(), usage(0, 0, 0));
    // The store stays usable and the quota still applies afterwards.
    ns.set("a", "k1", "v").unwrap();
    ns.set("a", "k2", "v").unwrap();
    expect_quota(ns.set("a", "k3", "v"), NS_A, QuotaLimit::Keys, 2, 3);
}

#[test]
fn handling_a_quota_error_inside_the_closure_keeps_the_earlier_pending_writes() {
    let f = file_store();
    let ns = scoped(&f.store, NS_A, quota(2, 0, 0));
    ns.transaction(|tx| {
        tx.set("a", "k1", "v")?;
        tx.set("a", "k2", "v")?;
        expect_quota(tx.set("a", "k3", "v"), NS_A, QuotaLimit::Keys, 2, 3);
        expect_quota(tx.increment("b", "n", 1), NS_A, QuotaLimit::Keys, 2, 3);
        Ok(())
    })
    .unwrap();
    assert_eq!(ns.get_all("a").unwrap().len(), 2);
    assert!(!ns.exists("a", "k3").unwrap());
    assert_eq!(f.raw_rows(), 2);
}

#[test]
fn refused_writes_inside_a_transaction_use_up_no_version() {
    // A set near a limit is refused by the one-statement check first, then judged exactly:
    // neither refusal may consume a version, and a live key's upsert at the limit (refused
    // by the first, passed by the second) takes the next one.
    let (f, (memory, _clock)) = (file_store(), memory_store_with(|c| c.with_change_feed(true)));
    for store in [&f.store, &memory] {
        let ns = scoped(store, NS_A, quota(2, 0, 0));
        let (first, last) = ns
            .transaction(|tx| {
                let first = tx.set("a", "k1", "v")?;
                let second = tx.set("a", "k2", "v")?;
                expect_quota(tx.set("a", "k3", "v"), NS_A, QuotaLimit::Keys, 2, 3);
                expect_quota(
                    tx.set_with_ttl("b", "k4", "v", Duration::from_secs(60)),
                    NS_A,
                    QuotaLimit::Keys,
                    2,
                    3,
                );
                let again = tx.set("a", "k1", "w")?;
                assert_eq!(
                    (second, again),
                    (first + 1, first + 2),
                    "versions stay consecutive"
                );
                Ok((first, again))
            })
            .unwrap();
        assert_eq!(store.set("raw", "k", "v").unwrap(), last + 1);
        expect_quota(ns.set("a", "k5", "v"), NS_A, QuotaLimit::Keys, 2, 3);
        assert_eq!(
            ns.set("a", "k2", "x").unwrap(),
            last + 2,
            "a refused autocommit set takes no version either"
        );
        let seqs: Vec<u64> = changes_since(store, 0).iter().map(|c| c.seq).collect();
        assert_eq!(
            seqs,
            (first..=last + 2).collect::<Vec<_>>(),
            "the feed has no gaps"
        );
    }
}

#[test]
fn writes_another_programs_trigger_refuses_inside_a_transaction_use_up_no_version() {
    // h167: a write SQLite refuses (here a foreign trigger's RAISE) is an error the closure
    // may handle and go on; like a quota refusal, it must not consume a version.
    let f = file_store();
    let raw = rusqlite::Connection::open(f.path()).unwrap();
    raw.execute_batch(
        "CREATE TRIGGER refuse_bad BEFORE INSERT ON entries WHEN NEW.entry_key = 'bad' \
         BEGIN SELECT RAISE(ABORT, 'bad keys are refused'); END;",
    )
    .unwrap();
    drop(raw);
    let limited = scoped(&f.store, NS_A, quota(100, 0, 0));
    let (first, last) = f
        .store
        .transaction(|tx| {
            let first = tx.set("g", "a", "v")?;
            assert!(
                tx.set("g", "bad", "v").is_err(),
                "unscoped write refused by the trigger"
            );
            let second = tx.set("g", "b", "v")?;
            assert_eq!(second, first + 1);
            Ok((first, second))
        })
        .unwrap();
    let (third, fourth) = limited
        .transaction(|tx| {
            let third = tx.set("g", "a", "v")?;
            assert!(
                tx.set("g", "bad", "v").is_err(),
                "scoped write refused by the trigger"
            );
            Ok((third, tx.set("g", "b", "v")?))
        })
        .unwrap();
    assert_eq!((third, fourth), (last + 1, last + 2), "versions stay consecutive");
    let seqs: Vec<u64> = changes_since(&f.store, 0).iter().map(|c| c.seq).collect();
    assert_eq!(seqs, (first..=fourth).collect::<Vec<_>>(), "the feed has no gaps");
}

#[test]
fn spec_scenario_scoped_quota_4_2_groups_inside_and_raw_names_committed() {
    let f = file_store();
    let ns = scoped(&f.store, NS_A, quota(4, 2, 0));
    ns.transaction(|tx| {
        tx.set_key("greeting", "hi")?;
        tx.set("preferences", "theme", "dark")?;
        tx.set("preferences", "lang", "en")?;
        assert_eq!(tx.groups("")?, ["default", "preferences"]);
        assert_eq!(tx.count_all("")?, 3);
        expect_quota(tx.set("extra", "k", "v"), NS_A, QuotaLimit::Groups, 2, 3);
        tx.set_key("farewell", "bye")?;
        expect_quota(tx.set_key("more", "x"), NS_A, QuotaLimit::Keys, 4, 5);
        assert_eq!(tx.usage()?, usage(4, 2, 10 + 9 + 6 + 11));
        Ok(())
    })
    .unwrap();
    assert_eq!(f.store.get("tenant-a:default", "greeting").unwrap(), "hi");
    assert_eq!(f.store.get("tenant-a:default", "farewell").unwrap(), "bye");
    assert_eq!(f.store.get("tenant-a:preferences", "theme").unwrap(), "dark");
    assert_eq!(
        f.store.groups("").unwrap(),
        ["tenant-a:default", "tenant-a:preferences"]
    );
    assert_eq!(ns.usage().unwrap(), usage(4, 2, 36));
}

#[test]
fn transaction_scoped_with_counts_pending_writes_and_rolls_back_on_quota_error() {
    let f = file_store();
    let err = f
        .store
        .transaction(|tx| {
            tx.set("global", "k", "v")?;
            let ns = tx.scoped_with(ScopedConfig::new(NS_A).with_quota(quota(2, 0, 0)))?;
            assert_eq!(ns.namespace(), NS_A);
            ns.set("a", "k1", "v")?;
            ns.set("b", "k2", "v")?;
            ns.set("c", "k3", "v")?;
            Ok(())
        })
        .unwrap_err();
    assert_eq!(err.op(), "ScopedTransaction::set");
    expect_quota(Err::<(), _>(err), NS_A, QuotaLimit::Keys, 2, 3);
    assert_eq!(f.raw_rows(), 0, "the raw write rolled back too");
}

#[test]
fn transaction_scoped_with_quota_4_2_commits_under_raw_names() {
    let f = file_store();
    f.store
        .transaction(|tx| {
            let ns = tx.scoped_with(ScopedConfig::new(NS_A).with_quota(quota(4, 2, 0)))?;
            ns.set_key("greeting", "hi")?;
            ns.set("preferences", "theme", "dark")?;
            assert_eq!(ns.groups("")?, ["default", "preferences"]);
            expect_quota(ns.set("extra", "k", "v"), NS_A, QuotaLimit::Groups, 2, 3);
            assert_eq!(ns.get_key("greeting")?, "hi");
            assert!(ns.exists_key("greeting")?);
            Ok(())
        })
        .unwrap();
    assert_eq!(
        f.store.groups("").unwrap(),
        ["tenant-a:default", "tenant-a:preferences"]
    );
}

#[test]
fn raw_writes_in_the_same_transaction_count_toward_a_scoped_views_quota() {
    let f = file_store();
    f.store
        .transaction(|tx| {
            tx.set("tenant-a:raw", "k", "v")?; // unchecked but counted
            let ns = tx.scoped_with(ScopedConfig::new(NS_A).with_quota(quota(2, 0, 0)))?;
            assert_eq!(ns.usage()?.keys, 1);
            ns.set("g", "k1", "v")?;
            expect_quota(ns.set("g", "k2", "v"), NS_A, QuotaLimit::Keys, 2, 3);
            // Two views on different namespaces keep separate quotas.
            let other = tx.scoped_with(ScopedConfig::new(NS_B).with_quota(quota(1, 0, 0)))?;
            other.set("g", "k1", "v")?;
            expect_quota(other.set("g", "k2", "v"), NS_B, QuotaLimit::Keys, 1, 2);
            // An unlimited view of the same namespace is not checked.
            tx.scoped(NS_A)?.set("g", "k2", "v")?;
            assert_eq!(ns.usage()?.keys, 3);
            Ok(())
        })
        .unwrap();
    assert_eq!(f.store.count_all("tenant-a:").unwrap(), 3);
    assert_eq!(f.store.count_all("tenant-b:").unwrap(), 1);
}

#[test]
fn pending_deletes_free_slots_for_later_writes_in_the_same_transaction() {
    let f = file_store();
    let ns = scoped(&f.store, NS_A, quota(2, 1, 12));
    ns.set("g", "a", "12345").unwrap(); // 6
    ns.set("g", "b", "12345").unwrap(); // 6
    ns.transaction(|tx| {
        expect_quota(tx.set("g", "c", ""), NS_A, QuotaLimit::Keys, 2, 3);
        assert!(tx.delete("g", "a")?);
        expect_quota(tx.set("h", "c", ""), NS_A, QuotaLimit::Groups, 1, 2);
        expect_quota(tx.set("g", "c", "123456"), NS_A, QuotaLimit::Bytes, 12, 13);
        tx.set("g", "c", "12345")?;
        assert_eq!(tx.delete_group("g")?, 2);
        tx.set("h", "c", "12345678901")?;
        Ok(())
    })
    .unwrap();
    assert_eq!(ns.usage().unwrap(), usage(1, 1, 12));
    assert_eq!(ns.groups("").unwrap(), ["h"]);
}

#[test]
fn usage_inside_a_transaction_includes_pending_writes_and_is_restored_by_rollback() {
    let f = file_store();
    let ns = scoped(&f.store, NS_A, quota(0, 0, 0));
    ns.set("g", "k", "v").unwrap();
    let before = ns.usage().unwrap();
    let result: store::Result<()> = ns.transaction(|tx| {
        tx.set("g", "k2", "vv")?;
        tx.set("h", "k", "v")?;
        tx.delete("g", "k")?;
        assert_eq!(tx.usage()?, usage(2, 2, 6));
        Err(tx.get("g", "k").unwrap_err())
    });
    assert!(result.unwrap_err().is_not_found());
    assert_eq!(ns.usage().unwrap(), before);
    assert_eq!(ns.usage().unwrap(), usage(1, 1, 2));
}

#[test]
fn a_panicking_scoped_transaction_rolls_back_and_leaves_the_counters_unchanged() {
    let f = file_store();
    let ns = scoped(&f.store, NS_A, quota(3, 0, 0));
    ns.set("g", "k", "v").unwrap();
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        ns.transaction(|tx| -> store::Result<()> {
            tx.set("g", "k2", "v")?;
            tx.set("h", "k3", "v")?;
            panic!("boom")
        })
    }));
    assert!(outcome.is_err());
    assert_eq!(ns.usage().unwrap(), usage(1, 1, 2));
    ns.set("g", "k2", "v").unwrap();
    ns.set("h", "k3", "v").unwrap();
    expect_quota(ns.set("h", "k4", "v"), NS_A, QuotaLimit::Keys, 3, 4);
}

#[test]
fn scoped_store_calls_inside_a_transaction_on_the_same_thread_are_rejected() {
    let f = file_store();
    let ns = f.store.scoped(NS_A).unwrap();
    f.store
        .transaction(|_tx| {
            expect_invalid(ns.set("g", "k", "v"), "transaction");
            expect_invalid(ns.usage(), "transaction");
            Ok(())
        })
        .unwrap();
    ns.transaction(|_tx| {
        expect_invalid(ns.get("g", "k"), "transaction");
        // A nested scoped transaction names itself, not the raw store's transaction.
        let nested = ns.transaction(|_| Ok(()));
        assert_eq!(
            nested.as_ref().map_err(|e| e.op()).unwrap_err(),
            "ScopedStore::transaction"
        );
        expect_invalid(nested, "transaction");
        Ok(())
    })
    .unwrap();
}

#[test]
fn transaction_scoped_rejects_invalid_namespaces() {
    let f = file_store();
    f.store
        .transaction(|tx| {
            expect_invalid(tx.scoped("a:b").map(drop), "namespace");
            expect_invalid(tx.scoped_with(ScopedConfig::new("")).map(drop), "namespace");
            Ok(())
        })
        .unwrap();
}
