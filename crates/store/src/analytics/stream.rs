//! [`Analytics::query_arrow`]'s result: record batches streamed from DuckDB as the caller reads
//! them, so a large result never sits in memory whole.
//!
//! The iterator owns the connection's lock and the statement DuckDB streams from, together
//! (`self_cell` ties the statement's borrow to the guard it borrows from, without `unsafe`).
//! Holding the lock means another call on the same `Analytics` waits until the iterator is
//! read to its end or dropped; on the iterating thread itself such a call would wait forever,
//! so it is refused instead (see [`Analytics::check_not_streaming`]).

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};

use duckdb::Connection;
use duckdb::arrow::record_batch::RecordBatch;
use parking_lot::MutexGuard;

use super::{Analytics, Value, prepare, refuse_deep_params, refuse_deep_result};
use crate::error::{Error, Result};
use crate::kv::store::thread_token;

type Statement<'conn> = duckdb::Statement<'conn>;

self_cell::self_cell!(
    /// The connection's lock and the statement streaming from that connection.
    struct Streaming<'a> {
        owner: MutexGuard<'a, Option<Connection>>,
        #[covariant]
        dependent: Statement,
    }
);

const OP: &str = "Analytics::query_arrow";

/// Record batches of a query, from [`Analytics::query_arrow`], fetched from DuckDB one at a time
/// as they are read. Holds the connection until it is read to its end or dropped.
///
/// # Examples
/// ```
/// let db = store::analytics::Analytics::in_memory()?;
/// let rows: usize = db.query_arrow("SELECT * FROM range(5000)", &[])?.map(|b| b.map(|b| b.num_rows())).sum::<Result<_, _>>()?;
/// assert_eq!(rows, 5000);
/// # Ok::<(), store::Error>(())
/// ```
pub struct ArrowBatches<'a> {
    /// `None` once the result is exhausted or failed: the lock is released then.
    streaming: Option<Streaming<'a>>,
    /// The owning handle's record of which thread is iterating.
    reader: &'a AtomicUsize,
}

impl Analytics {
    /// Runs a query and returns its result as Arrow record batches, streamed: DuckDB computes
    /// them as they are read. The connection stays locked until the iterator is read to its end
    /// or dropped; other threads' calls on this handle wait for that, and this thread's calls
    /// are refused with `InvalidInput { field: "connection" }` (they would wait forever).
    ///
    /// # Errors
    /// `InvalidInput { field: "sql" }` for text holding no statement or more than one;
    /// `InvalidInput { field: "connection" }` on a thread that holds the connection (reading
    /// another result, or inside `with_connection`); `DuckDb` if the query fails to run
    /// (errors while fetching come as items of the iterator).
    ///
    /// # Examples
    /// ```
    /// let db = store::analytics::Analytics::in_memory()?;
    /// let batches: Vec<_> = db.query_arrow("SELECT 1 AS x", &[])?.collect::<Result<_, _>>()?;
    /// assert_eq!(batches[0].num_rows(), 1);
    /// # Ok::<(), store::Error>(())
    /// ```
    pub fn query_arrow(&self, sql: &str, params: &[Value]) -> Result<ArrowBatches<'_>> {
        self.check_free(OP)?;
        let streaming = Streaming::try_new(self.conn.lock(), |guard| {
            let conn = guard.as_ref().ok_or(Error::Closed {
                op: OP,
                what: "analytics database",
            })?;
            refuse_deep_params(OP, params)?;
            let mut stmt = prepare(OP, conn, sql)?;
            let schema = stmt
                .stream_arrow(duckdb::params_from_iter(params.iter()))
                .map(|stream| stream.get_schema())
                .map_err(|e| Error::duckdb(OP, "execute", e))?;
            for field in schema.fields() {
                refuse_deep_result(OP, field.name(), field.data_type())?;
            }
            Ok::<_, Error>(stmt)
        })?;
        self.reader.store(thread_token(), Ordering::Relaxed);
        Ok(ArrowBatches {
            streaming: Some(streaming),
            reader: &self.reader,
        })
    }

    /// Refuses a call on the thread that is reading an [`ArrowBatches`] of this handle, which
    /// holds the connection's lock: waiting for it there would never end.
    pub(crate) fn check_not_streaming(&self, op: &'static str) -> Result<()> {
        if self.reader.load(Ordering::Relaxed) == thread_token() {
            return Err(Error::invalid(
                op,
                "connection",
                "this thread is still reading a query_arrow result, which holds the connection; \
                 read it to the end or drop it first",
            ));
        }
        Ok(())
    }
}

impl ArrowBatches<'_> {
    fn finish(&mut self) {
        // Cleared while still holding the lock: once it is released, another thread's
        // `query_arrow` may record itself here.
        self.reader.store(0, Ordering::Relaxed);
        self.streaming = None;
    }
}

impl Iterator for ArrowBatches<'_> {
    type Item = Result<RecordBatch>;

    fn next(&mut self) -> Option<Self::Item> {
        let fetched = self.streaming.as_ref()?.borrow_dependent().step();
        match fetched {
            Ok(Some(batch)) => Some(Ok(RecordBatch::from(&batch))),
            Ok(None) => {
                self.finish();
                None
            }
            Err(e) => {
                self.finish();
                Some(Err(Error::duckdb(OP, "fetch a batch", e)))
            }
        }
    }
}

impl Drop for ArrowBatches<'_> {
    fn drop(&mut self) {
        if self.streaming.is_some() {
            self.finish();
        }
    }
}

impl fmt::Debug for ArrowBatches<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ArrowBatches")
            .field("finished", &self.streaming.is_none())
            .finish()
    }
}
