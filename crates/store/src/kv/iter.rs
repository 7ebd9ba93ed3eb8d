//! Lazy keyset iterators: each chunk of [`CHUNK_ROWS`] rows is its own read (its own snapshot),
//! and no connection is held between `next()` calls.

use std::collections::VecDeque;
use std::fmt;

use crate::error::{Error, Result};
use crate::kv::Entry;
use crate::kv::sqlite::Cursor;

/// Rows fetched per chunk.
pub(crate) const CHUNK_ROWS: i64 = 256;

/// Fetches the chunk after a cursor (`None`: the first), returning it and the cursor after
/// its last row.
type Fetch<'a, T> = Box<dyn FnMut(Option<&Cursor>) -> Result<(Vec<T>, Option<Cursor>)> + 'a>;

/// Chunked, fused iteration shared by the entry and group iterators.
struct Chunked<'a, T> {
    fetch: Option<Fetch<'a, T>>,
    buffer: VecDeque<T>,
    /// Where the next chunk starts: the last fetched row as stored.
    cursor: Option<Cursor>,
    pending_error: Option<Error>,
}

impl<'a, T> Chunked<'a, T> {
    fn new(fetch: Fetch<'a, T>) -> Self {
        Chunked {
            fetch: Some(fetch),
            buffer: VecDeque::new(),
            cursor: None,
            pending_error: None,
        }
    }

    fn failed(error: Error) -> Self {
        Chunked {
            fetch: None,
            buffer: VecDeque::new(),
            cursor: None,
            pending_error: Some(error),
        }
    }

    fn next(&mut self) -> Option<Result<T>> {
        if let Some(e) = self.pending_error.take() {
            return Some(Err(e));
        }
        if self.buffer.is_empty() {
            let fetch = self.fetch.as_mut()?;
            match fetch(self.cursor.as_ref()) {
                Ok((rows, cursor)) => {
                    if (rows.len() as i64) < CHUNK_ROWS {
                        self.fetch = None; // last chunk: fused after it drains
                    }
                    self.buffer.extend(rows);
                    self.cursor = cursor;
                }
                Err(e) => {
                    self.fetch = None;
                    return Some(Err(e));
                }
            }
        }
        Some(Ok(self.buffer.pop_front()?))
    }
}

/// Iterator over a group's live entries in ascending key order (see [`Kv::iter`](crate::Kv::iter)).
///
/// Yields `Err` at most once, then ends.
///
/// # Examples
/// ```
/// use store::{Kv, Store};
/// let store = Store::in_memory()?;
/// for i in 0..600 { store.set("g", &format!("{i:04}"), "v")?; }
/// assert_eq!(store.iter("g").filter(|e| e.is_ok()).count(), 600);
/// # Ok::<(), store::Error>(())
/// ```
pub struct EntryIter<'a> {
    inner: Chunked<'a, Entry>,
}

impl<'a> EntryIter<'a> {
    pub(crate) fn new(fetch: Fetch<'a, Entry>) -> Self {
        EntryIter {
            inner: Chunked::new(fetch),
        }
    }

    pub(crate) fn failed(error: Error) -> Self {
        EntryIter {
            inner: Chunked::failed(error),
        }
    }
}

impl Iterator for EntryIter<'_> {
    type Item = Result<Entry>;

    fn next(&mut self) -> Option<Self::Item> {
        self.inner.next()
    }
}

impl std::iter::FusedIterator for EntryIter<'_> {}

impl fmt::Debug for EntryIter<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EntryIter")
            .field("cursor", &self.inner.cursor)
            .finish_non_exhaustive()
    }
}

/// Iterator over group names with a live entry, ascending (see
/// [`Kv::groups_iter`](crate::Kv::groups_iter)).
///
/// # Examples
/// ```
/// use store::{Kv, Store};
/// let store = Store::in_memory()?;
/// store.set("a", "k", "v")?;
/// store.set("b", "k", "v")?;
/// let groups: Vec<String> = store.groups_iter("").collect::<Result<_, _>>()?;
/// assert_eq!(groups, ["a", "b"]);
/// # Ok::<(), store::Error>(())
/// ```
pub struct GroupIter<'a> {
    inner: Chunked<'a, String>,
}

impl<'a> GroupIter<'a> {
    pub(crate) fn new(fetch: Fetch<'a, String>) -> Self {
        GroupIter {
            inner: Chunked::new(fetch),
        }
    }

    pub(crate) fn failed(error: Error) -> Self {
        GroupIter {
            inner: Chunked::failed(error),
        }
    }
}

impl Iterator for GroupIter<'_> {
    type Item = Result<String>;

    fn next(&mut self) -> Option<Self::Item> {
        self.inner.next()
    }
}

impl std::iter::FusedIterator for GroupIter<'_> {}

impl fmt::Debug for GroupIter<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GroupIter")
            .field("cursor", &self.inner.cursor)
            .finish_non_exhaustive()
    }
}
