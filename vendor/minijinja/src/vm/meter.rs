//! [store patch] The traversal meter.
//!
//! Fuel charges the work the VM does and the items built-in filters visit,
//! but the engine also walks values on its own: printing a list prints every
//! item, comparing or hashing two lists visits every item, indexing a lazy
//! list from the end iterates it.  Lists repeated with `*` or joined with `+`
//! are lazy and cost nothing to create, and a list can hold the same list many
//! times, so a short template could build a value whose walk never ends or
//! whose printed form exhausts memory (`{{ [[1] * 10**8] * 10**8 }}`).
//!
//! While the VM runs with fuel, the state installs its fuel as this thread's
//! meter.  Every item yielded by a container's `try_iter` or `try_iter_pairs`
//! (the iteration every such walk goes through), every item of a printed
//! tuple, every byte of a string printed inside a container and every chunk
//! of long strings compared or hashed is then charged to it.  A charge that
//! exhausts the fuel makes the walk stop early (an iteration ends, printing
//! stops, a comparison returns what it has); the fuel stays exhausted, so the
//! VM fails with `OutOfFuel` at its next check, and the evaluation checks once
//! more when it ends.  Without fuel nothing is installed and nothing changes.
use std::cell::RefCell;
use std::cmp::Ordering;
use std::sync::atomic::{AtomicI64, Ordering as MemOrdering};
use std::sync::Arc;

use crate::error::{Error, ErrorKind};
use crate::vm::fuel::ITEM_COST;

/// Bytes of strings compared or hashed per unit of fuel.  Comparing bytes is
/// much cheaper than producing them, so a compared byte costs less than a
/// printed one.
const COMPARED_BYTES_PER_UNIT: usize = 16;

/// Strings shorter than this are compared and hashed without charging: the
/// item that holds them was charged already.
const METERED_STRING_LEN: usize = 1024;

/// How many bytes of a long string are compared between two charges.
const COMPARE_CHUNK: usize = 1024;

thread_local! {
    static METER: RefCell<Option<Arc<AtomicI64>>> = const { RefCell::new(None) };
}

/// Restores the previous meter of the thread when dropped.
pub(crate) struct MeterGuard {
    previous: Option<Arc<AtomicI64>>,
}

impl Drop for MeterGuard {
    fn drop(&mut self) {
        let previous = self.previous.take();
        let _ = METER.try_with(|meter| *meter.borrow_mut() = previous);
    }
}

/// Installs `remaining` (fuel units) as this thread's meter.
pub(crate) fn install(remaining: Arc<AtomicI64>) -> MeterGuard {
    replace(Some(remaining))
}

/// Removes this thread's meter until the guard is dropped (an evaluation
/// without fuel).
pub(crate) fn install_none() -> MeterGuard {
    replace(None)
}

fn replace(meter: Option<Arc<AtomicI64>>) -> MeterGuard {
    let previous = METER
        .try_with(|current| std::mem::replace(&mut *current.borrow_mut(), meter))
        .ok()
        .flatten();
    MeterGuard { previous }
}

/// Applies `f` to this thread's meter; `none` when no meter is installed.
fn with_meter(none: bool, f: impl FnOnce(&AtomicI64) -> bool) -> bool {
    METER
        .try_with(|meter| meter.borrow().as_deref().map_or(none, f))
        .unwrap_or(none)
}

fn current() -> Option<Arc<AtomicI64>> {
    METER
        .try_with(|meter| meter.borrow().clone())
        .ok()
        .flatten()
}

fn take(remaining: &AtomicI64, units: u64) -> bool {
    let left = remaining
        .load(MemOrdering::Relaxed)
        .saturating_sub(i64::try_from(units).unwrap_or(i64::MAX));
    remaining.store(left, MemOrdering::Relaxed);
    left > 0
}

/// Charges `units` to this thread's meter.  Returns `false` once the fuel is
/// exhausted; `true` when no meter is installed.
pub(crate) fn charge(units: u64) -> bool {
    with_meter(true, |remaining| take(remaining, units))
}

/// Is there fuel left on this thread's meter?  `true` when none is installed.
pub(crate) fn has_fuel() -> bool {
    with_meter(true, |remaining| remaining.load(MemOrdering::Relaxed) > 0)
}

/// Wraps an iterator of a container so that every item is charged.
pub(crate) fn metered<'a, T: 'a>(
    iter: Box<dyn Iterator<Item = T> + Send + Sync + 'a>,
) -> Box<dyn Iterator<Item = T> + Send + Sync + 'a> {
    match current() {
        Some(remaining) => Box::new(Metered {
            iter,
            remaining,
            done: false,
        }),
        None => iter,
    }
}

