//! [`Transaction`]: several KV operations committed atomically.

use std::cell::RefCell;

use rusqlite::Connection;

use crate::error::{Error, Result, SqliteContext};
use crate::kv::Store;
use crate::kv::access::{Access, OpNames, Recording, Staged, Statements, WriteCtx, op_names, sealed::Sealed};
use crate::kv::store::Inner;
use crate::kv::versions::Versions;

op_names!(TXN_OPS, "Transaction");

/// An open write transaction, handed to the closure of [`Store::transaction`].
///
/// It offers the whole [`Kv`](crate::Kv) API with read-your-writes: reads see the
/// transaction's own pending writes. It cannot leave its closure and is not `Send`.
///
/// # Failure
/// Validation errors, conflicts and quota errors never leave partial writes behind. If a
/// *database* error interrupts a multi-row operation (for example `delete_prefix`), return the
/// error from the closure (as `?` does) so the whole transaction rolls back. On some errors
/// (a full disk, an I/O error) SQLite rolls the whole transaction back itself; every later
/// call on `tx` then fails with `InvalidInput { field: "transaction" }`, and so does the
/// transaction, even if the closure swallowed the error and returned `Ok`.
///
/// # Examples
/// ```
/// use store::{Kv, Store};
/// let store = Store::in_memory()?;
/// store.transaction(|tx| {
///     tx.set("accounts", "alice", "90")?;
///     tx.set("accounts", "bob", "110")?;
///     assert_eq!(tx.count("accounts")?, 2); // sees its own writes
///     Ok(())
/// })?;
/// assert_eq!(store.get("accounts", "bob")?, "110");
/// # Ok::<(), store::Error>(())
/// ```
pub struct Transaction<'a> {
    inner: &'a Inner,
    conn: &'a Connection,
    // Shared references only, so `Transaction<'a>` is covariant and can be re-borrowed by
    // scoped views.
    state: &'a RefCell<TxState>,
}

/// The transaction's copy of the writer's allocator and staged events; written back on success.
struct TxState {
    versions: Versions,
    staged: Staged,
    recording: Recording,
}

impl Store {
    /// Runs `f` in one SQLite write transaction (`BEGIN IMMEDIATE`).
    ///
    /// `Ok` commits, then the staged events are published in call order. `Err(e)` rolls back,
    /// publishes nothing and returns `e` unchanged. A panic rolls back, releases the lock and
    /// resumes the panic. Calling the `Store` itself (rather than `tx`) from inside the closure
    /// returns `InvalidInput { field: "transaction" }`; transactions do not nest.
    ///
    /// # Examples
    /// ```
    /// use store::{Error, Kv, Store};
    /// let store = Store::in_memory()?;
    /// let result: Result<(), Error> = store.transaction(|tx| {
    ///     tx.set("g", "k", "v")?;
    ///     Err(Error::NotFound { op: "example", group: "g".into(), key: "x".into() })
    /// });
    /// assert!(result.is_err());
    /// assert!(!store.exists("g", "k")?); // rolled back
    /// # Ok::<(), store::Error>(())
    /// ```
    pub fn transaction<T>(&self, f: impl FnOnce(&Transaction<'_>) -> Result<T>) -> Result<T> {
        self.transaction_as("Store::transaction", f)
    }

    /// [`Store::transaction`], reporting its errors under `op` (a scoped handle's own name).
    pub(crate) fn transaction_as<T>(
        &self,
        op: &'static str,
        f: impl FnOnce(&Transaction<'_>) -> Result<T>,
    ) -> Result<T> {
        let inner = self.inner();
        inner.run_write(op, false, |conn, versions, staged, recording| {
            let state = RefCell::new(TxState {
                versions: *versions,
                staged: std::mem::take(staged),
                recording,
            });
            let tx = Transaction {
                inner,
                conn,
                state: &state,
            };
            // Reset even if `f` panics, so the thread is not locked out of the store afterwards.
            struct Leave<'i>(&'i Inner);
            impl Drop for Leave<'_> {
                fn drop(&mut self) {
                    self.0.leave_transaction();
                }
            }
            inner.enter_transaction();
            let _leave = Leave(inner);
            let result = f(&tx);
            let state = state.into_inner();
            *versions = state.versions;
            *staged = state.staged;
            result
        })
    }
}

impl std::fmt::Debug for Transaction<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transaction").finish_non_exhaustive()
    }
}

impl Sealed for Transaction<'_> {
    fn ops(&self) -> &'static OpNames {
        &TXN_OPS
    }

    fn now(&self) -> i64 {
        self.inner.now()
    }

    fn in_transaction(&self) -> bool {
        true
    }

    fn max_value_bytes(&self) -> usize {
        self.inner.max_value_bytes()
    }

    fn read<T>(&self, op: &'static str, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T> {
        self.check_active(op)?;
        f(self.conn).ctx(op, "read in transaction")
    }

    fn write<T>(
        &self,
        op: &'static str,
        now: i64,
        _statements: Statements,
        f: impl FnOnce(&mut WriteCtx<'_>) -> Result<T>,
    ) -> Result<T> {
        self.check_active(op)?;
        let mut state = self.state.try_borrow_mut().map_err(|_| {
            Error::invalid(
                op,
                "transaction",
                "the transaction is busy with another operation; call it again after that one returns",
            )
        })?;
        let TxState {
            versions,
            staged,
            recording,
        } = &mut *state;
        f(&mut WriteCtx::new(
            self.conn, now, op, versions, staged, *recording,
        ))
    }
}

impl Access for Transaction<'_> {}

impl Transaction<'_> {
    /// Refuses to run a statement once the store is closed, or once SQLite has rolled the
    /// transaction back on its own. It does that on some errors (a full disk, an I/O error, out
    /// of memory); a closure that caught such an error and went on would otherwise run its
    /// later statements in autocommit mode, each committed alone and outside the transaction.
    fn check_active(&self, op: &'static str) -> Result<()> {
        if !self.inner.is_open() {
            return Err(Error::closed(op));
        }
        if self.conn.is_autocommit() {
            return Err(rolled_back(op));
        }
        Ok(())
    }
}

/// The error for a transaction SQLite already rolled back after an error inside it.
pub(crate) fn rolled_back(op: &'static str) -> Error {
    Error::invalid(
        op,
        "transaction",
        "SQLite rolled this transaction back after an earlier error in it (a full disk, an I/O \
         error); nothing of it was written: return that error from the closure (as `?` does), \
         then retry the transaction",
    )
}