struct Metered<I> {
    iter: I,
    remaining: Arc<AtomicI64>,
    done: bool,
}

impl<I: Iterator> Iterator for Metered<I> {
    type Item = I::Item;

    #[inline]
    fn next(&mut self) -> Option<I::Item> {
        if self.done {
            return None;
        }
        if !take(&self.remaining, ITEM_COST) {
            self.done = true;
            return None;
        }
        self.iter.next()
    }

    #[inline]
    fn size_hint(&self) -> (usize, Option<usize>) {
        if self.done {
            (0, Some(0))
        } else {
            self.iter.size_hint()
        }
    }
}

/// Charges for printing `len` bytes of a string inside a container.
pub(crate) fn charge_printed(len: usize) -> bool {
    charge(len as u64)
}

/// Charges for hashing a string of `len` bytes.
pub(crate) fn charge_hashed(len: usize) -> bool {
    len < METERED_STRING_LEN || charge((len / COMPARED_BYTES_PER_UNIT) as u64)
}

/// Compares two byte strings, charging long comparisons chunk by chunk: only
/// the chunks found equal are charged (the bytes actually compared), so
/// strings that differ early cost nothing beyond the item that holds them.
/// When the fuel runs out the result is `Equal`: the evaluation fails anyway.
pub(crate) fn compare_bytes(a: &[u8], b: &[u8]) -> Ordering {
    if a.len().min(b.len()) < METERED_STRING_LEN || std::ptr::eq(a, b) {
        return a.cmp(b);
    }
    let Some(remaining) = current() else {
        return a.cmp(b);
    };
    let mut chunks_a = a.chunks(COMPARE_CHUNK);
    let mut chunks_b = b.chunks(COMPARE_CHUNK);
    loop {
        match (chunks_a.next(), chunks_b.next()) {
            (Some(chunk_a), Some(chunk_b)) => match chunk_a.cmp(chunk_b) {
                Ordering::Equal => {
                    if !take(&remaining, (COMPARE_CHUNK / COMPARED_BYTES_PER_UNIT) as u64) {
                        return Ordering::Equal;
                    }
                }
                decided => return decided,
            },
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
        }
    }
}

/// A stable sort that stops when the fuel runs out, with an `OutOfFuel`
/// error, instead of going on with comparisons that then return `Equal`:
/// the standard library's sorts may panic on such an inconsistent order.
/// A bottom-up merge sort of indexes, then the permutation applied in place.
pub(crate) fn sort_by<T, F>(seq: &mut [T], mut compare: F) -> Result<(), Error>
where
    F: FnMut(&T, &T) -> Ordering,
{
    if !with_meter(false, |_| true) {
        seq.sort_by(compare);
        return Ok(());
    }
    let n = seq.len();
    // A strictly descending input (each item Less than the one before) is
    // reversed first, stable since no two items are equal, so that it sorts
    // like an ascending one below: in about n comparisons.
    if n > 1 && (1..n).all(|i| compare(&seq[i], &seq[i - 1]) == Ordering::Less) {
        seq.reverse();
    }
    let mut order: Vec<usize> = (0..n).collect();
    let mut merged = order.clone();
    let mut width = 1;
    while width < n {
        for start in (0..n).step_by(width.saturating_mul(2)) {
            let mid = start.saturating_add(width).min(n);
            let end = start.saturating_add(width.saturating_mul(2)).min(n);
            // Runs already in order (the right one's first item not Less
            // than the left one's last) are kept as they are: sorted input
            // costs about n comparisons, as with the standard library's sort.
            if mid == end || compare(&seq[order[mid]], &seq[order[mid - 1]]) != Ordering::Less {
                merged[start..end].copy_from_slice(&order[start..end]);
                continue;
            }
            let (mut left, mut right) = (start, mid);
            for slot in &mut merged[start..end] {
                // Take from the right only when it is strictly less: stable.
                let take_right = right < end
                    && (left >= mid
                        || compare(&seq[order[right]], &seq[order[left]]) == Ordering::Less);
                if take_right {
                    *slot = order[right];
                    right += 1;
                } else {
                    *slot = order[left];
                    left += 1;
                }
            }
        }
        if !has_fuel() {
            return Err(Error::from(ErrorKind::OutOfFuel));
        }
        std::mem::swap(&mut order, &mut merged);
        width = width.saturating_mul(2);
    }
    // Position `i` takes the item at `order[i]`: follow each cycle once.
    let mut placed = vec![false; n];
    for start in 0..n {
        let mut at = start;
        while !placed[at] {
            placed[at] = true;
            let from = order[at];
            if from == start {
                break;
            }
            seq.swap(at, from);
            at = from;
        }
    }
    Ok(())
}
